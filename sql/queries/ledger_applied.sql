SELECT y.migration_id, coalesce(c.sha256, ''), c.rollback_sha256,
       coalesce(c.applied_at, y.applied_at_utc AT TIME ZONE 'utc')
FROM _yoyo_migration y
LEFT JOIN _dmdb_checksum c ON c.kind = 'migration' AND c.file_id = y.migration_id
ORDER BY y.migration_id
