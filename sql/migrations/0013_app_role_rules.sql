-- The application role answers questions; it does not change the rules they are scored by.
--
-- Default privileges (0001) gave dm_app INSERT, UPDATE and DELETE on every table and
-- EXECUTE on every function. So the application could widen the answer-time guards,
-- delete the settings row (every answer then fails), write BKT parameters, and switch the
-- scheduler or re-point schedules. Those belong to the owner (or an admin role granted
-- them): dm_app keeps SELECT on algorithm_settings and bkt_concept_parameters, which
-- record_answer reads as its caller. The administrative routines live in the function
-- file scheduler.sql, applied after the migrations: the file revokes them itself, and
-- this migration revokes them where they already exist.

REVOKE INSERT, UPDATE, DELETE ON algorithm_settings, bkt_concept_parameters FROM dm_app;

DO $do$
DECLARE
    v_routine text;
BEGIN
    FOREACH v_routine IN ARRAY ARRAY['set_scheduler(text,boolean)',
                                     'repoint_schedules(integer)',
                                     'fsrs_backfill(integer)'] LOOP
        IF to_regprocedure(v_routine) IS NOT NULL THEN
            EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM dm_app',
                           to_regprocedure(v_routine));
        END IF;
    END LOOP;
END
$do$;
