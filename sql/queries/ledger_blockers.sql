-- Sessions that block the migrating backend: holders of, or waiters ahead for, a
-- lock it requests. Named to the user while dmdb retries.
SELECT a.pid, a.application_name, coalesce(a.state, ''),
       extract(epoch FROM now() - coalesce(a.xact_start, a.state_change, now()))::float8,
       left(split_part(btrim(coalesce(a.query, ''), E' \t\r\n'), E'\n', 1), 120)
FROM pg_stat_activity a
WHERE a.pid = ANY (pg_blocking_pids(%s))
ORDER BY a.xact_start NULLS LAST, a.pid
