-- Per table, as this transaction sees it: relfilenode (a new one = rewritten), scans
-- and rows written so far in this transaction.
SELECT c.oid::bigint, c.relfilenode::bigint, pg_stat_get_xact_numscans(c.oid),
       pg_stat_get_xact_tuples_inserted(c.oid) + pg_stat_get_xact_tuples_updated(c.oid)
       + pg_stat_get_xact_tuples_deleted(c.oid)
FROM pg_class c
WHERE c.oid = ANY (%s::oid[])
