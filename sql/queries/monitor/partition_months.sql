-- For a monthly RANGE-partitioned table: each month from the current one (UTC) to
-- `horizon` months ahead, and the partition whose range holds that month's first
-- instant (NULL: rows of that month would land in the DEFAULT partition, or fail).
WITH bounds AS (
    SELECT c.relname,
           m[1]::timestamptz AS lo,
           m[2]::timestamptz AS hi
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                    'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m
    WHERE i.inhparent = %(parent)s::regclass
),
months AS (
    SELECT g.n AS months_ahead,
           (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => g.n))
               AT TIME ZONE 'UTC' AS month_start
    FROM generate_series(0, %(horizon)s) AS g(n)
)
SELECT m.months_ahead,
       to_char(m.month_start AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       (SELECT b.relname FROM bounds b
        WHERE b.lo <= m.month_start AND m.month_start < b.hi
        ORDER BY b.lo LIMIT 1) AS partition
FROM months m
ORDER BY m.months_ahead;
