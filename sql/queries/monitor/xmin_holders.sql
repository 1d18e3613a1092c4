-- What holds back the xmin horizon (the oldest transaction whose rows VACUUM must keep),
-- server-wide: sessions with an open snapshot or transaction ID (long transactions,
-- idle in transaction), prepared transactions, replication slots (xmin of a physical
-- slot fed by hot_standby_feedback, catalog_xmin of a logical one) and standbys'
-- hot_standby_feedback. xmin_age counts transactions since the held xmin; seconds is how
-- long it has been held where PostgreSQL knows it.
SELECT 'transaction' AS kind,
       a.pid::text AS holder,
       a.datname,
       a.usename::text AS usename,
       coalesce(a.state, a.backend_type) AS state,
       greatest(age(a.backend_xmin), age(a.backend_xid))::bigint AS xmin_age,
       extract(epoch FROM now() - a.xact_start)::float8 AS seconds,
       left(a.query, 200) AS detail
FROM pg_catalog.pg_stat_activity a
WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
  AND a.pid <> pg_catalog.pg_backend_pid()
UNION ALL
SELECT 'prepared transaction', p.gid, p.database, p.owner::text, 'prepared',
       age(p.transaction)::bigint,
       extract(epoch FROM now() - p.prepared)::float8,
       'COMMIT PREPARED or ROLLBACK PREPARED ' || quote_literal(p.gid)
FROM pg_catalog.pg_prepared_xacts p
UNION ALL
SELECT 'replication slot', s.slot_name::text, s.database::text, NULL,
       CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
       greatest(age(s.xmin), age(s.catalog_xmin))::bigint,
       NULL::float8,
       s.slot_type || CASE WHEN s.active THEN '' ELSE ' slot, unused: drop it if its consumer is gone' END
FROM pg_catalog.pg_replication_slots s
WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
UNION ALL
SELECT 'standby feedback', coalesce(nullif(r.application_name, ''), r.pid::text), NULL,
       r.usename::text, r.state, age(r.backend_xmin)::bigint, NULL::float8,
       'hot_standby_feedback of a standby at ' || coalesce(host(r.client_addr), 'local socket')
FROM pg_catalog.pg_stat_replication r
WHERE r.backend_xmin IS NOT NULL
ORDER BY xmin_age DESC NULLS LAST, seconds DESC NULLS LAST;
