-- Rollback of 0005. The event triggers go first: they fire on DDL, including the drops
-- below. IF EXISTS because 0005 creates them only when run by a superuser.

DROP EVENT TRIGGER IF EXISTS schema_audit_drop;

DROP EVENT TRIGGER IF EXISTS schema_audit_ddl;

DROP FUNCTION schema_audit_record();

DROP TABLE schema_audit;

DROP MATERIALIZED VIEW user_progress;

DROP MATERIALIZED VIEW content_performance;

DROP MATERIALIZED VIEW daily_concept_mastery;
