-- Rollback of 0002: drop the reference tables and their trigger functions.

DROP TABLE content;

DROP TABLE concept_prerequisites;

DROP TABLE concepts;

DROP TABLE users;

DROP FUNCTION concepts_propagate_category();

DROP FUNCTION content_sync_category();

DROP FUNCTION concepts_refuse_parent_cycle();

DROP FUNCTION concept_prerequisites_refuse_cycle();
