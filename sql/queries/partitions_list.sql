-- Every partitioned table in the database and each of its partitions: the bound as
-- PostgreSQL prints it (run with TimeZone = 'UTC' for UTC timestamps), a RANGE
-- partition's FROM / TO values as text, the row estimate (reltuples; NULL when the
-- table was never vacuumed or analyzed), the size with indexes and TOAST, and which
-- partition is the DEFAULT one. A partitioned table without partitions appears once,
-- with NULL partition columns.
SELECT pn.nspname AS table_schema,
       p.relname AS table_name,
       CASE pt.partstrat WHEN 'r' THEN 'range' WHEN 'l' THEN 'list' WHEN 'h' THEN 'hash' END
           AS strategy,
       pg_get_partkeydef(p.oid) AS partition_key,
       cn.nspname AS partition_schema,
       c.relname AS partition_name,
       c.relkind = 'p' AS sub_partitioned,
       pg_get_expr(c.relpartbound, c.oid) AS bound,
       (c.oid = pt.partdefid) AS is_default,
       m[1] AS range_from,
       m[2] AS range_to,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows_estimate,
       pg_total_relation_size(c.oid) AS size_bytes
FROM pg_partitioned_table pt
JOIN pg_class p ON p.oid = pt.partrelid
JOIN pg_namespace pn ON pn.oid = p.relnamespace
LEFT JOIN pg_inherits i ON i.inhparent = p.oid
LEFT JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_namespace cn ON cn.oid = c.relnamespace
LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                               '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') AS m ON true
WHERE pn.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT p.relispartition
ORDER BY pn.nspname, p.relname, (c.oid = pt.partdefid), m[1], c.relname;
