-- The partitions of one RANGE-partitioned table (%(parent)s, an oid) with their bounds
-- as timestamptz: NULL for MINVALUE / MAXVALUE and for the DEFAULT partition, which is
-- flagged. The bound text PostgreSQL prints is cast back within the same session, so
-- the session's TimeZone and DateStyle do not matter.
SELECT n.nspname AS partition_schema,
       c.relname AS partition_name,
       (c.oid = pt.partdefid) AS is_default,
       CASE WHEN m[1] IS NULL OR m[1] = 'MINVALUE' THEN NULL
            ELSE btrim(m[1], '''')::timestamptz END AS range_from,
       CASE WHEN m[2] IS NULL OR m[2] = 'MAXVALUE' THEN NULL
            ELSE btrim(m[2], '''')::timestamptz END AS range_to
FROM pg_partitioned_table pt
JOIN pg_inherits i ON i.inhparent = pt.partrelid
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                               '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') AS m ON true
WHERE pt.partrelid = %(parent)s
ORDER BY 4 NULLS FIRST, c.relname;
