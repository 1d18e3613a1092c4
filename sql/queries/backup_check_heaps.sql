-- restore --check: the tables (heaps, materialized views, TOAST) verify_heapam reads.
SELECT c.oid, c.oid::regclass::text
FROM pg_class c
JOIN pg_am a ON a.oid = c.relam
WHERE a.amname = 'heap'
  AND c.relkind IN ('r', 'm', 't')
  AND c.relpersistence = 'p'
ORDER BY 1
