-- Indexes never scanned since statistics were last reset, at least `min_bytes` in size,
-- that enforce nothing (not unique, not behind a constraint) and are valid.
-- Scans are counted per server: on a replica this shows the replica's usage only.
SELECT s.schemaname,
       s.relname,
       s.indexrelname,
       s.idx_scan,
       pg_catalog.pg_relation_size(s.indexrelid)::bigint AS size_bytes,
       pg_catalog.pg_get_indexdef(s.indexrelid) AS definition,
       (SELECT d.stats_reset FROM pg_catalog.pg_stat_database d
        WHERE d.datname = pg_catalog.current_database()) AS stats_reset
FROM pg_catalog.pg_stat_user_indexes s
JOIN pg_catalog.pg_index x ON x.indexrelid = s.indexrelid
WHERE s.idx_scan = 0
  AND NOT x.indisunique
  AND x.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = s.indexrelid)
  AND pg_catalog.pg_relation_size(s.indexrelid) >= %(min_bytes)s
ORDER BY size_bytes DESC, 1, 2, 3;
