-- Tables read mostly by sequential scans (pghero's "missing indexes"): at least
-- min_rows live rows, at least min_scans scans in all, and index scans under pct percent
-- of them. A table without any index counts 0 index scans. Counters since the last
-- statistics reset, on this server only.
WITH s AS (
    SELECT st.relid, st.schemaname, st.relname, st.seq_scan, st.seq_tup_read,
           coalesce(st.idx_scan, 0) AS idx_scan, st.n_live_tup
    FROM pg_catalog.pg_stat_user_tables st
)
SELECT s.schemaname,
       s.relname,
       s.n_live_tup,
       s.seq_scan,
       s.idx_scan,
       s.seq_tup_read,
       (100.0 * s.idx_scan / (s.seq_scan + s.idx_scan))::float8 AS index_scan_pct,
       pg_catalog.pg_relation_size(s.relid)::bigint AS size_bytes
FROM s
WHERE s.n_live_tup >= %(min_rows)s
  AND s.seq_scan + s.idx_scan >= greatest(%(min_scans)s, 1)
  AND 100.0 * s.idx_scan / (s.seq_scan + s.idx_scan) < %(pct)s
ORDER BY s.seq_tup_read DESC, 1, 2
LIMIT 50;
