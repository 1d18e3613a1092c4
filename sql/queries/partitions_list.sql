-- Every partitioned table in the database with its strategy and key, and each of its
-- partitions' row estimate (reltuples; NULL when the table was never vacuumed or
-- analyzed) and size with indexes and TOAST. Bounds come from partitions_bounds.sql;
-- rows are matched on the partition's oid. A partitioned table without partitions
-- appears once, with NULL partition columns.
SELECT p.oid::bigint AS table_oid,
       pn.nspname AS table_schema,
       p.relname AS table_name,
       CASE pt.partstrat WHEN 'r' THEN 'range' WHEN 'l' THEN 'list' WHEN 'h' THEN 'hash' END
           AS strategy,
       pg_catalog.pg_get_partkeydef(p.oid) AS partition_key,
       c.oid::bigint AS partition_oid,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows_estimate,
       pg_catalog.pg_total_relation_size(c.oid) AS size_bytes
FROM pg_catalog.pg_partitioned_table pt
JOIN pg_catalog.pg_class p ON p.oid = pt.partrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
LEFT JOIN pg_catalog.pg_inherits i ON i.inhparent = p.oid
LEFT JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE pn.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT p.relispartition
ORDER BY pn.nspname, p.relname;
