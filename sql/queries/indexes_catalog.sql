-- Every index outside the system schemas, with its table and, for an index on a
-- partition, the partitioned index it is attached to (pg_inherits). Read by
-- `dmdb indexes build / check` to compare the database with the declared index set.
SELECT
    n.nspname                  AS schema,
    ic.relname                 AS name,
    ic.oid::bigint             AS oid,
    ic.relkind::text           AS kind,          -- i = index, I = partitioned index
    tc.oid::bigint             AS table_oid,
    x.indisvalid               AS valid,
    x.indisunique              AS is_unique,
    inh.inhparent::bigint      AS parent_oid,    -- the partitioned index it is attached to
    pg_get_indexdef(ic.oid)    AS definition
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class tc ON tc.oid = x.indrelid
LEFT JOIN pg_inherits inh ON inh.inhrelid = ic.oid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, ic.relname;
