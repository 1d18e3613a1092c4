-- The relations that may hold a learner's data (dmdb privacy inventory): tables with a
-- foreign key to users, tables with the learner column (partitions are their parent's),
-- materialized views over either, and everything in dmdb's own schemas (dmdb_*).
WITH linked AS (
    SELECT c.oid, 'foreign key to users' AS why
    FROM pg_catalog.pg_constraint con
    JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
    WHERE con.contype = 'f' AND con.confrelid = to_regclass('public.users')
      AND NOT c.relispartition
    UNION ALL
    SELECT c.oid, 'learner column user_id'
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
    WHERE a.attname = 'user_id' AND a.attnum > 0 AND NOT a.attisdropped
      AND c.relkind IN ('r', 'p') AND NOT c.relispartition
), views AS (
    SELECT DISTINCT r.ev_class AS oid, 'materialized view over ' || d.refobjid::regclass::text AS why
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
                               AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
    JOIN linked l ON l.oid = d.refobjid
    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'm'
), own AS (
    SELECT c.oid, 'dmdb schema ' || n.nspname AS why
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname LIKE 'dmdb\_%' AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
)
SELECT DISTINCT ON (n.nspname, c.relname) n.nspname, c.relname,
       CASE c.relkind WHEN 'm' THEN 'matview' ELSE 'table' END, x.why
FROM (SELECT * FROM linked UNION ALL SELECT * FROM views UNION ALL SELECT * FROM own) x
JOIN pg_catalog.pg_class c ON c.oid = x.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname, x.why
