-- The settings `dmdb optimize` weighs, with their values in bytes where they are sizes
-- (pg_size_bytes of current_setting), their source, and whether a change waits for a
-- restart. data_directory is visible to superusers and pg_read_all_settings only (NULL
-- otherwise).
SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers')) AS shared_buffers,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem')) AS work_mem,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size')) AS max_wal_size,
       pg_catalog.current_setting('random_page_cost')::float8 AS random_page_cost,
       pg_catalog.current_setting('max_connections')::int AS max_connections,
       pg_catalog.current_setting('data_directory', true) AS data_directory,
       (SELECT s.pending_restart FROM pg_catalog.pg_settings s
        WHERE s.name = 'shared_buffers') AS shared_buffers_pending_restart;
