-- What a managed service's owner may do, done by privilege, not by rolsuper.
--
-- 0001 installs pg_stat_statements only for a superuser. On RDS, Cloud SQL and Azure the
-- owner is rds_superuser / cloudsqlsuperuser / azure_pg_admin: not superuser, yet allowed
-- to create it. So it is tried here; a role that may not create it gets a NOTICE naming
-- the statement an administrator runs (`dmdb up` shows migration notices), and
-- `dmdb monitor` says what is missing. The change is recorded in 0001's dmdb_bootstrap
-- with its undo, as 0001 records its own.
--
-- The migration ledger (_yoyo_migration, _yoyo_log, _yoyo_version, _dmdb_checksum) is
-- created before 0001 sets the default privileges, so dm_readonly could not read it: a
-- monitoring login got "permission denied for table _yoyo_migration" from `dmdb status`.
-- It may read it now (a scratch replay has no ledger: nothing to grant there), and 0001's
-- dmdb_bootstrap, made before its default privileges too: `pg_dump --schema-only`, which
-- `dmdb drift` runs, locks every table and stopped there.

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements')
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions
                   WHERE name = 'pg_stat_statements') THEN
        BEGIN
            CREATE EXTENSION pg_stat_statements;
            INSERT INTO dmdb_bootstrap (change, undo_sql)
            VALUES ('0012: created extension pg_stat_statements',
                    'DROP EXTENSION pg_stat_statements');
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_stat_statements is not installed and % may not create it: an administrator can run CREATE EXTENSION pg_stat_statements in database %',
                current_user, current_database();
        END;
    END IF;

    GRANT SELECT ON dmdb_bootstrap TO dm_readonly;

    IF to_regclass('_yoyo_migration') IS NOT NULL THEN
        GRANT SELECT ON _yoyo_migration, _yoyo_log, _yoyo_version, _dmdb_checksum
            TO dm_readonly;
    END IF;
END
$do$;
