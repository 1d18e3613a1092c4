-- Materialized views of one schema: populated or not, and whether one of their unique
-- indexes allows REFRESH ... CONCURRENTLY (valid, on plain columns, not partial).
SELECT
    c.oid::bigint       AS oid,
    n.nspname           AS schema,
    c.relname           AS name,
    c.relispopulated    AS populated,
    EXISTS (
        SELECT 1 FROM pg_index x
        WHERE x.indrelid = c.oid AND x.indisunique AND x.indisvalid
          AND x.indpred IS NULL AND x.indexprs IS NULL
    )                   AS has_unique_index
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND n.nspname = %(schema)s
ORDER BY c.relname;
