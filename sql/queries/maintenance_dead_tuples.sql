-- Dead and live tuples of some relations, after the vacuum (the caller clears its
-- statistics snapshot first: VACUUM reports its counts to the shared statistics at once).
SELECT relid::bigint AS oid, n_dead_tup, n_live_tup
FROM pg_stat_all_tables
WHERE relid = ANY(%(oids)s::oid[]);
