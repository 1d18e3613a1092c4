-- An applied migration whose file was renamed (same content): yoyo's row, keyed by the
-- hash of the id, and dmdb's checksum row now name the new id.
WITH yoyo AS (
    UPDATE _yoyo_migration SET migration_hash = %(new_hash)s, migration_id = %(new)s
    WHERE migration_hash = %(old_hash)s
)
UPDATE _dmdb_checksum SET file_id = %(new)s
WHERE kind = 'migration' AND file_id = %(old)s
