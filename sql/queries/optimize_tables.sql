-- The tables (plain and partitioned, not the partitions) of the schemas %(schemas)s, each
-- with its columns and their types (format_type) and its size on disk, summed over its
-- partitions (pg_partition_tree, which lists nothing for a plain table).
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       c.oid::bigint AS oid,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns,
       array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
       (pg_catalog.pg_relation_size(c.oid)
        + (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.relid)), 0)
           FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.relid <> c.oid))::bigint
           AS size_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND n.nspname = ANY(%(schemas)s)
GROUP BY n.nspname, c.relname, c.relkind, c.oid
ORDER BY 1, 2;
