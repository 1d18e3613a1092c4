-- What the event feed keeps on disk for its consumers (dmdb/monitor/checks_events.py):
-- the erasure tombstones not yet pruned, and the logical replication slots of this
-- database (a Debezium / Kafka Connect connector reading the dmdb_events publication keeps
-- one): the WAL each pins, its wal_status, and the cap max_slot_wal_keep_size (-1: none).
SELECT 'tombstones' AS kind, NULL::text AS slot_name, NULL::text AS plugin, NULL::boolean AS active,
       NULL::text AS wal_status,
       pg_catalog.pg_total_relation_size('event_tombstones')::float8 AS retained_bytes,
       (SELECT count(*) FROM event_tombstones) AS rows,
       current_setting('max_slot_wal_keep_size') AS wal_keep_cap
UNION ALL
SELECT 'slot', s.slot_name::text, s.plugin::text, s.active, s.wal_status,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::float8,
       NULL, current_setting('max_slot_wal_keep_size')
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_type = 'logical' AND s.database = current_database()
