INSERT INTO _dmdb_checksum (kind, file_id, sha256, rollback_sha256)
VALUES ('migration', %s, %s, %s)
ON CONFLICT (kind, file_id) DO UPDATE
SET sha256 = EXCLUDED.sha256, rollback_sha256 = EXCLUDED.rollback_sha256,
    applied_at = now(), applied_by = current_user
