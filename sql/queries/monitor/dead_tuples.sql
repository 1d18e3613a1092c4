-- Dead tuples of each user table against the point where autovacuum would vacuum it:
-- autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor * reltuples, the
-- table's reloptions overriding the server settings. Tables with dead tuples only.
WITH opts AS (
    SELECT c.oid,
           c.reltuples,
           (SELECT o.option_value FROM pg_catalog.pg_options_to_table(c.reloptions) o
            WHERE o.option_name = 'autovacuum_vacuum_threshold') AS threshold,
           (SELECT o.option_value FROM pg_catalog.pg_options_to_table(c.reloptions) o
            WHERE o.option_name = 'autovacuum_vacuum_scale_factor') AS scale_factor,
           (SELECT o.option_value FROM pg_catalog.pg_options_to_table(c.reloptions) o
            WHERE o.option_name = 'autovacuum_enabled') AS enabled
    FROM pg_catalog.pg_class c
    WHERE c.relkind IN ('r', 'm', 't')
)
SELECT s.schemaname,
       s.relname,
       s.n_live_tup,
       s.n_dead_tup,
       greatest(o.reltuples, 0)::float8 AS reltuples,
       (coalesce(o.threshold::float8, current_setting('autovacuum_vacuum_threshold')::float8)
        + coalesce(o.scale_factor::float8, current_setting('autovacuum_vacuum_scale_factor')::float8)
          * greatest(o.reltuples, 0))::float8 AS vacuum_trigger,
       (current_setting('autovacuum')::bool AND coalesce(o.enabled::bool, true)) AS autovacuum_enabled,
       s.last_vacuum,
       s.last_autovacuum,
       s.last_analyze,
       s.last_autoanalyze,
       s.vacuum_count,
       s.autovacuum_count
FROM pg_catalog.pg_stat_user_tables s
JOIN opts o ON o.oid = s.relid
WHERE s.n_dead_tup > 0
ORDER BY s.n_dead_tup DESC, 1, 2
LIMIT 100;
