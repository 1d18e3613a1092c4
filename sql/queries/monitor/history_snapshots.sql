-- The snapshots of the last `days` days, oldest first, with the totals of their table
-- sizes.
SELECT s.snapshot_id, s.taken_at, s.status, s.connections, s.max_connections,
       s.table_blocks_hit, s.table_blocks_read, s.index_blocks_hit, s.index_blocks_read,
       s.dead_tuples, s.database_bytes,
       coalesce(sum(z.table_bytes), 0)::bigint AS table_bytes,
       coalesce(sum(z.index_bytes), 0)::bigint AS index_bytes
FROM dmdb_monitor.snapshots s
LEFT JOIN dmdb_monitor.table_sizes z ON z.snapshot_id = s.snapshot_id
WHERE s.taken_at >= now() - make_interval(secs => %(days)s * 86400)
GROUP BY s.snapshot_id
ORDER BY s.taken_at, s.snapshot_id;
