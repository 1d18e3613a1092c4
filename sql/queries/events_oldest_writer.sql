-- What holds the event feed's horizon back (dmdb/events/consumers.py): the oldest
-- transaction with a transaction id, of any database of the server (the horizon is
-- pg_snapshot_xmin, cluster-wide), or a prepared transaction. Other roles' sessions show
-- no pid details without pg_read_all_stats (pg_monitor).
SELECT w.kind, w.pid, w.datname, w.usename, w.application_name, w.state,
       extract(epoch FROM now() - w.since)::double precision AS seconds
  FROM (SELECT 'transaction' AS kind, a.pid, a.datname::text, a.usename::text,
               a.application_name, a.state, a.xact_start AS since, age(a.backend_xid) AS age
          FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_xid IS NOT NULL
        UNION ALL
        SELECT 'prepared', NULL, p.database::text, p.owner::text, p.gid, 'prepared',
               p.prepared, age(p.transaction)
          FROM pg_catalog.pg_prepared_xacts p) AS w
 ORDER BY w.age DESC
 LIMIT 1
