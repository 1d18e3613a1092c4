-- Sessions idle in a transaction (cluster-wide), oldest first: they hold locks and the
-- xmin horizon, so VACUUM cannot remove rows dead since they began.
SELECT a.pid,
       a.datname,
       a.usename,
       a.application_name,
       a.state,
       greatest(0, extract(epoch FROM now() - a.state_change))::float8 AS idle_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS transaction_seconds,
       left(a.query, 200) AS last_query
FROM pg_catalog.pg_stat_activity a
WHERE a.state LIKE 'idle in transaction%'
  AND a.pid <> pg_catalog.pg_backend_pid()
ORDER BY a.state_change
LIMIT 50;
