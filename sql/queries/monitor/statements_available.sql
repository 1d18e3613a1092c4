-- Is pg_stat_statements installed in this database, and in which schema?
SELECT n.nspname AS schemaname, e.extversion
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements';
