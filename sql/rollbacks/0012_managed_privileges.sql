-- Rollback of 0012: the ledger grants revoked, and pg_stat_statements dropped only when
-- 0012 created it (its record in dmdb_bootstrap says so).

DO $do$
BEGIN
    REVOKE SELECT ON dmdb_bootstrap FROM dm_readonly;

    IF to_regclass('_yoyo_migration') IS NOT NULL THEN
        REVOKE SELECT ON _yoyo_migration, _yoyo_log, _yoyo_version, _dmdb_checksum
            FROM dm_readonly;
    END IF;

    IF EXISTS (SELECT 1 FROM dmdb_bootstrap
               WHERE change = '0012: created extension pg_stat_statements') THEN
        DROP EXTENSION pg_stat_statements;
        DELETE FROM dmdb_bootstrap WHERE change = '0012: created extension pg_stat_statements';
    END IF;
END
$do$;
