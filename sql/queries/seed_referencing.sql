-- The tables outside a reset's list whose foreign keys reference a table on it (directly
-- or through another such table): a TRUNCATE of the list would have to empty them too.
-- The parameter: the list (text[] of names as the search path resolves them). A
-- partition's foreign key is its parent's (conparentid): the top-level table is named.
WITH RECURSIVE listed AS (
    SELECT to_regclass(t)::oid AS oid FROM unnest(%s::text[]) AS t
), reached (oid, referenced) AS (
    SELECT c.conrelid, c.confrelid
    FROM pg_constraint c
    WHERE c.contype = 'f' AND c.conparentid = 0
      AND c.confrelid IN (SELECT oid FROM listed)
      AND c.conrelid NOT IN (SELECT oid FROM listed)
    UNION
    SELECT c.conrelid, c.confrelid
    FROM pg_constraint c
    JOIN reached r ON c.confrelid = r.oid
    WHERE c.contype = 'f' AND c.conparentid = 0
      AND c.conrelid NOT IN (SELECT oid FROM listed)
)
SELECT DISTINCT ON (oid) oid::regclass::text, referenced::regclass::text
FROM reached
ORDER BY oid, referenced
