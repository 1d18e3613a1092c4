-- The one count of a DEFAULT partition's rows (dmdb.partitions.catalog.read_default),
-- for a table RANGE partitioned on one timestamptz column: rows by UTC month of the
-- key. {default} and {key} are composed identifiers; at most %(cap)s rows are read
-- (NULL: all of them). A key no month can name (±infinity, NULL) comes back as `label`.
SELECT CASE WHEN isfinite(k) THEN extract(year FROM k AT TIME ZONE 'UTC')::int END AS year,
       CASE WHEN isfinite(k) THEN extract(month FROM k AT TIME ZONE 'UTC')::int END AS month,
       CASE WHEN k IS NULL THEN 'NULL' WHEN NOT isfinite(k) THEN k::text END AS label,
       count(*) AS rows
FROM (SELECT {key} AS k FROM {default} LIMIT %(cap)s) AS s
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
