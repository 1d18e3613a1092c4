-- Checkpoints since the statistics reset, PostgreSQL 17+ (pg_stat_checkpointer):
-- timed ones (checkpoint_timeout) against requested ones (max_wal_size reached, or a
-- CHECKPOINT command). Same columns as checkpoints_16.sql.
SELECT num_timed::bigint AS timed,
       num_requested::bigint AS requested,
       write_time::float8 / 1000 AS write_seconds,
       sync_time::float8 / 1000 AS sync_seconds,
       buffers_written::bigint AS buffers_written,
       stats_reset
FROM pg_catalog.pg_stat_checkpointer;
