-- Buffer cache hit ratios of this database's user tables (heap) and indexes.
SELECT 'table' AS kind,
       coalesce(sum(heap_blks_hit), 0)::bigint AS hits,
       coalesce(sum(heap_blks_read), 0)::bigint AS reads
FROM pg_catalog.pg_statio_user_tables
UNION ALL
SELECT 'index',
       coalesce(sum(idx_blks_hit), 0)::bigint,
       coalesce(sum(idx_blks_read), 0)::bigint
FROM pg_catalog.pg_statio_user_indexes;
