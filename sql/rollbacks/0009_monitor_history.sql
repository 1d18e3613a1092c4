-- Rollback of 0009_monitor_history: the exact inverse of
-- sql/migrations/0009_monitor_history.sql, undoing its statements in reverse order
-- (the grants go with the objects).

DROP TABLE dmdb_monitor.table_sizes;

DROP INDEX dmdb_monitor.snapshots_taken_at_idx;

DROP TABLE dmdb_monitor.snapshots;

DROP SCHEMA dmdb_monitor;
