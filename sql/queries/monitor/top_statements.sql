-- The statements of this database that took the most execution time since
-- pg_stat_statements was last reset. {schema} is the extension's schema (composed with
-- psycopg.sql.Identifier). Times in seconds.
SELECT s.queryid::text AS queryid,
       r.rolname AS usename,
       s.calls,
       (s.total_exec_time / 1000.0)::float8 AS total_seconds,
       (s.mean_exec_time / 1000.0)::float8 AS mean_seconds,
       s.rows,
       (100.0 * s.total_exec_time
            / nullif(sum(s.total_exec_time) OVER (), 0))::float8 AS percent_of_total,
       left(regexp_replace(s.query, '\s+', ' ', 'g'), 300) AS query
FROM {schema}.pg_stat_statements s
LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d
                WHERE d.datname = pg_catalog.current_database())
ORDER BY s.total_exec_time DESC
LIMIT %(limit)s;
