-- The last logged operation of each of these migrations: 'start' / 'start-rb' without a
-- later 'apply' / 'rollback' means a non-transactional file was stopped half-way.
SELECT DISTINCT ON (migration_id) migration_id, operation
FROM _yoyo_log
WHERE migration_id = ANY(%s)
ORDER BY migration_id, created_at_utc DESC, operation
