-- After a rollback of every migration: forget the function files' checksums, so that the
-- next `dmdb up` applies them again.
DELETE FROM _dmdb_checksum WHERE kind = 'function' RETURNING file_id
