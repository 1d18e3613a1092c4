-- Temporary files this database's queries wrote since its statistics reset: sorts and
-- hashes that did not fit in work_mem.
SELECT d.temp_files::bigint AS temp_files,
       d.temp_bytes::bigint AS temp_bytes,
       d.stats_reset
FROM pg_catalog.pg_stat_database d
WHERE d.datname = pg_catalog.current_database();
