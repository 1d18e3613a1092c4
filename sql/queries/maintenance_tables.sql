-- Tables, partitioned tables and materialized views of one schema with their dead-tuple
-- and analyze counters, and autovacuum's own thresholds for each, per-table reloptions
-- overriding the server settings (as autovacuum.c computes them):
--   vacuum:  n_dead_tup          > threshold + scale_factor * reltuples
--            (capped by autovacuum_vacuum_max_threshold on PostgreSQL 18+; -1 = no cap)
--   analyze: n_mod_since_analyze > threshold + scale_factor * reltuples
-- reltuples is -1 for a table never vacuumed or analyzed; counted as 0, as autovacuum does.
WITH server AS (
    SELECT current_setting('autovacuum_vacuum_threshold')::float8        AS vac_base,
           current_setting('autovacuum_vacuum_scale_factor')::float8     AS vac_scale,
           nullif(current_setting('autovacuum_vacuum_max_threshold', true), '')::float8
                                                                          AS vac_max,
           current_setting('autovacuum_analyze_threshold')::float8       AS anl_base,
           current_setting('autovacuum_analyze_scale_factor')::float8    AS anl_scale
), rel AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition,
           greatest(c.reltuples, 0)::float8 AS reltuples,
           coalesce(o.vac_base, server.vac_base)   AS vac_base,
           coalesce(o.vac_scale, server.vac_scale) AS vac_scale,
           coalesce(o.vac_max, server.vac_max)     AS vac_max,
           coalesce(o.anl_base, server.anl_base)   AS anl_base,
           coalesce(o.anl_scale, server.anl_scale) AS anl_scale
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN server
    CROSS JOIN LATERAL (
        SELECT max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_threshold')::float8     AS vac_base,
               max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_scale_factor')::float8  AS vac_scale,
               max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_max_threshold')::float8 AS vac_max,
               max(option_value) FILTER (WHERE option_name = 'autovacuum_analyze_threshold')::float8    AS anl_base,
               max(option_value) FILTER (WHERE option_name = 'autovacuum_analyze_scale_factor')::float8 AS anl_scale
        FROM pg_options_to_table(c.reloptions)
    ) o
    WHERE c.relkind IN ('r', 'p', 'm')
      AND n.nspname = %(schema)s
)
SELECT
    rel.oid::bigint                              AS oid,
    rel.nspname                                  AS schema,
    rel.relname                                  AS name,
    rel.relkind::text                            AS kind,
    inh.inhparent::bigint                        AS parent_oid,
    rel.reltuples                                AS reltuples,
    coalesce(s.n_live_tup, 0)::bigint            AS n_live_tup,
    coalesce(s.n_dead_tup, 0)::bigint            AS n_dead_tup,
    coalesce(s.n_mod_since_analyze, 0)::bigint   AS n_mod_since_analyze,
    CASE WHEN rel.vac_max IS NOT NULL AND rel.vac_max >= 0
         THEN least(rel.vac_base + rel.vac_scale * rel.reltuples, rel.vac_max)
         ELSE rel.vac_base + rel.vac_scale * rel.reltuples
    END                                          AS vacuum_threshold,
    rel.anl_base + rel.anl_scale * rel.reltuples AS analyze_threshold,
    s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
FROM rel
LEFT JOIN pg_inherits inh ON inh.inhrelid = rel.oid AND rel.relispartition
LEFT JOIN pg_stat_all_tables s ON s.relid = rel.oid
ORDER BY rel.nspname, rel.relname;
