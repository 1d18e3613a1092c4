-- A table named on the command line: `name`, or `schema.name`, exactly as stored.
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
       c.relkind::text AS kind, inh.inhparent::bigint AS parent_oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits inh ON inh.inhrelid = c.oid AND c.relispartition
WHERE c.relkind IN ('r', 'p', 'm')
  AND ((%(schema)s::text IS NULL AND c.relname = %(raw)s AND pg_table_is_visible(c.oid))
       OR (n.nspname = %(schema)s AND c.relname = %(rel)s))
ORDER BY (c.relname = %(raw)s) DESC
LIMIT 1
