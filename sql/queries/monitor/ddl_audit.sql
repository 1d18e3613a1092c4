-- The DDL audit of migration 0005: the schema_audit table and its two event triggers,
-- which 0005 creates only when run by a superuser. evtenabled 'D' is disabled.
SELECT pg_catalog.to_regclass('public.schema_audit') IS NOT NULL AS table_present,
       coalesce(array_agg(t.evtname::text ORDER BY t.evtname)
                    FILTER (WHERE t.evtenabled <> 'D'), '{}') AS enabled,
       coalesce(array_agg(t.evtname::text ORDER BY t.evtname)
                    FILTER (WHERE t.evtenabled = 'D'), '{}') AS disabled
FROM pg_catalog.pg_event_trigger t
WHERE t.evtname IN ('schema_audit_ddl', 'schema_audit_drop');
