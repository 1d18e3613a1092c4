-- The tables of this database with the oldest relfrozenxid (what anti-wraparound
-- autovacuum must freeze first), including TOAST tables and materialized views.
SELECT n.nspname AS schemaname,
       c.relname,
       c.relkind::text AS relkind,
       pg_catalog.age(c.relfrozenxid)::bigint AS xid_age,
       pg_catalog.pg_total_relation_size(c.oid)::bigint AS total_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 't')
  AND c.relfrozenxid <> '0'::xid
ORDER BY pg_catalog.age(c.relfrozenxid) DESC, n.nspname, c.relname
LIMIT %(limit)s;
