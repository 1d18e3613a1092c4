SELECT file_id, sha256, applied_at FROM _dmdb_checksum WHERE kind = 'function'
