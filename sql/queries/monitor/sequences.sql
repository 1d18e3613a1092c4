-- Every sequence (identity columns' included) and how much of its range is used.
-- The usable maximum is capped by the type of the column that owns the sequence: a
-- bigint sequence feeding an integer column runs out at 2^31 - 1.
WITH owner_type AS (
    SELECT d.objid AS seqid,
           min(CASE a.atttypid
                   WHEN 'int2'::regtype THEN 32767
                   WHEN 'int4'::regtype THEN 2147483647
                   ELSE 9223372036854775807
               END)::numeric AS type_max,
           string_agg(format('%s.%s', d.refobjid::regclass, a.attname), ', ') AS owned_by
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0
    GROUP BY d.objid
)
SELECT s.schemaname,
       s.sequencename,
       s.data_type::text AS data_type,
       o.owned_by,
       s.last_value,
       s.min_value,
       s.max_value,
       s.increment_by,
       CASE WHEN s.increment_by > 0
            THEN least(s.max_value::numeric, coalesce(o.type_max, s.max_value::numeric))
            ELSE s.min_value::numeric END::bigint AS limit_value,
       CASE
           WHEN s.last_value IS NULL THEN 0
           WHEN s.increment_by > 0 THEN
               (s.last_value::numeric - s.min_value)
               / nullif(least(s.max_value::numeric, coalesce(o.type_max, s.max_value::numeric))
                        - s.min_value, 0)
           ELSE (s.max_value::numeric - s.last_value) / nullif(s.max_value::numeric - s.min_value, 0)
       END::float8 AS used_ratio
FROM pg_catalog.pg_sequences s
JOIN pg_catalog.pg_class c ON c.relname = s.sequencename
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
LEFT JOIN owner_type o ON o.seqid = c.oid
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY used_ratio DESC NULLS LAST, s.schemaname, s.sequencename;
