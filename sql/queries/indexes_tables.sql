-- Tables, partitioned tables and materialized views outside the system schemas, each with
-- the table it is a partition of (NULL for a top-level table): the partition tree that
-- `dmdb indexes build` walks.
SELECT
    c.oid::bigint          AS oid,
    n.nspname              AS schema,
    c.relname              AS name,
    c.relkind::text        AS kind,      -- r = table, p = partitioned table, m = matview
    inh.inhparent::bigint  AS parent_oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits inh ON inh.inhrelid = c.oid AND c.relispartition
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname;
