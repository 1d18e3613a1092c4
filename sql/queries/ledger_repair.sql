UPDATE _dmdb_checksum SET sha256 = %s, rollback_sha256 = %s
WHERE kind = 'migration' AND file_id = %s
