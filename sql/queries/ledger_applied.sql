-- Applied migrations: id, checksums, and when (ISO 8601 in UTC, formatted here: cheaper
-- than converting hundreds of timestamps client-side on every `dmdb status`).
SELECT y.migration_id, coalesce(c.sha256, ''), c.rollback_sha256,
       to_char(coalesce(c.applied_at AT TIME ZONE 'UTC', y.applied_at_utc),
               'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
FROM _yoyo_migration y
LEFT JOIN _dmdb_checksum c ON c.kind = 'migration' AND c.file_id = y.migration_id
ORDER BY y.migration_id
