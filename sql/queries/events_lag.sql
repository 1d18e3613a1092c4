-- The event feed's consumers with their lag (dmdb/events/consumers.py): the events after
-- each one's position and below the commit-safe horizon (counted up to %(cap)s, through
-- the feed indexes, index-only when the visibility map allows), and when the first of them
-- was written. %(name)s NULL: every consumer.
WITH h AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon
)
SELECT c.name, c.position_tx::text AS position_tx, c.position_id, c.created_at, c.advanced_at,
       c.last_recorded_at, c.events_handled, c.warn_events, c.critical_events, c.warn_seconds,
       c.critical_seconds, c.lost_at, c.lost_reason,
       (SELECT count(*) FROM (SELECT FROM learning_events e
                               WHERE (e.feed_tx, e.event_id) > (c.position_tx, c.position_id)
                                 AND e.feed_tx < h.horizon
                               LIMIT %(cap)s) AS x)
       + (SELECT count(*) FROM (SELECT FROM event_tombstones t
                                 WHERE (t.feed_tx, t.event_id) > (c.position_tx, c.position_id)
                                   AND t.feed_tx < h.horizon
                                 LIMIT %(cap)s) AS y) AS behind,
       least((SELECT e.recorded_at FROM learning_events e
               WHERE (e.feed_tx, e.event_id) > (c.position_tx, c.position_id)
                 AND e.feed_tx < h.horizon
               ORDER BY e.feed_tx, e.event_id LIMIT 1),
             (SELECT t.recorded_at FROM event_tombstones t
               WHERE (t.feed_tx, t.event_id) > (c.position_tx, c.position_id)
                 AND t.feed_tx < h.horizon
               ORDER BY t.feed_tx, t.event_id LIMIT 1)) AS next_recorded_at,
       now() AS now, h.horizon::text AS horizon
  FROM event_consumers c
 CROSS JOIN h
 WHERE %(name)s::text IS NULL OR c.name = %(name)s::text
 ORDER BY c.name
