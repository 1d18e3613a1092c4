-- restore --check: the B-tree indexes amcheck's bt_index_check reads (valid, permanent,
-- on a table with storage), system catalogs included.
SELECT i.indexrelid, i.indexrelid::regclass::text
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am a ON a.oid = c.relam
WHERE a.amname = 'btree'
  AND c.relkind = 'i'
  AND c.relpersistence = 'p'
  AND i.indisvalid AND i.indisready
ORDER BY 1
