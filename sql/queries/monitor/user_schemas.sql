-- Schemas holding user tables, partitioned tables or materialized views (the system's and
-- temporary schemas excluded): the ones whose table statistics `dead_tuples` reads.
SELECT DISTINCT n.nspname AS schema
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1;
