INSERT INTO _yoyo_log (id, migration_hash, migration_id, operation, username,
                       hostname, created_at_utc)
VALUES (%s, %s, %s, %s, %s, %s, now() AT TIME ZONE 'utc')
