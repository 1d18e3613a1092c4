-- dmdb backup wal status: the archive settings, the archiver's counters and the WAL file
-- being written (none on a standby).
SELECT current_setting('archive_mode') AS archive_mode,
       current_setting('archive_library', true) AS archive_library,
       current_setting('basic_archive.archive_directory', true) AS archive_directory,
       (SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout') AS archive_timeout,
       current_setting('summarize_wal', true) AS summarize_wal,
       a.archived_count, a.failed_count, a.last_archived_wal, a.last_archived_time,
       a.last_failed_wal, a.last_failed_time,
       coalesce(a.last_failed_time > coalesce(a.last_archived_time, '-infinity'), false) AS failing,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
FROM pg_stat_archiver a
