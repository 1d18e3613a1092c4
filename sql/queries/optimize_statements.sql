-- The workload of `dmdb optimize indexes`: this database's statements in
-- pg_stat_statements, one row per queryid (summed over the roles that ran it and the
-- nesting levels: statements inside functions are there when pg_stat_statements.track =
-- all), heaviest first. {schema} is the extension's schema (psycopg.sql.Identifier).
-- Times in ms. A row whose text this role may not read (another role's, without
-- pg_read_all_stats) has no queryid and its text hidden: such rows come as one, with
-- how many they are (entries).
SELECT s.queryid::text AS queryid,
       count(*)::int AS entries,
       min(s.query) AS query,
       bool_and(NOT s.toplevel) AS nested,
       sum(s.calls)::bigint AS calls,
       sum(s.total_exec_time)::float8 AS total_ms,
       (sum(s.total_exec_time) / nullif(sum(s.calls), 0))::float8 AS mean_ms,
       sum(s.rows)::bigint AS rows,
       sum(s.shared_blks_hit)::bigint AS shared_blks_hit,
       sum(s.shared_blks_read)::bigint AS shared_blks_read,
       sum(s.temp_blks_written)::bigint AS temp_blks_written
FROM {schema}.pg_stat_statements s
WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d
                WHERE d.datname = pg_catalog.current_database())
GROUP BY s.queryid
ORDER BY total_ms DESC, queryid;
