-- Analytics materialized views and the DDL audit.
--
-- Each materialized view has a unique index on plain columns covering every row, which
-- REFRESH MATERIALIZED VIEW CONCURRENTLY requires (readers are not blocked while it
-- refreshes). Days are UTC days, as are the learning_events partitions.
--
-- schema_audit records who changed the schema, when, and with what command tag. The
-- event triggers filling it need a superuser to create: without one they are skipped
-- with a NOTICE and the table stays empty. The audit function is SECURITY DEFINER (with
-- a pinned search_path) so DDL by any role can be recorded without that role being
-- able to write the audit table itself.

CREATE MATERIALIZED VIEW daily_concept_mastery AS
SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       e.concept_id,
       count(*) FILTER (WHERE e.event_type = 'question_answered') AS answers,
       count(*) FILTER (WHERE e.event_type = 'question_answered' AND e.is_correct) AS correct_answers,
       count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'question_answered') AS learners,
       avg(e.mastery_after) FILTER (WHERE e.event_type = 'question_answered') AS avg_mastery_after,
       avg(e.mastery_after - e.mastery_before)
           FILTER (WHERE e.event_type = 'question_answered') AS avg_mastery_gain,
       count(*) FILTER (WHERE e.event_type = 'concept_mastered') AS masteries
FROM learning_events e
WHERE e.concept_id IS NOT NULL
  AND e.event_type IN ('question_answered', 'concept_mastered')
GROUP BY 1, 2;

-- The view was created just above in this transaction: nothing for the build to block.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX daily_concept_mastery_day_concept_uidx
    ON daily_concept_mastery (day, concept_id);

CREATE MATERIALIZED VIEW content_performance AS
SELECT c.content_id,
       c.concept_id,
       c.category,
       c.is_active,
       c.version,
       c.parent_content_id,
       c.difficulty,
       c.discrimination,
       c.guess_parameter,
       coalesce(a.answers, 0) AS answers,
       coalesce(a.correct_answers, 0) AS correct_answers,
       a.correct_answers::double precision / nullif(a.answers, 0) AS accuracy,
       a.avg_response_time_ms,
       a.avg_hints_used,
       a.avg_quality,
       a.avg_mastery_gain,
       coalesce(a.learners, 0) AS learners,
       a.last_answered_at
FROM content c
LEFT JOIN (
    SELECT e.content_id,
           count(*) AS answers,
           count(*) FILTER (WHERE e.is_correct) AS correct_answers,
           avg(e.response_time_ms) AS avg_response_time_ms,
           avg(e.hints_used) AS avg_hints_used,
           avg(e.quality) AS avg_quality,
           avg(e.mastery_after - e.mastery_before) AS avg_mastery_gain,
           count(DISTINCT e.user_id) AS learners,
           max(e.occurred_at) AS last_answered_at
    FROM learning_events e
    WHERE e.event_type = 'question_answered' AND e.content_id IS NOT NULL
    GROUP BY e.content_id
) a ON a.content_id = c.content_id;

-- The view was created just above in this transaction: nothing for the build to block.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX content_performance_content_uidx ON content_performance (content_id);

CREATE MATERIALIZED VIEW user_progress AS
SELECT u.user_id,
       u.xp,
       u.current_streak,
       u.longest_streak,
       u.last_active_date,
       coalesce(k.concepts_started, 0) AS concepts_started,
       coalesce(k.concepts_mastered, 0) AS concepts_mastered,
       k.avg_mastery,
       k.last_interaction,
       coalesce(e.answers, 0) AS answers,
       coalesce(e.correct_answers, 0) AS correct_answers,
       e.correct_answers::double precision / nullif(e.answers, 0) AS accuracy,
       e.last_event_at
FROM users u
LEFT JOIN (
    SELECT ks.user_id,
           count(*) FILTER (WHERE ks.attempts > 0) AS concepts_started,
           count(*) FILTER (WHERE ks.mastery_probability >= 0.95) AS concepts_mastered,
           avg(ks.mastery_probability) AS avg_mastery,
           max(ks.last_interaction) AS last_interaction
    FROM knowledge_states ks
    GROUP BY ks.user_id
) k ON k.user_id = u.user_id
LEFT JOIN (
    SELECT le.user_id,
           count(*) FILTER (WHERE le.event_type = 'question_answered') AS answers,
           count(*) FILTER (WHERE le.event_type = 'question_answered' AND le.is_correct)
               AS correct_answers,
           max(le.occurred_at) AS last_event_at
    FROM learning_events le
    GROUP BY le.user_id
) e ON e.user_id = u.user_id;

-- The view was created just above in this transaction: nothing for the build to block.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX user_progress_user_uidx ON user_progress (user_id);

-- The default privileges give dm_app DML on every new relation; on a materialized view
-- that is meaningless, so it keeps SELECT only.
REVOKE INSERT, UPDATE, DELETE ON daily_concept_mastery, content_performance, user_progress
    FROM dm_app;

CREATE TABLE schema_audit (
    audit_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    role_name text,
    command_tag text,
    object_type text,
    object_identity text,
    schema_name text
);

-- The audit is written only by the event triggers: the application may read it.
REVOKE INSERT, UPDATE, DELETE ON schema_audit FROM dm_app;

REVOKE USAGE ON SEQUENCE schema_audit_audit_id_seq FROM dm_app;

-- One function for both events: ddl_command_end reports created and altered objects,
-- sql_drop the dropped ones. Temporary objects are not schema changes and are skipped,
-- and so is schema_audit itself being dropped (the rollback drops the triggers first;
-- this keeps any other order from failing).
CREATE FUNCTION schema_audit_record() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF to_regclass('public.schema_audit') IS NULL THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'sql_drop' THEN
        INSERT INTO public.schema_audit
            (role_name, command_tag, object_type, object_identity, schema_name)
        SELECT session_user, TG_TAG, d.object_type, d.object_identity, d.schema_name
        FROM pg_event_trigger_dropped_objects() d
        WHERE NOT d.is_temporary
          AND d.object_identity IS DISTINCT FROM 'public.schema_audit'
          AND d.original;
    ELSE
        INSERT INTO public.schema_audit
            (role_name, command_tag, object_type, object_identity, schema_name)
        SELECT session_user, c.command_tag, c.object_type, c.object_identity, c.schema_name
        FROM pg_event_trigger_ddl_commands() c
        WHERE coalesce(c.schema_name, '') NOT LIKE 'pg\_temp%'
          AND coalesce(c.schema_name, '') NOT LIKE 'pg\_toast\_temp%';
    END IF;
END
$fn$;

DO $do$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER schema_audit_ddl ON ddl_command_end
            EXECUTE FUNCTION schema_audit_record();
        CREATE EVENT TRIGGER schema_audit_drop ON sql_drop
            EXECUTE FUNCTION schema_audit_record();
    ELSE
        RAISE NOTICE 'DDL audit event triggers need a superuser: skipped (schema_audit stays empty)';
    END IF;
END
$do$;
