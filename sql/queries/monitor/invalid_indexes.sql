-- Indexes that are not valid (a failed CREATE INDEX CONCURRENTLY, or a partitioned
-- index still missing a partition's index); `building` marks one still being built.
SELECT n.nspname AS schemaname,
       t.relname,
       i.relname AS indexrelname,
       x.indisready AS ready,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p
               WHERE p.index_relid = x.indexrelid) AS building,
       pg_catalog.pg_relation_size(x.indexrelid)::bigint AS size_bytes,
       pg_catalog.pg_get_indexdef(x.indexrelid) AS definition
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
WHERE NOT x.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3;
