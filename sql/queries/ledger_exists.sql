SELECT to_regclass('_yoyo_migration') IS NOT NULL AND to_regclass('_dmdb_checksum') IS NOT NULL
