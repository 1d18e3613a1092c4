-- Transaction-ID age of every database's oldest unfrozen XID (wraparound at 2^31).
SELECT d.datname,
       pg_catalog.age(d.datfrozenxid)::bigint AS xid_age,
       pg_catalog.mxid_age(d.datminmxid)::bigint AS mxid_age
FROM pg_catalog.pg_database d
WHERE d.datallowconn
ORDER BY xid_age DESC;
