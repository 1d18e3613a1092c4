-- Every top-level index (not a partition of another index) outside the system schemas.
-- A partitioned index's size and scans are the sums over the leaf indexes of its
-- partition tree. Key columns, operator classes, collations and options are returned as
-- 1-based arrays for `dmdb indexes report`'s duplicate rule (computed in Python).
SELECT
    n.nspname                                              AS schema,
    tc.relname                                             AS table,
    ic.relname                                             AS index,
    ic.oid::bigint                                         AS oid,
    tc.oid::bigint                                         AS table_oid,
    am.amname                                              AS method,
    agg.size_bytes::bigint                                 AS size_bytes,
    agg.scans::bigint                                      AS scans,
    agg.last_scan                                          AS last_scan,
    x.indisunique                                          AS is_unique,
    x.indisprimary                                         AS is_primary,
    con.conname                                            AS constraint_name,
    x.indpred IS NOT NULL                                  AS partial,
    x.indexprs IS NOT NULL                                 AS expression,
    x.indisvalid                                           AS valid,
    ic.relkind = 'I'                                       AS partitioned,
    agg.leaves::int                                        AS leaf_indexes,
    x.indnkeyatts::int                                     AS key_count,
    string_to_array(x.indkey::text, ' ')::int[]            AS attnums,
    string_to_array(x.indclass::text, ' ')::bigint[]       AS opclasses,
    string_to_array(x.indcollation::text, ' ')::bigint[]   AS collations,
    string_to_array(x.indoption::text, ' ')::int[]         AS options,
    pg_get_indexdef(ic.oid)                                AS definition
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class tc ON tc.oid = x.indrelid
JOIN pg_am am ON am.oid = ic.relam
-- The constraint the index implements (primary key, unique, exclusion); a foreign key of
-- the table referencing itself (concepts.parent_id) names the index too, and is not one.
LEFT JOIN pg_constraint con ON con.conindid = ic.oid AND con.conrelid = tc.oid
                           AND con.contype IN ('p', 'u', 'x')
CROSS JOIN LATERAL (
    SELECT coalesce(sum(pg_relation_size(t.relid)), 0) AS size_bytes,
           coalesce(sum(s.idx_scan), 0)                AS scans,
           max(s.last_idx_scan)                        AS last_scan,
           count(*) FILTER (WHERE t.isleaf)            AS leaves
    FROM (  -- pg_partition_tree() returns nothing for an index outside a partition tree
        SELECT p.relid, p.isleaf FROM pg_partition_tree(ic.oid) p WHERE ic.relkind = 'I'
        UNION ALL
        SELECT ic.oid::regclass, true WHERE ic.relkind <> 'I'
    ) t
    LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = t.relid
) agg
WHERE NOT ic.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, tc.relname, ic.relname;
