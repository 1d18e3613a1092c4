-- In the scratch copy: the foreign keys declared on the tables %(tables)s (regclass
-- text) and on their partitions, and every relation of their partition trees (for
-- ALTER TABLE ... DISABLE TRIGGER USER). The copy holds only the tables the workload
-- searches, so their foreign keys would refuse the rows; nothing of the trial needs them.
WITH tree AS (
    SELECT r.name::regclass::oid AS relid FROM unnest(%(tables)s::text[]) AS r(name)
    UNION
    SELECT t.relid
    FROM unnest(%(tables)s::text[]) AS r(name)
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(r.name::regclass) t
)
SELECT 'fk' AS what, c.conrelid::regclass::text AS rel, c.conname::text AS name
FROM pg_catalog.pg_constraint c
WHERE c.contype = 'f' AND c.conparentid = 0 AND c.conrelid IN (SELECT relid FROM tree)
UNION ALL
SELECT DISTINCT 'triggers', g.tgrelid::regclass::text, NULL
FROM pg_catalog.pg_trigger g
WHERE NOT g.tgisinternal AND g.tgrelid IN (SELECT relid FROM tree)
ORDER BY 1, 2, 3;
