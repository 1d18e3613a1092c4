-- transactional: false
-- One CHECK per learner-state table, through a validator function, for the per-answer
-- writes of knowledge_states and review_schedule.
--
-- PostgreSQL reads back (stringToNode), plans (expression_planner) and compiles every
-- CHECK constraint of a table for each INSERT/UPDATE statement it executes, whatever
-- columns the statement sets: the expressions are kept per executor run, not cached.
-- record_answer writes both tables on every answer: 16 CHECKs, ~16 kB of stored node
-- trees (a float8 bound such as `BETWEEN 0 AND 0.5` is stored as a numeric constant and
-- its cast, folded again on each run), read and planned per answer. Here each table
-- keeps ONE CHECK that calls an IMMUTABLE PL/pgSQL validator with the row's columns (a
-- small tree: a call and its column references); the validator tests the same
-- conditions and, when one is FALSE, raises the error PostgreSQL raised for the
-- constraint it replaces: SQLSTATE 23514 check_violation, the same message ('new row
-- for relation "<partition or table>" violates check constraint "<old name>"'),
-- CONSTRAINT = the old name, TABLE/SCHEMA of the relation written (tableoid: the
-- partition, as PostgreSQL reports it), COLUMN when the old constraint is on one
-- column. Callers that match the SQLSTATE or the constraint name see no difference;
-- only the "Failing row contains" detail is gone.
--   * same values refused: each condition is the old CHECK's expression verbatim, on
--     parameters of the column's type (the same casts and operators); a NULL passes, as
--     in a CHECK (only FALSE refuses); with several violated, the first in name order is
--     reported, the order in which PostgreSQL evaluates a table's CHECKs.
--     tests/test_check_validators.py compares both on edge values and checks every name.
--   * measured (pgbench, one answer per transaction, server CPU per answer, embedded
--     PG 18 without fsync, alternating runs on a shared machine): record_answer about
--     -35 µs of ~340 with the validators; dropping the three row CHECKs altogether
--     would save ~40 more. The plpgsql call is the validator's main cost, so a table
--     whose CHECKs are small gains little: users keeps its 6 small CHECKs (~3 kB, about
--     a validator call's cost by the same measure), learning_events its own (the bare
--     INSERT the benchmark compares with writes it too).
--
-- Locks (non-transactional: each statement commits on its own, so no lock is held
-- across the validation scans, and every statement can run again after a failure):
--   1. ADD CONSTRAINT ... NOT VALID: ACCESS EXCLUSIVE for an instant (catalog only;
--      waiting for it is bounded by the engine's lock_timeout and retried); from then
--      on every new or updated row is checked by both the old and the new constraint.
--   2. VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE while it scans the table (reads and
--      writes go on; one validator call per existing row).
--   3. DROP the old constraints: ACCESS EXCLUSIVE for an instant.
-- The validators are defined here (migrations run before sql/functions/) and must not
-- change without a migration: the constraints depend on them.
--
-- squawk, silenced for this file: constraint-missing-not-valid, because each VALIDATE
-- runs in its own transaction (`transactional: false` above), not in the transaction of
-- its ADD ... NOT VALID that squawk assumes (sql/squawk.toml); ban-drop-constraint,
-- because each dropped CHECK is replaced, before it is dropped, by the validated row
-- CHECK that refuses the same rows under the same constraint name in the error.
-- squawk-ignore-file constraint-missing-not-valid, ban-drop-constraint

CREATE OR REPLACE FUNCTION check_knowledge_states_row(
    p_table oid,
    p_initial_knowledge double precision,
    p_learning_rate double precision,
    p_guess_parameter double precision,
    p_slip_parameter double precision,
    p_mastery_probability double precision,
    p_temporal_decay double precision,
    p_personal_learning_velocity double precision,
    p_attempts integer,
    p_correct_attempts integer
) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_failed text;
    v_column text;
    v_rel name;
    v_schema name;
BEGIN
    IF p_attempts >= 0 AND p_correct_attempts >= 0 AND p_correct_attempts <= p_attempts
       AND p_guess_parameter BETWEEN 0 AND 0.5
       AND p_initial_knowledge BETWEEN 0 AND 1
       AND p_learning_rate BETWEEN 0 AND 1
       AND p_mastery_probability BETWEEN 0 AND 1
       AND p_personal_learning_velocity > 0 AND p_personal_learning_velocity < 'Infinity'
       AND p_slip_parameter BETWEEN 0 AND 0.5
       AND p_temporal_decay BETWEEN 0.9 AND 1 THEN
        RETURN true;
    END IF;
    -- A NULL passes a CHECK: only a FALSE refuses. The first refusing constraint in
    -- name order is reported, as PostgreSQL evaluates a table's CHECKs in name order.
    v_failed := CASE
        WHEN (p_attempts >= 0 AND p_correct_attempts >= 0 AND p_correct_attempts <= p_attempts) IS FALSE
            THEN 'knowledge_states_attempts_check'
        WHEN (p_guess_parameter BETWEEN 0 AND 0.5) IS FALSE
            THEN 'knowledge_states_guess_parameter_check'
        WHEN (p_initial_knowledge BETWEEN 0 AND 1) IS FALSE
            THEN 'knowledge_states_initial_knowledge_check'
        WHEN (p_learning_rate BETWEEN 0 AND 1) IS FALSE
            THEN 'knowledge_states_learning_rate_check'
        WHEN (p_mastery_probability BETWEEN 0 AND 1) IS FALSE
            THEN 'knowledge_states_mastery_probability_check'
        WHEN (p_personal_learning_velocity > 0 AND p_personal_learning_velocity < 'Infinity') IS FALSE
            THEN 'knowledge_states_personal_learning_velocity_check'
        WHEN (p_slip_parameter BETWEEN 0 AND 0.5) IS FALSE
            THEN 'knowledge_states_slip_parameter_check'
        WHEN (p_temporal_decay BETWEEN 0.9 AND 1) IS FALSE
            THEN 'knowledge_states_temporal_decay_check'
    END;
    IF v_failed IS NULL THEN
        RETURN true;
    END IF;
    v_column := CASE v_failed
        WHEN 'knowledge_states_guess_parameter_check' THEN 'guess_parameter'
        WHEN 'knowledge_states_initial_knowledge_check' THEN 'initial_knowledge'
        WHEN 'knowledge_states_learning_rate_check' THEN 'learning_rate'
        WHEN 'knowledge_states_mastery_probability_check' THEN 'mastery_probability'
        WHEN 'knowledge_states_personal_learning_velocity_check' THEN 'personal_learning_velocity'
        WHEN 'knowledge_states_slip_parameter_check' THEN 'slip_parameter'
        WHEN 'knowledge_states_temporal_decay_check' THEN 'temporal_decay'
    END;
    SELECT c.relname, n.nspname INTO v_rel, v_schema
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    v_rel := coalesce(v_rel, 'knowledge_states');
    IF v_column IS NULL THEN
        RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', v_rel, v_failed
            USING ERRCODE = 'check_violation', CONSTRAINT = v_failed, TABLE = v_rel,
                  SCHEMA = coalesce(v_schema, '');
    END IF;
    RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', v_rel, v_failed
        USING ERRCODE = 'check_violation', CONSTRAINT = v_failed, TABLE = v_rel,
              SCHEMA = coalesce(v_schema, ''), COLUMN = v_column;
END;
$$;

ALTER TABLE knowledge_states
    DROP CONSTRAINT IF EXISTS knowledge_states_row_check,
    ADD CONSTRAINT knowledge_states_row_check CHECK (check_knowledge_states_row(
        tableoid, initial_knowledge, learning_rate, guess_parameter, slip_parameter,
        mastery_probability, temporal_decay, personal_learning_velocity, attempts,
        correct_attempts)) NOT VALID;

ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_row_check;

ALTER TABLE knowledge_states
    DROP CONSTRAINT IF EXISTS knowledge_states_attempts_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_guess_parameter_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_initial_knowledge_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_learning_rate_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_mastery_probability_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_personal_learning_velocity_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_slip_parameter_check,
    DROP CONSTRAINT IF EXISTS knowledge_states_temporal_decay_check;

CREATE OR REPLACE FUNCTION check_review_schedule_row(
    p_table oid,
    p_easiness numeric,
    p_interval_days integer,
    p_repetitions integer,
    p_last_quality smallint,
    p_fsrs_state smallint,
    p_fsrs_step smallint,
    p_fsrs_stability double precision,
    p_fsrs_difficulty double precision
) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_failed text;
    v_column text;
    v_rel name;
    v_schema name;
BEGIN
    IF p_easiness >= 1.3 AND p_easiness < 'Infinity' AND p_easiness = round(p_easiness, 2)
       AND p_fsrs_difficulty BETWEEN 1 AND 10
       AND p_fsrs_stability >= 0.001 AND p_fsrs_stability < 'Infinity'
       AND p_fsrs_state BETWEEN 1 AND 3
       AND p_fsrs_step >= 0
       AND p_interval_days >= 0
       AND p_last_quality BETWEEN 0 AND 5
       AND p_repetitions >= 0 THEN
        RETURN true;
    END IF;
    -- A NULL passes a CHECK: only a FALSE refuses. The first refusing constraint in
    -- name order is reported, as PostgreSQL evaluates a table's CHECKs in name order.
    v_failed := CASE
        WHEN (p_easiness >= 1.3 AND p_easiness < 'Infinity' AND p_easiness = round(p_easiness, 2)) IS FALSE
            THEN 'review_schedule_easiness_check'
        WHEN (p_fsrs_difficulty BETWEEN 1 AND 10) IS FALSE
            THEN 'review_schedule_fsrs_difficulty_check'
        WHEN (p_fsrs_stability >= 0.001 AND p_fsrs_stability < 'Infinity') IS FALSE
            THEN 'review_schedule_fsrs_stability_check'
        WHEN (p_fsrs_state BETWEEN 1 AND 3) IS FALSE
            THEN 'review_schedule_fsrs_state_check'
        WHEN (p_fsrs_step >= 0) IS FALSE
            THEN 'review_schedule_fsrs_step_check'
        WHEN (p_interval_days >= 0) IS FALSE
            THEN 'review_schedule_interval_days_check'
        WHEN (p_last_quality BETWEEN 0 AND 5) IS FALSE
            THEN 'review_schedule_last_quality_check'
        WHEN (p_repetitions >= 0) IS FALSE
            THEN 'review_schedule_repetitions_check'
    END;
    IF v_failed IS NULL THEN
        RETURN true;
    END IF;
    v_column := CASE v_failed
        WHEN 'review_schedule_easiness_check' THEN 'easiness'
        WHEN 'review_schedule_fsrs_difficulty_check' THEN 'fsrs_difficulty'
        WHEN 'review_schedule_fsrs_stability_check' THEN 'fsrs_stability'
        WHEN 'review_schedule_fsrs_state_check' THEN 'fsrs_state'
        WHEN 'review_schedule_fsrs_step_check' THEN 'fsrs_step'
        WHEN 'review_schedule_interval_days_check' THEN 'interval_days'
        WHEN 'review_schedule_last_quality_check' THEN 'last_quality'
        WHEN 'review_schedule_repetitions_check' THEN 'repetitions'
    END;
    SELECT c.relname, n.nspname INTO v_rel, v_schema
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    v_rel := coalesce(v_rel, 'review_schedule');
    IF v_column IS NULL THEN
        RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', v_rel, v_failed
            USING ERRCODE = 'check_violation', CONSTRAINT = v_failed, TABLE = v_rel,
                  SCHEMA = coalesce(v_schema, '');
    END IF;
    RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', v_rel, v_failed
        USING ERRCODE = 'check_violation', CONSTRAINT = v_failed, TABLE = v_rel,
              SCHEMA = coalesce(v_schema, ''), COLUMN = v_column;
END;
$$;

ALTER TABLE review_schedule
    DROP CONSTRAINT IF EXISTS review_schedule_row_check,
    ADD CONSTRAINT review_schedule_row_check CHECK (check_review_schedule_row(
        tableoid, easiness, interval_days, repetitions, last_quality, fsrs_state,
        fsrs_step, fsrs_stability, fsrs_difficulty)) NOT VALID;

ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_row_check;

ALTER TABLE review_schedule
    DROP CONSTRAINT IF EXISTS review_schedule_easiness_check,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_difficulty_check,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_stability_check,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_state_check,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_step_check,
    DROP CONSTRAINT IF EXISTS review_schedule_interval_days_check,
    DROP CONSTRAINT IF EXISTS review_schedule_last_quality_check,
    DROP CONSTRAINT IF EXISTS review_schedule_repetitions_check;
