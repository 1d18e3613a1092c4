-- The event feed after a position (dmdb/events/feed.py): the events with
-- (feed_tx, event_id) > (%(tx)s, %(id)s) and feed_tx below %(horizon)s, in feed order, at
-- most %(limit)s, each as one JSON object (keys: docs/events.md). %(horizon)s is
-- pg_snapshot_xmin() of a snapshot this transaction took before: every transaction with
-- a smaller id had ended then, so their rows are visible now and no row can appear below
-- it later (0014). learning_events is read through learning_events_feed_idx (one range per
-- partition, merged), event_tombstones through event_tombstones_feed_idx. Times are
-- rendered in the session's TimeZone: the caller sets UTC for its transaction.
SELECT f.feed_tx::text AS feed_tx, f.event_id, f.recorded_at, f.line
  FROM (
   (SELECT e.feed_tx, e.event_id, e.recorded_at,
           (CASE e.event_type
            WHEN 'question_answered' THEN json_build_object(
                'position', e.feed_tx::text || ':' || e.event_id, 'event_id', e.event_id,
                'type', e.event_type, 'user_id', e.user_id, 'occurred_at', e.occurred_at,
                'recorded_at', e.recorded_at, 'concept_id', e.concept_id,
                'content_id', e.content_id, 'session_id', e.session_id,
                'is_correct', e.is_correct, 'response_time_ms', e.response_time_ms,
                'hints_used', e.hints_used, 'quality', e.quality,
                'mastery_before', e.mastery_before, 'mastery_after', e.mastery_after,
                'predicted_correct', e.response_data -> 'predicted_correct',
                'next_review_at', e.next_review_at, 'scheduler', e.scheduler,
                'context', e.context_data)
            WHEN 'concept_mastered' THEN json_build_object(
                'position', e.feed_tx::text || ':' || e.event_id, 'event_id', e.event_id,
                'type', e.event_type, 'user_id', e.user_id, 'occurred_at', e.occurred_at,
                'recorded_at', e.recorded_at, 'concept_id', e.concept_id,
                'content_id', e.content_id, 'session_id', e.session_id,
                'mastery_before', e.mastery_before, 'mastery_after', e.mastery_after,
                'context', e.context_data)
            WHEN 'session_started' THEN json_build_object(
                'position', e.feed_tx::text || ':' || e.event_id, 'event_id', e.event_id,
                'type', e.event_type, 'user_id', e.user_id, 'occurred_at', e.occurred_at,
                'recorded_at', e.recorded_at, 'session_id', e.session_id,
                'device', e.response_data -> 'device', 'context', e.context_data)
            ELSE json_build_object(
                'position', e.feed_tx::text || ':' || e.event_id, 'event_id', e.event_id,
                'type', e.event_type, 'user_id', e.user_id, 'occurred_at', e.occurred_at,
                'recorded_at', e.recorded_at, 'concept_id', e.concept_id,
                'content_id', e.content_id, 'session_id', e.session_id,
                'is_correct', e.is_correct, 'response_time_ms', e.response_time_ms,
                'hints_used', e.hints_used, 'quality', e.quality,
                'mastery_before', e.mastery_before, 'mastery_after', e.mastery_after,
                'data', e.response_data, 'context', e.context_data)
            END)::text AS line
      FROM learning_events e
     WHERE (e.feed_tx, e.event_id) > (%(tx)s::xid8, %(id)s::bigint)
       AND e.feed_tx < %(horizon)s::xid8
     ORDER BY e.feed_tx, e.event_id
     LIMIT %(limit)s)
    UNION ALL
   (SELECT t.feed_tx, t.event_id, t.recorded_at,
           json_build_object(
               'position', t.feed_tx::text || ':' || t.event_id, 'event_id', t.event_id,
               'type', 'learner_erased', 'user_id', t.user_id, 'occurred_at', t.erased_at,
               'recorded_at', t.recorded_at, 'request_ref', t.request_ref)::text
      FROM event_tombstones t
     WHERE (t.feed_tx, t.event_id) > (%(tx)s::xid8, %(id)s::bigint)
       AND t.feed_tx < %(horizon)s::xid8
     ORDER BY t.feed_tx, t.event_id
     LIMIT %(limit)s)
  ) AS f
 ORDER BY f.feed_tx, f.event_id
 LIMIT %(limit)s
