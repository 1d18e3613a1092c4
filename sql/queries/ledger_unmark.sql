-- Forget one applied migration (after its rollback ran): yoyo's row and dmdb's checksum.
WITH gone AS (DELETE FROM _yoyo_migration WHERE migration_hash = %(hash)s)
DELETE FROM _dmdb_checksum WHERE kind = 'migration' AND file_id = %(id)s
