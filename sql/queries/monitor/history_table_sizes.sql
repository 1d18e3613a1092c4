-- Size of each table (heap and TOAST) and of its indexes, and its live rows, for the
-- `--record` history. Leaf tables and materialized views of the user schemas; a
-- partitioned table's partitions are recorded each (the parent holds no data). The
-- monitor's own history schema is left out.
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       pg_catalog.pg_table_size(c.oid)::bigint AS table_bytes,
       pg_catalog.pg_indexes_size(c.oid)::bigint AS index_bytes,
       coalesce(s.n_live_tup, 0)::bigint AS live_rows
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dmdb_monitor')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2;
