-- Checkpoints since the statistics reset, PostgreSQL 16 (pg_stat_bgwriter); the same
-- columns as checkpoints.sql reads from pg_stat_checkpointer on 17+.
SELECT checkpoints_timed::bigint AS timed,
       checkpoints_req::bigint AS requested,
       checkpoint_write_time::float8 / 1000 AS write_seconds,
       checkpoint_sync_time::float8 / 1000 AS sync_seconds,
       buffers_checkpoint::bigint AS buffers_written,
       stats_reset
FROM pg_catalog.pg_stat_bgwriter;
