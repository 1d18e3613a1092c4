-- Relation locks this backend holds on the given tables (fast-path ones included).
SELECT l.relation::bigint, l.mode
FROM pg_locks l
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND l.relation = ANY (%s::oid[])
