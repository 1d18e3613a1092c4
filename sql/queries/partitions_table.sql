-- What planning needs to know about one partitioned table (%(name)s, as text, resolved
-- with the search_path; or %(oid)s when it is not NULL): its schema and name, strategy,
-- the partition key column and its type (NULL for an expression or multi-column key),
-- the DEFAULT partition, the
-- columns a row move copies (not dropped, not generated, in order) and the tables its
-- foreign keys reference (ATTACH and DETACH lock those: SHARE ROW EXCLUSIVE); and of the
-- DEFAULT partition what a create that turns it into a month's partition needs: its
-- indexes' names (renamed to the month's), its privileges (given to the new DEFAULT)
-- and whether a CHECK named dmdb_default_moving is on it (left by a killed run).
SELECT n.nspname AS table_schema,
       p.relname AS table_name,
       pt.partstrat AS strategy,
       CASE WHEN pt.partnatts = 1 AND pt.partattrs[0] <> 0
            THEN (SELECT a.attname FROM pg_attribute a
                  WHERE a.attrelid = p.oid AND a.attnum = pt.partattrs[0]) END AS key_column,
       CASE WHEN pt.partnatts = 1 AND pt.partattrs[0] <> 0
            THEN (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                  WHERE a.attrelid = p.oid AND a.attnum = pt.partattrs[0]) END AS key_type,
       dn.nspname AS default_schema,
       d.relname AS default_name,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = ''
             ORDER BY a.attnum) AS columns,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(t.nspname, t.relname)
                                  ORDER BY t.nspname, t.relname), '[]')
        FROM (SELECT DISTINCT fn.nspname::text, f.relname::text
              FROM pg_constraint k
              JOIN pg_class f ON f.oid = k.confrelid
              JOIN pg_namespace fn ON fn.oid = f.relnamespace
              WHERE k.conrelid = p.oid AND k.contype = 'f' AND k.confrelid <> p.oid) AS t)
           AS fk_targets,
       p.oid::bigint AS oid,
       ARRAY(SELECT ic.relname::text FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
             WHERE x.indrelid = d.oid ORDER BY ic.relname) AS default_indexes,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type, a.is_grantable)
                   ORDER BY a.grantee, a.privilege_type), '[]')
        FROM aclexplode(d.relacl) AS a
        WHERE a.grantee <> d.relowner) AS default_grants,
       EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = d.oid
               AND k.conname = 'dmdb_default_moving') AS default_moving
FROM pg_class p
JOIN pg_namespace n ON n.oid = p.relnamespace
JOIN pg_partitioned_table pt ON pt.partrelid = p.oid
LEFT JOIN pg_class d ON d.oid = pt.partdefid
LEFT JOIN pg_namespace dn ON dn.oid = d.relnamespace
WHERE p.oid = coalesce(%(oid)s::oid, to_regclass(%(name)s));
