-- DEFAULT partitions of partitioned tables: rows there belong to no range and block
-- creating the partition they belong to.
SELECT n.nspname AS schemaname,
       c.relname,
       pn.nspname AS parent_schemaname,
       p.relname AS parent_relname,
       greatest(c.reltuples, 0)::float8 AS estimated_rows
FROM pg_catalog.pg_partitioned_table pt
JOIN pg_catalog.pg_class p ON p.oid = pt.partrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
JOIN pg_catalog.pg_class c ON c.oid = pt.partdefid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace  -- the join drops partdefid = 0
ORDER BY 1, 2;
