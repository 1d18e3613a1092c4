INSERT INTO _dmdb_checksum (kind, file_id, sha256) VALUES ('function', %s, %s)
ON CONFLICT (kind, file_id) DO UPDATE
SET sha256 = EXCLUDED.sha256, applied_at = now(), applied_by = current_user
