-- Estimated table bloat, without reading a page: the pages a table should need (rows
-- from reltuples, row width from pg_stats' avg_width and null_frac, the tuple and page
-- headers, alignment and fillfactor) against the pages it has (relpages). The same kind
-- of estimate as heroku pg-extras' `bloat`; roughly +/- 20 percent. Tables under
-- the min_pages parameter, and tables with a column lacking statistics (never analysed),
-- are skipped; `skipped` counts the latter.
WITH tbl AS (
    SELECT c.oid,
           n.nspname AS schemaname,
           c.relname,
           c.relpages,
           greatest(c.reltuples, 0) AS reltuples,
           coalesce((SELECT o.option_value::int FROM pg_catalog.pg_options_to_table(c.reloptions) o
                     WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
           current_setting('block_size')::int AS bs
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%%'
      AND c.relpages >= %(min_pages)s
),
cols AS (
    SELECT t.oid,
           count(*) AS ncols,
           count(st.attname) AS ncols_with_stats,
           sum((1 - coalesce(st.null_frac, 0)) * coalesce(st.avg_width, 0)) AS data_width,
           bool_or(coalesce(st.null_frac, 0) > 0) AS has_nulls
    FROM tbl t
    JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_stats st
           ON st.schemaname = t.schemaname AND st.tablename = t.relname
          AND st.attname = a.attname AND NOT st.inherited
    GROUP BY t.oid
),
est AS (
    SELECT t.*,
           c.ncols, c.ncols_with_stats,
           -- tuple header (23 bytes + null bitmap) aligned to 8, then the data aligned to 8
           (ceil((23 + CASE WHEN c.has_nulls THEN ceil(c.ncols / 8.0) ELSE 0 END) / 8.0) * 8
            + ceil(c.data_width / 8.0) * 8) AS tuple_bytes
    FROM tbl t JOIN cols c ON c.oid = t.oid
),
pages AS (
    SELECT e.*,
           -- rows per page: usable page bytes (24-byte page header, fillfactor) over
           -- tuple + 4-byte line pointer
           greatest(1, floor((e.bs - 24) * e.fillfactor / 100.0 / (e.tuple_bytes + 4))) AS rows_per_page
    FROM est e
    WHERE e.ncols_with_stats = e.ncols
)
SELECT p.schemaname,
       p.relname,
       p.relpages::bigint AS pages,
       greatest(1, ceil(p.reltuples / p.rows_per_page))::bigint AS expected_pages,
       p.reltuples::float8 AS reltuples,
       round((p.relpages / greatest(1, ceil(p.reltuples / p.rows_per_page)))::numeric, 2)::float8
           AS bloat_ratio,
       (greatest(0, p.relpages - greatest(1, ceil(p.reltuples / p.rows_per_page))) * p.bs)::bigint
           AS wasted_bytes,
       (SELECT count(*) FROM est e WHERE e.ncols_with_stats < e.ncols) AS skipped
FROM pages p
ORDER BY wasted_bytes DESC, 1, 2
LIMIT 50;
