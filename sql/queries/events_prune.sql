-- `dmdb events prune` (dmdb/events/prune.py): the tombstones every live consumer has
-- passed (below the slowest live position and the horizon; none while there is no live
-- consumer) and those written before %(cutoff)s (the retention limit), deleted unless
-- %(dry_run)s; the live consumers whose unread tombstones the limit takes are marked lost,
-- in the same statement. Returns one row: what was (or would be) done.
WITH h AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon
), slowest AS MATERIALIZED (
    SELECT c.position_tx, c.position_id
      FROM event_consumers c
     WHERE c.lost_at IS NULL
     ORDER BY c.position_tx, c.position_id
     LIMIT 1
), doomed AS MATERIALIZED (
    SELECT t.event_id, t.feed_tx, t.recorded_at < %(cutoff)s::timestamptz AS expired,
           EXISTS (SELECT FROM slowest s
                    WHERE (t.feed_tx, t.event_id) <= (s.position_tx, s.position_id)) AS passed
      FROM event_tombstones t, h
     WHERE t.feed_tx < h.horizon
       AND (t.recorded_at < %(cutoff)s::timestamptz
            OR EXISTS (SELECT FROM slowest s
                        WHERE (t.feed_tx, t.event_id) <= (s.position_tx, s.position_id)))
), deleted AS (
    DELETE FROM event_tombstones t
     USING doomed d
     WHERE NOT %(dry_run)s::boolean AND t.event_id = d.event_id
    RETURNING t.event_id
), lost AS (
    UPDATE event_consumers c
       SET lost_at = now(),
           lost_reason = format('%%s tombstone(s) it had not read were older than the retention limit (%%s) and pruned',
                                (SELECT count(*) FROM doomed d
                                  WHERE d.expired
                                    AND (d.feed_tx, d.event_id) > (c.position_tx, c.position_id)),
                                %(limit_text)s::text)
     WHERE NOT %(dry_run)s::boolean AND c.lost_at IS NULL
       AND EXISTS (SELECT FROM doomed d
                    WHERE d.expired AND (d.feed_tx, d.event_id) > (c.position_tx, c.position_id))
    RETURNING c.name
)
SELECT (SELECT count(*) FROM doomed) AS tombstones,
       (SELECT count(*) FROM doomed WHERE passed) AS passed,
       (SELECT count(*) FROM doomed WHERE expired AND NOT passed) AS expired_unread,
       (SELECT count(*) FROM deleted) AS deleted,
       array(SELECT c.name FROM event_consumers c
              WHERE c.lost_at IS NULL
                AND EXISTS (SELECT FROM doomed d
                             WHERE d.expired
                               AND (d.feed_tx, d.event_id) > (c.position_tx, c.position_id))
              ORDER BY c.name) AS lost_consumers,
       (SELECT count(*) FROM lost) AS marked_lost,
       (SELECT count(*) FROM event_tombstones) AS tombstones_total,
       pg_total_relation_size('event_tombstones') AS tombstone_bytes
