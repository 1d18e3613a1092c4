-- The table sizes of one snapshot.
INSERT INTO dmdb_monitor.table_sizes
    (snapshot_id, schema_name, table_name, table_bytes, index_bytes, live_rows)
VALUES (%(snapshot_id)s, %(schema_name)s, %(table_name)s, %(table_bytes)s, %(index_bytes)s,
        %(live_rows)s);
