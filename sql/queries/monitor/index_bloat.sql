-- Estimated btree index bloat without reading a page: the leaf pages the index should
-- need (reltuples index entries of 8 bytes of header plus the key columns' pg_stats
-- avg_width, aligned to 8, a 4-byte line pointer each, pages of block_size less the
-- 24-byte page header and 16-byte btree trailer, filled to the index's fillfactor,
-- default 90) plus the meta page, against the pages it has (relpages). Roughly +/- 20
-- percent; btree deduplication only makes an index smaller than estimated. Expression
-- indexes, indexes under min_pages, and those on a column without statistics are skipped.
WITH idx AS (
    SELECT ic.oid,
           n.nspname AS schemaname,
           tc.relname,
           ic.relname AS indexrelname,
           tc.oid AS table_oid,
           ic.relpages,
           greatest(ic.reltuples, 0) AS reltuples,
           x.indkey,
           coalesce((SELECT o.option_value::int FROM pg_catalog.pg_options_to_table(ic.reloptions) o
                     WHERE o.option_name = 'fillfactor'), 90) AS fillfactor,
           current_setting('block_size')::int AS bs
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
    JOIN pg_catalog.pg_class tc ON tc.oid = x.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
    WHERE am.amname = 'btree'
      AND ic.relkind = 'i'
      AND x.indexprs IS NULL
      AND x.indisvalid
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%%'
      AND ic.relpages >= %(min_pages)s
),
cols AS (
    SELECT i.oid,
           count(*) AS ncols,
           count(st.attname) AS ncols_with_stats,
           sum(coalesce(st.avg_width, 0)) AS data_width
    FROM idx i
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.table_oid AND a.attnum = k.attnum
    LEFT JOIN pg_catalog.pg_stats st
           ON st.schemaname = i.schemaname AND st.tablename = i.relname
          AND st.attname = a.attname AND NOT st.inherited
    GROUP BY i.oid
),
est AS (
    SELECT i.*,
           greatest(1, floor((i.bs - 40) * i.fillfactor / 100.0
                             / (ceil((8 + c.data_width) / 8.0) * 8 + 4))) AS per_page
    FROM idx i JOIN cols c ON c.oid = i.oid
    WHERE c.ncols_with_stats = c.ncols
)
SELECT e.schemaname,
       e.relname,
       e.indexrelname,
       e.relpages::bigint AS pages,
       (ceil(e.reltuples / e.per_page) + 1)::bigint AS expected_pages,
       e.reltuples::float8 AS reltuples,
       round((e.relpages / (ceil(e.reltuples / e.per_page) + 1))::numeric, 2)::float8 AS bloat_ratio,
       (greatest(0, e.relpages - (ceil(e.reltuples / e.per_page) + 1)) * e.bs)::bigint AS wasted_bytes
FROM est e
ORDER BY wasted_bytes DESC, 1, 2, 3
LIMIT 50;
