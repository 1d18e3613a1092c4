-- What the monitoring role may see. Other sessions' rows in pg_stat_activity and
-- pg_stat_replication, and other roles' texts in pg_stat_statements, are hidden from a
-- role without the privileges of pg_read_all_stats (pg_monitor includes it; a superuser
-- has them all); superuser-only settings such as shared_preload_libraries need
-- pg_read_all_settings. pg_has_role(..., 'USAGE') counts membership with inheritance.
SELECT current_user::text AS role,
       r.rolsuper AS superuser,
       pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS read_all_settings,
       format('GRANT pg_monitor TO %I;', current_user) AS grant_statement
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user;
