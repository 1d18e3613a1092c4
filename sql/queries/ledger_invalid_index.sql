-- An INVALID index (left by a failed or killed CREATE INDEX CONCURRENTLY) by name, as
-- the statement names it (resolved through the search_path): schema and name, to drop.
SELECT n.nspname, c.relname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indexrelid = to_regclass(%s) AND NOT i.indisvalid
