-- WAL archiving (pg_stat_archiver): counts since the statistics reset, and whether the
-- last attempt failed (a failure newer than the last success: archive_command or
-- archive_library is failing now, and WAL piles up in pg_wal until it works again).
SELECT current_setting('archive_mode') AS archive_mode,
       a.archived_count,
       a.last_archived_wal,
       a.last_archived_time,
       a.failed_count,
       a.last_failed_wal,
       a.last_failed_time,
       a.stats_reset,
       (a.last_failed_time IS NOT NULL
        AND (a.last_archived_time IS NULL OR a.last_failed_time > a.last_archived_time)) AS failing,
       extract(epoch FROM now() - a.last_archived_time)::float8 AS last_archived_age_seconds
FROM pg_catalog.pg_stat_archiver a;
