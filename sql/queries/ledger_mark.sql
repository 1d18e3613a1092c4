INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%s, %s, now() AT TIME ZONE 'utc')
