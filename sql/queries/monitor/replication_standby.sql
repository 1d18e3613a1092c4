-- On a standby: how far behind the primary replay is (time since the last replayed
-- transaction; 0 when everything received has been replayed).
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
       CASE
           WHEN NOT pg_catalog.pg_is_in_recovery() THEN NULL
           WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0
           ELSE coalesce(extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp()), 0)
       END::float8 AS lag_seconds,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(),
                                            pg_catalog.pg_last_wal_replay_lsn())
       END::float8 AS lag_bytes;
