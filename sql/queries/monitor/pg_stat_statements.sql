-- pg_stat_statements in this database and on this server: created here (and in which
-- schema), available to CREATE EXTENSION (pg_available_extensions), and preloaded.
-- Preloaded: shared_preload_libraries names it (read through pg_settings, which leaves
-- out the row for a role without pg_read_all_settings where current_setting fails), or
-- the module's own settings exist: pg_stat_statements.max is defined only when the
-- library was loaded at server start, and any role sees it.
SELECT pg_catalog.current_database() AS dbname,
       n.nspname AS schemaname,
       e.extversion,
       EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions a
               WHERE a.name = 'pg_stat_statements') AS available,
       (EXISTS (SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = 'pg_stat_statements.max')
        OR EXISTS (SELECT 1
                   FROM pg_catalog.pg_settings s,
                        regexp_split_to_table(s.setting, ',') AS lib(name)
                   WHERE s.name = 'shared_preload_libraries'
                     AND btrim(lib.name, ' "') ~ '(^|/)pg_stat_statements$')) AS preloaded
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'pg_stat_statements'
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace;
