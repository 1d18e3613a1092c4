-- The tables of the live schema, as restored in lint's scratch copy: oid, the name to
-- report (a partition is reported as its partitioned root), kind, relfilenode.
SELECT c.oid::bigint,
       CASE WHEN rn.nspname = 'public' THEN r.relname::text
            ELSE quote_ident(rn.nspname) || '.' || quote_ident(r.relname) END,
       c.relkind::text, c.relfilenode::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = coalesce(pg_partition_root(c.oid), c.oid)
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
