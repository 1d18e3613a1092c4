-- A function's definition by name (the one of that name in the schema), for the parser.
SELECT p.oid::regprocedure::text AS signature, l.lanname AS language,
       pg_catalog.pg_get_functiondef(p.oid) AS definition, p.prosrc AS body,
       ARRAY(SELECT unnest(p.proargnames))::text[] AS arg_names
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = %(schema)s::regnamespace AND p.proname = %(name)s
ORDER BY p.oid
