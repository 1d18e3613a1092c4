-- Rollback of 0006_rollup_watermark: the exact inverse of
-- sql/migrations/0006_rollup_watermark.sql, undoing its statements in reverse order.

DROP INDEX learning_events_event_id_brin_idx;

DROP TABLE rollup_watermarks;
