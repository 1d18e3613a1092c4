-- Rollback of 0013: dm_app gets back what 0001's default privileges gave it.

GRANT INSERT, UPDATE, DELETE ON algorithm_settings, bkt_concept_parameters TO dm_app;

DO $do$
DECLARE
    v_routine text;
BEGIN
    FOREACH v_routine IN ARRAY ARRAY['set_scheduler(text,boolean)',
                                     'repoint_schedules(integer)',
                                     'fsrs_backfill(integer)'] LOOP
        IF to_regprocedure(v_routine) IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO dm_app',
                           to_regprocedure(v_routine));
        END IF;
    END LOOP;
END
$do$;
