-- The one reading of partition bounds (dmdb.partitions.catalog.read_bounds): every
-- partition of one partitioned table (%(parent)s, an oid), or of every partitioned table
-- when it is NULL, with
--   * the bound as PostgreSQL prints it (pg_get_expr; the session's TimeZone applies),
--   * a RANGE partition's FROM / TO values as that text, unquoted,
--   * for a table RANGE partitioned on one timestamptz column, the bounds as
--     timestamptz: NULL for MINVALUE / MAXVALUE and for the DEFAULT partition, which is
--     flagged. The printed text is cast back within the same session, so the session's
--     TimeZone and DateStyle do not matter.
WITH parts AS (
    SELECT pt.partrelid, pt.partdefid,
           (pt.partstrat = 'r' AND pt.partnatts = 1 AND pt.partattrs[0] <> 0
            AND (SELECT a.atttypid FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0])
                = 'timestamp with time zone'::pg_catalog.regtype) AS on_timestamptz,
           c.oid, c.relname, c.relnamespace, c.relkind,
           pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
    FROM pg_catalog.pg_partitioned_table pt
    JOIN pg_catalog.pg_inherits i ON i.inhparent = pt.partrelid
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    WHERE %(parent)s::oid IS NULL OR pt.partrelid = %(parent)s::oid
), parsed AS (
    SELECT parts.*, m[1] AS from_raw, m[2] AS to_raw
    FROM parts
    LEFT JOIN LATERAL regexp_match(parts.bound, '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') AS m
        ON true
)
SELECT p.partrelid::bigint AS parent_oid,
       n.nspname AS partition_schema,
       p.relname AS partition_name,
       p.oid::bigint AS partition_oid,
       (p.oid = p.partdefid) AS is_default,
       p.relkind = 'p' AS sub_partitioned,
       p.bound,
       CASE WHEN p.from_raw LIKE '''%%''' THEN replace(btrim(p.from_raw, ''''), '''''', '''')
            ELSE p.from_raw END AS from_text,
       CASE WHEN p.to_raw LIKE '''%%''' THEN replace(btrim(p.to_raw, ''''), '''''', '''')
            ELSE p.to_raw END AS to_text,
       CASE WHEN p.on_timestamptz AND p.from_raw <> 'MINVALUE'
            THEN btrim(p.from_raw, '''')::timestamptz END AS range_from,
       CASE WHEN p.on_timestamptz AND p.to_raw <> 'MAXVALUE'
            THEN btrim(p.to_raw, '''')::timestamptz END AS range_to
FROM parsed p
JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
ORDER BY p.partrelid, (p.oid = p.partdefid), range_from NULLS FIRST, from_text, p.relname;
