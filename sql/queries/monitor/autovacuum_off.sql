-- Tables autovacuum leaves alone: the server's `autovacuum` is off, or the table's
-- reloption autovacuum_enabled = false.
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT (current_setting('autovacuum')::bool
           AND coalesce((SELECT o.option_value::bool
                         FROM pg_catalog.pg_options_to_table(c.reloptions) o
                         WHERE o.option_name = 'autovacuum_enabled'), true));
