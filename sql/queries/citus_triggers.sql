-- User triggers of the parent tables of one schema.
SELECT c.relname AS table_name, t.tgname AS name
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal AND NOT c.relispartition
ORDER BY 1, 2
