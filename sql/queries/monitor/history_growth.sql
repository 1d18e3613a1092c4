-- Growth of each table between two snapshots (tables present in the later one).
SELECT b.schema_name, b.table_name,
       (b.table_bytes - coalesce(a.table_bytes, 0))::bigint AS table_bytes,
       (b.index_bytes - coalesce(a.index_bytes, 0))::bigint AS index_bytes,
       (b.live_rows - coalesce(a.live_rows, 0))::bigint AS live_rows,
       b.table_bytes + b.index_bytes AS total_bytes
FROM dmdb_monitor.table_sizes b
LEFT JOIN dmdb_monitor.table_sizes a
       ON a.snapshot_id = %(first)s AND a.schema_name = b.schema_name
      AND a.table_name = b.table_name
WHERE b.snapshot_id = %(last)s
ORDER BY (b.table_bytes - coalesce(a.table_bytes, 0))
         + (b.index_bytes - coalesce(a.index_bytes, 0)) DESC, 1, 2;
