-- backup_wal: the archiver's verdict and the WAL file the server writes (none on a standby).
SELECT current_setting('archive_mode') AS archive_mode,
       coalesce(a.last_failed_time > coalesce(a.last_archived_time, '-infinity'), false) AS failing,
       a.last_failed_wal, a.failed_count,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
FROM pg_stat_archiver a
