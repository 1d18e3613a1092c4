-- Tables to copy sample rows of (not partitions: rows go through their root), parents
-- before the tables that reference them, with their insertable columns.
WITH RECURSIVE t AS (
    SELECT c.oid, n.nspname, c.relname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_%'
      AND c.relname NOT LIKE '\_yoyo\_%' AND c.relname NOT LIKE '\_dmdb\_%'
      AND c.relname <> 'yoyo_lock'
), depth AS (
    SELECT oid, 0 AS d FROM t
    UNION ALL
    SELECT f.conrelid, depth.d + 1
    FROM pg_constraint f
    JOIN depth ON f.confrelid = depth.oid
    WHERE f.contype = 'f' AND f.conrelid <> f.confrelid AND depth.d < 20
)
SELECT t.nspname::text, t.relname::text,
       array(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = ''
             ORDER BY a.attnum)
FROM t
JOIN (SELECT oid, max(d) AS d FROM depth GROUP BY oid) x USING (oid)
ORDER BY x.d, t.nspname, t.relname
