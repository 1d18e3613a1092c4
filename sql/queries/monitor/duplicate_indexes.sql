-- Indexes made redundant by another on the same table and with the same access method:
-- for btree, its key columns (with their operator classes and collations) are a leading
-- prefix of the other's; for other methods, the same columns. Unique, partial and
-- expression indexes are never reported as redundant (they do what the other cannot).
WITH idx AS (
    SELECT x.indexrelid,
           x.indrelid,
           i.relam,
           x.indisunique,
           x.indisvalid,
           x.indpred IS NOT NULL AS partial,
           x.indexprs IS NOT NULL AS expression,
           string_to_array(x.indkey::text, ' ')::int[] AS cols,
           string_to_array(x.indclass::text, ' ')::oid[] AS classes,
           string_to_array(x.indcollation::text, ' ')::oid[] AS collations,
           x.indnkeyatts
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
)
SELECT n.nspname AS schemaname,
       t.relname,
       ri.relname AS indexrelname,
       ci.relname AS covered_by,
       am.amname AS method,
       pg_catalog.pg_relation_size(r.indexrelid)::bigint AS size_bytes,
       pg_catalog.pg_get_indexdef(r.indexrelid) AS definition,
       pg_catalog.pg_get_indexdef(c.indexrelid) AS covering_definition
FROM idx r
JOIN idx c ON c.indrelid = r.indrelid
          AND c.relam = r.relam
          AND c.indexrelid <> r.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = r.relam
JOIN pg_catalog.pg_class ri ON ri.oid = r.indexrelid
JOIN pg_catalog.pg_class ci ON ci.oid = c.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = r.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE NOT r.indisunique AND NOT r.partial AND NOT r.expression
  AND NOT c.partial AND NOT c.expression AND c.indisvalid
  AND r.indnkeyatts = cardinality(r.cols)     -- no INCLUDE columns on the redundant one
  AND (
        (am.amname = 'btree'
         AND c.indnkeyatts >= r.indnkeyatts
         AND c.cols[1:r.indnkeyatts] = r.cols
         AND c.classes[1:r.indnkeyatts] = r.classes
         AND c.collations[1:r.indnkeyatts] = r.collations)
     OR (c.cols[1:c.indnkeyatts] = r.cols
         AND c.indnkeyatts = r.indnkeyatts
         AND c.classes[1:c.indnkeyatts] = r.classes
         AND c.collations[1:c.indnkeyatts] = r.collations)
  )
  -- two identical non-unique indexes: report only the newer one
  AND NOT (c.indnkeyatts = r.indnkeyatts AND NOT c.indisunique AND c.indexrelid > r.indexrelid)
ORDER BY 1, 2, 3, 4;
