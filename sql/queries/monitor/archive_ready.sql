-- WAL segments waiting to be archived (.ready files; needs pg_monitor or superuser).
SELECT count(*)::bigint AS ready
FROM pg_catalog.pg_ls_archive_statusdir()
WHERE name LIKE '%.ready';
