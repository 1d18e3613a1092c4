-- The per-deployment scheduler choice (algorithm_settings.scheduler, 'sm2' | 'fsrs') and
-- how to switch it on a live database (docs/algorithms.md, "Switching schedulers").
--
-- record_answer/record_answers keep BOTH schedulers' states current on every answer
-- (review_schedule: easiness/interval_days/repetitions/sm2_due for SM-2,
-- fsrs_state/fsrs_step/fsrs_stability/fsrs_difficulty/fsrs_due for FSRS-6) and write the
-- chosen one's due into next_review_at, which next_questions reads. A switch therefore
-- loses nothing in either direction: it changes the setting and re-points next_review_at.
--
-- set_scheduler(p_scheduler, p_repoint):
--   1. LOCK algorithm_settings IN ACCESS EXCLUSIVE MODE: waits for every transaction
--      that has read the settings (each answer does) to end, and holds new answers
--      until this transaction commits, so no answer computed with the old choice
--      writes after the switch. A waiting lock request queues every new answer behind
--      it: one idle report holding a read of the settings would stall them all for as
--      long as it stays open. So each attempt waits at most 200 ms, then lets the queue
--      drain and tries again after a growing pause, like migrations do, within the
--      caller's lock_timeout (30 s when it has none); then 55P03 names the blockers;
--   2. sets the scheduler;
--   3. with p_repoint (default), re-points next_review_at of every row to the chosen
--      scheduler's due in the same transaction; answers wait until it commits. On a
--      large table pass false and run CALL repoint_schedules() afterwards: it re-points
--      in batches of users, one transaction each, while answers go on (they already
--      write the new scheduler's due).
-- A row whose chosen state does not exist yet keeps its due: rows last answered
-- before migration 0007 have no FSRS state; FSRS starts them as new cards at their
-- next answer, unless fsrs_backfill() (below) has replayed their history.
-- Returns the number of rows re-pointed. 22023 for an unknown scheduler.

CREATE OR REPLACE FUNCTION set_scheduler(p_scheduler text, p_repoint boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_rows bigint := 0;
    v_saved text := current_setting('lock_timeout');
    v_budget interval := CASE WHEN current_setting('lock_timeout') IN ('0', '0ms', '0s')
                              THEN interval '30 seconds'
                              ELSE current_setting('lock_timeout')::interval END;
    v_deadline timestamptz := clock_timestamp() + v_budget;
    v_pause double precision := 0.05;
    v_blockers text;
BEGIN
    IF p_scheduler IS NULL OR p_scheduler NOT IN ('sm2', 'fsrs') THEN
        RAISE EXCEPTION 'set_scheduler: unknown scheduler %, expected sm2 or fsrs',
            coalesce(quote_literal(p_scheduler), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            LOCK TABLE algorithm_settings IN ACCESS EXCLUSIVE MODE;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF clock_timestamp() + make_interval(secs => v_pause) > v_deadline THEN
                SELECT string_agg(format('pid %s (%s, %s)', a.pid,
                                         coalesce(nullif(a.application_name, ''), 'no name'),
                                         coalesce(a.state, 'state hidden')), ', ')
                  INTO v_blockers
                  FROM pg_stat_activity a
                 WHERE a.pid IN (SELECT l.pid FROM pg_locks l
                                  WHERE l.relation = 'algorithm_settings'::regclass
                                    AND l.granted AND l.pid <> pg_backend_pid());
                RAISE EXCEPTION 'set_scheduler: algorithm_settings stayed locked for %',
                    v_budget
                    USING ERRCODE = '55P03',
                          DETAIL = 'held by ' || coalesce(v_blockers, 'sessions now gone'),
                          HINT = 'End those transactions (an idle report?), or call it again '
                                 'with a larger lock_timeout.';
            END IF;
            PERFORM pg_sleep(v_pause * (1 + random() / 2));
            v_pause := least(v_pause * 2, 1.0);
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_saved, true);
    UPDATE algorithm_settings SET scheduler = p_scheduler, updated_at = now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'set_scheduler: algorithm_settings has no row'
            USING ERRCODE = '55000',
                  HINT = 'INSERT INTO algorithm_settings DEFAULT VALUES restores the defaults.';
    END IF;
    IF p_repoint THEN
        UPDATE review_schedule rs
           SET next_review_at = CASE WHEN p_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END
         WHERE CASE WHEN p_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END IS NOT NULL
           AND rs.next_review_at IS DISTINCT FROM
               CASE WHEN p_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
    END IF;
    RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION set_scheduler(text, boolean) IS
    'Choose the scheduler (sm2|fsrs) and re-point next_review_at to its due (see scheduler.sql).';

-- Re-point next_review_at to the chosen scheduler's due, p_batch_users users per
-- transaction (CALL it outside a transaction block). Each batch reads the setting
-- afresh, and an answer racing a batch is serialised on the row: whichever writes
-- last computes from the row it sees, and both use the current choice.
CREATE OR REPLACE PROCEDURE repoint_schedules(p_batch_users integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_from bigint := -1;
    v_to bigint;
    v_scheduler text;
BEGIN
    IF p_batch_users IS NULL OR p_batch_users < 1 THEN
        RAISE EXCEPTION 'repoint_schedules: batch size must be at least 1' USING ERRCODE = '22023';
    END IF;
    LOOP
        SELECT max(u.user_id) INTO v_to
          FROM (SELECT us.user_id FROM users us WHERE us.user_id > v_from
                 ORDER BY us.user_id LIMIT p_batch_users) AS u;
        EXIT WHEN v_to IS NULL;
        SELECT s.scheduler INTO v_scheduler FROM algorithm_settings s;
        UPDATE review_schedule rs
           SET next_review_at = CASE WHEN v_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END
         WHERE rs.user_id > v_from AND rs.user_id <= v_to
           AND CASE WHEN v_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END IS NOT NULL
           AND rs.next_review_at IS DISTINCT FROM
               CASE WHEN v_scheduler = 'fsrs' THEN rs.fsrs_due ELSE rs.sm2_due END;
        COMMIT;
        v_from := v_to;
    END LOOP;
END;
$$;

COMMENT ON PROCEDURE repoint_schedules(integer) IS
    'Re-point next_review_at to the chosen scheduler''s due in batches of users (one commit each).';

-- FSRS state for rows last answered before migration 0007 (fsrs_state NULL), replayed
-- from their answers still in learning_events (question_answered events, by occurred_at
-- then event_id, rating = fsrs_rating(quality)) — py-fsrs' reschedule_card. Users are
-- taken in user_id order, p_batch_users per transaction (CALL it outside a transaction
-- block); each user's row in users is locked first, the lock every answer of that user
-- takes, so an answer cannot interleave with the replay of its own rows. A row whose
-- history is gone (partitions dropped by retention) keeps no FSRS state and starts as
-- a new card at its next answer. sm2_due is filled from next_review_at (which is SM-2's
-- due on such rows), and next_review_at becomes FSRS's due when FSRS is the chosen
-- scheduler.
CREATE OR REPLACE PROCEDURE fsrs_backfill(p_batch_users integer DEFAULT 100)
LANGUAGE plpgsql
AS $$
DECLARE
    v_from bigint := -1;
    v_users bigint[];
    v_user bigint;
    v_item bigint;
    v_s algorithm_settings%ROWTYPE;
    v_state smallint;
    v_step smallint;
    v_stab double precision;
    v_diff double precision;
    v_due timestamptz;
    v_last timestamptz;
    v_fsrs record;
    r record;
BEGIN
    IF p_batch_users IS NULL OR p_batch_users < 1 THEN
        RAISE EXCEPTION 'fsrs_backfill: batch size must be at least 1' USING ERRCODE = '22023';
    END IF;
    LOOP
        v_users := ARRAY(SELECT DISTINCT rs.user_id FROM review_schedule rs
                          WHERE rs.user_id > v_from AND rs.fsrs_state IS NULL
                          ORDER BY 1 LIMIT p_batch_users);
        EXIT WHEN cardinality(v_users) = 0;
        SELECT * INTO v_s FROM algorithm_settings;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'fsrs_backfill: algorithm_settings has no row' USING ERRCODE = '55000';
        END IF;
        FOREACH v_user IN ARRAY v_users LOOP
            PERFORM FROM users u WHERE u.user_id = v_user FOR NO KEY UPDATE;
            v_item := NULL;
            FOR r IN SELECT e.content_id, e.occurred_at, e.quality
                       FROM learning_events e
                       JOIN review_schedule rs ON rs.user_id = e.user_id
                                              AND rs.content_id = e.content_id
                      WHERE e.user_id = v_user AND e.event_type = 'question_answered'
                        AND e.quality IS NOT NULL AND rs.fsrs_state IS NULL
                      ORDER BY e.content_id, e.occurred_at, e.event_id LOOP
                IF r.content_id IS DISTINCT FROM v_item THEN
                    IF v_item IS NOT NULL THEN
                        CALL fsrs_backfill_write(v_user, v_item, v_state, v_step, v_stab, v_diff,
                                                 v_due, v_s.scheduler);
                    END IF;
                    v_item := r.content_id;
                    v_state := NULL; v_step := NULL; v_stab := NULL; v_diff := NULL; v_last := NULL;
                END IF;
                v_fsrs := fsrs_step(v_state, v_step, v_stab, v_diff, v_last, fsrs_rating(r.quality),
                                    r.occurred_at, v_s.fsrs_parameters, v_s.fsrs_desired_retention,
                                    v_s.fsrs_learning_steps, v_s.fsrs_relearning_steps,
                                    v_s.fsrs_maximum_interval);
                v_state := v_fsrs.state; v_step := v_fsrs.step; v_stab := v_fsrs.stability;
                v_diff := v_fsrs.difficulty; v_due := v_fsrs.due;
                v_last := greatest(v_last, r.occurred_at);
            END LOOP;
            IF v_item IS NOT NULL THEN
                CALL fsrs_backfill_write(v_user, v_item, v_state, v_step, v_stab, v_diff, v_due,
                                         v_s.scheduler);
            END IF;
        END LOOP;
        COMMIT;
        v_from := v_users[cardinality(v_users)];
    END LOOP;
END;
$$;

COMMENT ON PROCEDURE fsrs_backfill(integer) IS
    'FSRS state for rows answered before 0007, replayed from learning_events (batches of users).';

CREATE OR REPLACE PROCEDURE fsrs_backfill_write(
    p_user_id bigint, p_content_id bigint, p_state smallint, p_step smallint,
    p_stability double precision, p_difficulty double precision, p_due timestamptz,
    p_scheduler text)
LANGUAGE sql
AS $$
    UPDATE review_schedule rs
       SET fsrs_state = p_state, fsrs_step = p_step, fsrs_stability = p_stability,
           fsrs_difficulty = p_difficulty, fsrs_due = p_due,
           sm2_due = coalesce(rs.sm2_due, rs.next_review_at),
           next_review_at = CASE WHEN p_scheduler = 'fsrs' THEN p_due ELSE rs.next_review_at END
     WHERE rs.user_id = p_user_id AND rs.content_id = p_content_id AND rs.fsrs_state IS NULL;
$$;

-- The scheduler is the owner's choice, not the application's (migration 0013): a new
-- routine gets EXECUTE for dm_app from 0001's default privileges, taken back here.
DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dm_app') THEN
        REVOKE EXECUTE ON FUNCTION set_scheduler(text, boolean) FROM dm_app;
        REVOKE EXECUTE ON PROCEDURE repoint_schedules(integer) FROM dm_app;
        REVOKE EXECUTE ON PROCEDURE fsrs_backfill(integer) FROM dm_app;
    END IF;
END
$do$;
