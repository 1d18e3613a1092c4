-- The migration ledger. yoyo-migrations' own tables (schema version 2), so `yoyo list`
-- still reads this database, plus dmdb's checksums of every applied file's content,
-- which yoyo does not keep.
CREATE TABLE IF NOT EXISTS _yoyo_migration (
    migration_hash VARCHAR(64),
    migration_id VARCHAR(255),
    applied_at_utc TIMESTAMP,
    PRIMARY KEY (migration_hash)
);
CREATE TABLE IF NOT EXISTS _yoyo_log (
    id VARCHAR(36),
    migration_hash VARCHAR(64),
    migration_id VARCHAR(255),
    operation VARCHAR(10),
    username VARCHAR(255),
    hostname VARCHAR(255),
    comment VARCHAR(255),
    created_at_utc TIMESTAMP,
    PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS _yoyo_version (
    version INT NOT NULL PRIMARY KEY,
    installed_at_utc TIMESTAMP
);
INSERT INTO _yoyo_version (version, installed_at_utc)
VALUES (2, now() AT TIME ZONE 'utc')
ON CONFLICT (version) DO NOTHING;
CREATE TABLE IF NOT EXISTS _dmdb_checksum (
    kind TEXT NOT NULL CHECK (kind IN ('migration', 'function')),
    file_id TEXT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    rollback_sha256 CHAR(64),
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_by TEXT NOT NULL DEFAULT current_user,
    PRIMARY KEY (kind, file_id)
);
