SELECT file_id, sha256, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
FROM _dmdb_checksum
WHERE kind = 'function'
