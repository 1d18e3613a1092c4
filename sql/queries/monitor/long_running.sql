-- Statements running for at least the `seconds` parameter (cluster-wide, client backends,
-- sessions not idle), longest first.
SELECT a.pid,
       a.datname,
       a.usename,
       a.application_name,
       a.state,
       a.wait_event_type,
       a.wait_event,
       extract(epoch FROM now() - a.query_start)::float8 AS duration_seconds,
       left(a.query, 200) AS query
FROM pg_catalog.pg_stat_activity a
WHERE a.state IS DISTINCT FROM 'idle'
  AND a.backend_type = 'client backend'
  AND a.pid <> pg_catalog.pg_backend_pid()
  AND a.query_start <= now() - make_interval(secs => %(seconds)s)
ORDER BY a.query_start
LIMIT 50;
