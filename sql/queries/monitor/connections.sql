-- Client connections by database and state, against max_connections (cluster-wide).
-- This session included. One row per (datname, state); idle-in-transaction sessions also give their oldest age.
SELECT coalesce(a.datname, '') AS datname,
       coalesce(a.state, 'unknown') AS state,
       count(*)::bigint AS count,
       greatest(0, max(extract(epoch FROM now() - a.state_change)))::float8 AS oldest_seconds,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved_connections
FROM pg_catalog.pg_stat_activity a
WHERE a.backend_type = 'client backend'
GROUP BY 1, 2
ORDER BY 1, 2;
