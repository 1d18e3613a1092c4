-- Primary keys, unique constraints and unique indexes (those not backing a constraint),
-- and foreign keys of the parent tables of one schema, with their columns in order.
SELECT c.relname AS table_name, con.conname AS name, con.contype AS kind,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS columns,
       f.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS ref_columns
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
LEFT JOIN pg_catalog.pg_class f ON f.oid = con.confrelid
WHERE c.relnamespace = %(schema)s::regnamespace AND NOT c.relispartition
  AND con.contype IN ('p', 'u', 'f') AND con.conparentid = 0
UNION ALL
SELECT c.relname, i.relname, 'i',
       ARRAY(SELECT coalesce(a.attname, '(expression)')
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[],
       NULL, NULL
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
WHERE c.relnamespace = %(schema)s::regnamespace AND NOT c.relispartition AND x.indisunique
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint con WHERE con.conindid = x.indexrelid)
  AND NOT i.relispartition
ORDER BY 1, 2
