-- The tables of one schema as `dmdb lint --citus` judges them: each parent table (not a
-- partition), whether it has the distribution column, how deep its partitioning goes.
SELECT c.oid, c.relname, c.relkind,
       EXISTS (SELECT FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = %(column)s AND a.attnum > 0
                 AND NOT a.attisdropped) AS has_column,
       EXISTS (SELECT FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class p ON p.oid = i.inhrelid
               WHERE i.inhparent = c.oid AND p.relkind = 'p') AS sub_partitioned
FROM pg_catalog.pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace
  AND c.relkind IN ('r', 'p', 'm')
  AND NOT c.relispartition
ORDER BY c.relname
