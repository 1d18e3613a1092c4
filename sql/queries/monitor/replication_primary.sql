-- Streaming replicas attached to this server (the primary): bytes of WAL not yet
-- replayed, and the replay lag PostgreSQL measured.
SELECT r.pid,
       r.application_name,
       coalesce(host(r.client_addr), 'local') AS client_addr,
       r.state,
       r.sync_state,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn)::float8 AS lag_bytes,
       coalesce(extract(epoch FROM r.replay_lag), 0)::float8 AS lag_seconds
FROM pg_catalog.pg_stat_replication r
ORDER BY r.application_name, r.pid;
