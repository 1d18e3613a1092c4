-- Tables and partitions of %(schemas)s whose updates are mostly not HOT, since the
-- statistics reset: updates, HOT ones, and (PostgreSQL 16+) those whose new row version
-- went to another page — no room left on its own page, the case a lower fillfactor fixes;
-- the other non-HOT updates changed a column an index names. With the table's fillfactor
-- (reloptions; 100 when unset) and its heap size.
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       s.n_tup_upd::bigint AS updates,
       s.n_tup_hot_upd::bigint AS hot_updates,
       s.n_tup_newpage_upd::bigint AS newpage_updates,
       coalesce((SELECT o.option_value::int FROM pg_catalog.pg_options_to_table(c.reloptions) o
                 WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
       pg_catalog.pg_relation_size(c.oid)::bigint AS size_bytes
FROM pg_catalog.pg_stat_user_tables s
JOIN pg_catalog.pg_class c ON c.oid = s.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND s.n_tup_upd >= %(min_updates)s
  AND s.n_tup_hot_upd < %(hot_ratio)s * s.n_tup_upd
ORDER BY s.n_tup_upd - s.n_tup_hot_upd DESC, 1, 2;
