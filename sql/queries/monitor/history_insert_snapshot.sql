-- One `--record` snapshot; its id for the table sizes.
INSERT INTO dmdb_monitor.snapshots
    (status, connections, max_connections, table_blocks_hit, table_blocks_read,
     index_blocks_hit, index_blocks_read, dead_tuples, database_bytes)
VALUES (%(status)s, %(connections)s, %(max_connections)s, %(table_blocks_hit)s,
        %(table_blocks_read)s, %(index_blocks_hit)s, %(index_blocks_read)s, %(dead_tuples)s,
        pg_catalog.pg_database_size(pg_catalog.current_database()))
RETURNING snapshot_id, taken_at;
