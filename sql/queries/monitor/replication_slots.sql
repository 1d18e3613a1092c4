-- Replication slots of this server: whether a consumer is connected, the WAL each keeps
-- (from its restart_lsn to the current WAL position, or the replayed one on a standby),
-- wal_status (reserved, extended, unreserved, lost) and, on PostgreSQL 17+, since when it
-- is inactive (read through to_jsonb so the query also runs on 16).
SELECT s.slot_name::text AS slot_name,
       s.slot_type,
       s.database::text AS database,
       s.plugin::text AS plugin,
       s.active,
       s.temporary,
       s.wal_status,
       pg_catalog.pg_wal_lsn_diff(
           CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                ELSE pg_catalog.pg_current_wal_lsn() END,
           s.restart_lsn)::float8 AS retained_bytes,
       s.safe_wal_size::float8 AS safe_wal_size,
       (to_jsonb(s) ->> 'inactive_since')::timestamptz AS inactive_since
FROM pg_catalog.pg_replication_slots s
ORDER BY retained_bytes DESC NULLS LAST, 1;
