-- What one table (%(rel)s, an oid) depends on outside itself: the objects that a DROP of
-- them would refuse over (or cascade into) this table. Read before archiving a partition
-- (so the archived table can be cut loose from the live schema) and after (what is
-- left, reported). The table's parts: itself and its columns, column defaults,
-- constraints, indexes, its own (not cloned) triggers, policies, rules and row type.
-- Left out: automatic, internal and partition dependencies (they go with DETACH or
-- with the table), the table's own parts, its schema, and objects made by initdb.
WITH own AS (
    SELECT 'pg_class'::regclass AS classid, %(rel)s::oid AS objid
    UNION ALL SELECT 'pg_attrdef'::regclass, ad.oid FROM pg_catalog.pg_attrdef ad
        WHERE ad.adrelid = %(rel)s::oid
    UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_catalog.pg_constraint k
        WHERE k.conrelid = %(rel)s::oid
    UNION ALL SELECT 'pg_class'::regclass, x.indexrelid FROM pg_catalog.pg_index x
        WHERE x.indrelid = %(rel)s::oid
    UNION ALL SELECT 'pg_trigger'::regclass, t.oid FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid = %(rel)s::oid AND NOT t.tgisinternal AND t.tgparentid = 0
    UNION ALL SELECT 'pg_policy'::regclass, p.oid FROM pg_catalog.pg_policy p
        WHERE p.polrelid = %(rel)s::oid
    UNION ALL SELECT 'pg_rewrite'::regclass, r.oid FROM pg_catalog.pg_rewrite r
        WHERE r.ev_class = %(rel)s::oid
    UNION ALL SELECT 'pg_type'::regclass, c.reltype FROM pg_catalog.pg_class c
        WHERE c.oid = %(rel)s::oid AND c.reltype <> 0
)
SELECT CASE d.classid
           WHEN 'pg_constraint'::regclass THEN
               CASE (SELECT k.contype FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid)
                   WHEN 'f' THEN 'foreign key' ELSE 'constraint' END
           WHEN 'pg_attrdef'::regclass THEN 'default'
           WHEN 'pg_trigger'::regclass THEN 'trigger'
           WHEN 'pg_policy'::regclass THEN 'policy'
           WHEN 'pg_rewrite'::regclass THEN 'rule'
           WHEN 'pg_type'::regclass THEN 'type'
           ELSE CASE WHEN d.objid <> %(rel)s::oid THEN 'index'
                     WHEN d.objsubid <> 0 THEN 'column' ELSE 'table' END
       END AS kind,
       CASE d.classid
           WHEN 'pg_constraint'::regclass THEN
               (SELECT k.conname FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid)
           WHEN 'pg_attrdef'::regclass THEN
               (SELECT a.attname FROM pg_catalog.pg_attrdef ad
                JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                WHERE ad.oid = d.objid)
           WHEN 'pg_trigger'::regclass THEN
               (SELECT t.tgname FROM pg_catalog.pg_trigger t WHERE t.oid = d.objid)
           WHEN 'pg_policy'::regclass THEN
               (SELECT p.polname FROM pg_catalog.pg_policy p WHERE p.oid = d.objid)
       END::text AS name,
       pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS dependent,
       string_agg(pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ', '
                  ORDER BY d.refclassid, d.refobjid, d.refobjsubid) AS depends_on
FROM own
JOIN pg_catalog.pg_depend d ON d.classid = own.classid AND d.objid = own.objid
WHERE d.deptype = 'n'
  AND d.refobjid >= 16384  -- FirstNormalObjectId: not initdb's own objects
  AND d.refclassid <> 'pg_namespace'::regclass
  AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = %(rel)s::oid)
  AND NOT EXISTS (SELECT FROM own o WHERE o.classid = d.refclassid AND o.objid = d.refobjid)
GROUP BY d.classid, d.objid, d.objsubid
ORDER BY 1, 2, 3;
