-- Constraints added NOT VALID and never validated: existing rows were not checked.
SELECT n.nspname AS schemaname,
       t.relname,
       c.conname,
       CASE c.contype WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key'
                      WHEN 'n' THEN 'not null' ELSE c.contype::text END AS type,
       pg_catalog.pg_get_constraintdef(c.oid) AS definition
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE NOT c.convalidated
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3;
