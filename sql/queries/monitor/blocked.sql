-- Sessions waiting for a lock held by others (cluster-wide), with the sessions blocking
-- them (pg_blocking_pids) and what those are doing. Longest wait first.
SELECT a.pid AS blocked_pid,
       a.datname,
       a.usename,
       extract(epoch FROM now() - coalesce(a.query_start, a.state_change))::float8 AS waiting_seconds,
       a.wait_event,
       left(a.query, 200) AS blocked_query,
       b.pid AS blocking_pid,
       b.state AS blocking_state,
       extract(epoch FROM now() - b.xact_start)::float8 AS blocking_transaction_seconds,
       left(b.query, 200) AS blocking_query
FROM pg_catalog.pg_stat_activity a
CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(a.pid)) AS blocker(pid)
LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = blocker.pid
WHERE a.wait_event_type = 'Lock'
  AND a.pid <> pg_catalog.pg_backend_pid()
ORDER BY waiting_seconds DESC, a.pid, b.pid
LIMIT 100;
