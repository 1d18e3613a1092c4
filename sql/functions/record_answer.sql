-- Why an answer time is refused (NULL when it is accepted): not finite, before the
-- floor, or more than the skew ahead of the clock — the bounds of record_answer and
-- record_answers (algorithm_settings.answer_max_future_skew / answer_earliest_at).
CREATE OR REPLACE FUNCTION answer_time_error(
    p_answered_at timestamptz,
    p_clock timestamptz,
    p_skew interval,
    p_earliest timestamptz
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN NOT isfinite(p_answered_at) THEN p_answered_at || ' is not a finite time'
        WHEN p_answered_at < p_earliest THEN
            format('%s is before the earliest accepted time %s (algorithm_settings.answer_earliest_at)',
                   p_answered_at, p_earliest)
        WHEN p_answered_at > p_clock + p_skew THEN
            format('%s is more than %s ahead of the server clock (algorithm_settings.answer_max_future_skew)',
                   p_answered_at, p_skew)
    END
$$;

-- record_answer: one answered question → every per-user state change it implies,
-- in the caller's transaction (one statement: any error aborts all of it).
--
--   1. learning_events: one question_answered row (mastery_before = the mastery
--      at answer time, i.e. after forgetting; mastery_after = the BKT result;
--      quality; response_data = {"predicted_correct": P}).
--   2. knowledge_states (user, the item's concept): the BKT update of DESIGN.md
--      (bkt_update: exact values or their limits at the edges, see bkt.sql); a missing
--      row is created already updated (one INSERT), with the concept's fitted parameters
--      from bkt_concept_parameters when it has a row, else the column defaults.
--      On the first interaction (last_interaction NULL) mastery = initial_knowledge and
--      Δdays = 0. An answer older than last_interaction (out-of-order delivery)
--      gets Δdays = 0, and last_interaction keeps the later time.
--   3. review_schedule (user, item): both schedulers' states, whichever is chosen:
--      SM-2 exact (start EF 2.5, interval 0, reps 0; sm2_due = answered_at + interval ×
--      24 h) and FSRS-6 (fsrs_step, rating fsrs_rating(quality); fsrs_due).
--      next_review_at = the due of algorithm_settings.scheduler ('sm2' | 'fsrs').
--   4. users gamification: xp +10 for a correct answer, +2 for a wrong one;
--      current_streak over days in UTC: same day → unchanged, the next day → +1,
--      a gap → 1, an answer dated before last_active_date → unchanged;
--      longest_streak = max(longest_streak, current_streak).
--   5. mastery ≥ 0.95 while knowledge_states.mastered_at IS NULL → mastered_at =
--      answered_at and one concept_mastered event (never again for that pair).
--   6. the event feed (0014, docs/events.md): both events carry feed_tx =
--      greatest(this transaction's id, users.feed_tx), and users.feed_tx takes it, so a
--      learner's events never go back in the feed's (feed_tx, event_id) order; the answer's
--      event also carries next_review_at and the scheduler that set it. With
--      algorithm_settings.events_notify, one payload-less NOTIFY dmdb_events (a wake-up
--      for readers; PostgreSQL sends one per transaction).
--
-- Quality: p_quality if given (0..5), else answer_quality(correct, hints,
-- response time, the item's average response time).
--
-- Answer time: refused (22023, nothing written) when not finite, later than the
-- server's clock (clock_timestamp()) + algorithm_settings.answer_max_future_skew
-- (default 5 minutes), or earlier than algorithm_settings.answer_earliest_at (default
-- 2000-01-01). Within those bounds an answer older than the state it updates is the
-- out-of-order case above (Δdays = 0, later times kept).
--
-- Concurrency: the users row is locked first (the gamification UPDATE), so all
-- answers of one user are serialised on that row (record_answers locks its users
-- in user_id order, so batches cannot deadlock). That row lock is the protocol:
-- every writer of a user's knowledge_states/review_schedule rows (these two
-- functions) holds it, so they are read without further row locks (a FOR UPDATE
-- each would only add two tuple locks and their WAL per answer). Under READ
-- COMMITTED each statement after the lock sees what the previous holder committed:
-- no lost update. Under REPEATABLE READ/SERIALIZABLE a concurrent answer makes the
-- UPDATE of users fail with a serialization error (retry), never a lost update.
--
-- Cost (one answer per transaction, the benchmark): every statement pays executor
-- start-up, and every INSERT/UPDATE re-prepares all CHECK constraints of its table
-- and queues its foreign-key checks, whatever the columns it sets (since 0011,
-- knowledge_states and review_schedule have one CHECK each, a row validator). So the function runs as few statements as it can: the UPDATE
-- of users (lock + gamification), ONE read of the item with this user's
-- knowledge_states and review_schedule rows, then exactly one write per table: UPDATE
-- an existing row or INSERT the new one already computed (inserting the defaults and
-- updating them would prepare the CHECKs twice and re-run both foreign-key checks, as
-- the row was inserted by this transaction). Merging those writes into one statement
-- of writable CTEs was measured slower (~+30 µs): a CTE for each case (UPDATE or INSERT)
-- initialises its ModifyTable, indexes and tuple routing even when it writes nothing.
-- The arithmetic stays in PL/pgSQL variables; each simple expression is compiled once
-- per transaction, i.e. per answer here, so big inlined expressions cost even in the
-- branches a CASE skips (see the BKT block). Measured (embedded PG 18, fast settings,
-- fresh benchmark database): 280 → 225 µs per call before FSRS; with FSRS, 0011 and
-- the BKT block, see README (Benchmarks).
--
-- SET plan_cache_mode = force_generic_plan: knowledge_states is hash partitioned,
-- so the plan cache would otherwise re-plan its statements on every call (a custom
-- plan always looks cheaper than the generic one with 8 partitions); the generic
-- plan prunes to the one partition at executor start. Measured: 490 → 290 µs.
--
-- Shared rows (content counters, bandit_arms) are NOT touched: rollup_learning_events()
-- brings them up to date from the events.
--
-- Errors (nothing written): 22004 a required argument is NULL; 22023 negative
-- response time or hints, quality outside 0..5, context not a JSON object, a
-- session of another user, an answer time out of bounds; P0002 unknown user, item or
-- session; 55000 algorithm_settings has no row.
CREATE OR REPLACE FUNCTION record_answer(
    p_user_id bigint,
    p_content_id bigint,
    p_is_correct boolean,
    p_response_time_ms integer,
    p_hints_used integer DEFAULT 0,
    p_quality integer DEFAULT NULL,
    p_answered_at timestamptz DEFAULT now(),
    p_session_id bigint DEFAULT NULL,
    p_context jsonb DEFAULT '{}',
    OUT mastery double precision,
    OUT next_review_at timestamptz,
    OUT predicted_correct double precision,
    OUT mastery_before double precision,
    OUT quality smallint,
    OUT concept_id bigint,
    OUT event_id bigint,
    OUT newly_mastered boolean,
    OUT xp bigint,
    OUT current_streak integer
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_hints integer := coalesce(p_hints_used, 0);
    v_context jsonb := coalesce(p_context, '{}'::jsonb);
    v_day date;
    v_avg_rt double precision;
    -- knowledge_states (NULL columns: no row yet)
    v_ks_found boolean;
    v_mastery double precision;
    v_initial double precision;
    v_decay double precision;
    v_guess double precision;
    v_slip double precision;
    v_rate double precision;
    v_velocity double precision;
    v_last timestamptz;
    v_mastered_at timestamptz;
    v_p0 double precision;
    v_delta double precision;
    v_log_p0 double precision;
    v_q0 double precision;
    v_like_mastered double precision;
    v_like_unmastered double precision;
    v_p1 double precision;
    -- review_schedule (NULL columns: no row yet)
    v_rs_found boolean;
    v_ef numeric;
    v_interval integer;
    v_reps integer;
    v_rs_last timestamptz;
    v_sm2_due timestamptz;
    v_fsrs record;
    v_fs_state smallint;
    v_fs_step smallint;
    v_fs_s double precision;
    v_fs_d double precision;
    -- algorithm_settings
    v_settings_found boolean;
    v_scheduler text;
    v_w double precision[];
    v_retention double precision;
    v_lsteps integer[];
    v_rsteps integer[];
    v_max_interval integer;
    v_skew interval;
    v_earliest timestamptz;
    v_clock timestamptz;
    v_feed_tx xid8;
    v_notify boolean;
BEGIN
    -- One test on the normal path; the detailed checks only when something is wrong.
    IF p_user_id IS NULL OR p_content_id IS NULL OR p_is_correct IS NULL
       OR p_response_time_ms IS NULL OR p_answered_at IS NULL OR p_response_time_ms < 0
       OR v_hints < 0 OR p_quality < 0 OR p_quality > 5 OR jsonb_typeof(v_context) <> 'object'
       OR NOT isfinite(p_answered_at) OR p_response_time_ms > 86400000 OR v_hints > 1000
       OR pg_column_size(v_context) > 16384 THEN
        IF p_user_id IS NULL OR p_content_id IS NULL OR p_is_correct IS NULL
           OR p_response_time_ms IS NULL OR p_answered_at IS NULL THEN
            RAISE EXCEPTION 'record_answer: % must not be NULL',
                CASE WHEN p_user_id IS NULL THEN 'user_id'
                     WHEN p_content_id IS NULL THEN 'content_id'
                     WHEN p_is_correct IS NULL THEN 'is_correct'
                     WHEN p_response_time_ms IS NULL THEN 'response_time_ms'
                     ELSE 'answered_at' END
                USING ERRCODE = '22004';
        END IF;
        IF p_response_time_ms < 0 THEN
            RAISE EXCEPTION 'record_answer: response_time_ms % is negative', p_response_time_ms
                USING ERRCODE = '22023';
        END IF;
        IF v_hints < 0 THEN
            RAISE EXCEPTION 'record_answer: hints_used % is negative', v_hints
                USING ERRCODE = '22023';
        END IF;
        -- Bounds a client bug or a hostile caller could exceed: they would skew the
        -- quality and the response-time averages, or bloat every event row.
        IF p_response_time_ms > 86400000 THEN
            RAISE EXCEPTION 'record_answer: response_time_ms % is over 86400000 (a day)',
                p_response_time_ms USING ERRCODE = '22023';
        END IF;
        IF v_hints > 1000 THEN
            RAISE EXCEPTION 'record_answer: hints_used % is over 1000', v_hints
                USING ERRCODE = '22023';
        END IF;
        IF p_quality < 0 OR p_quality > 5 THEN
            RAISE EXCEPTION 'record_answer: quality % is outside 0..5', p_quality
                USING ERRCODE = '22023';
        END IF;
        IF NOT isfinite(p_answered_at) THEN
            RAISE EXCEPTION 'record_answer: answered_at %', answer_time_error(p_answered_at, NULL, NULL, NULL)
                USING ERRCODE = '22023';
        END IF;
        IF jsonb_typeof(v_context) <> 'object' THEN
            RAISE EXCEPTION 'record_answer: context must be a JSON object, got %',
                jsonb_typeof(v_context) USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION 'record_answer: context is % bytes, over the 16384 an answer may carry',
            pg_column_size(v_context) USING ERRCODE = '22023';
    END IF;

    -- A session is the learner's own: looked up by (user_id, session_id), its key (0016),
    -- so the lookup stays on the learner's shard when the learners are sharded.
    IF p_session_id IS NOT NULL THEN
        PERFORM FROM learning_sessions s
         WHERE s.user_id = p_user_id AND s.session_id = p_session_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'record_answer: session_id % is not a session of user_id %',
                p_session_id, p_user_id
                USING ERRCODE = 'P0002';
        END IF;
    END IF;

    -- Gamification, and the per-user lock that serialises this user's answers.
    v_day := (p_answered_at AT TIME ZONE 'UTC')::date;
    UPDATE users u
       SET xp = u.xp + CASE WHEN p_is_correct THEN 10 ELSE 2 END,
           current_streak = CASE
               WHEN u.last_active_date IS NULL OR v_day > u.last_active_date + 1 THEN 1
               WHEN v_day = u.last_active_date + 1 THEN u.current_streak + 1
               ELSE u.current_streak END,
           longest_streak = greatest(u.longest_streak, CASE
               WHEN u.last_active_date IS NULL OR v_day > u.last_active_date + 1 THEN 1
               WHEN v_day = u.last_active_date + 1 THEN u.current_streak + 1
               ELSE u.current_streak END),
           last_active_date = greatest(u.last_active_date, v_day),
           feed_tx = greatest(u.feed_tx, pg_current_xact_id())
     WHERE u.user_id = p_user_id
    RETURNING u.xp, u.current_streak, u.feed_tx INTO xp, current_streak, v_feed_tx;
    IF NOT FOUND THEN
        -- An unknown item is reported first, whatever the user.
        PERFORM FROM content c WHERE c.content_id = p_content_id;
        IF FOUND THEN
            RAISE EXCEPTION 'record_answer: unknown user_id %', p_user_id
                USING ERRCODE = 'P0002';
        END IF;
    END IF;

    -- The item, and this user's state for it, in one statement (after the lock: this
    -- statement's snapshot sees what the previous holder committed).
    SELECT c.concept_id, c.average_response_time_ms,
           ks.user_id IS NOT NULL, ks.mastery_probability, ks.initial_knowledge, ks.temporal_decay,
           ks.guess_parameter, ks.slip_parameter, ks.learning_rate, ks.personal_learning_velocity,
           ks.last_interaction, ks.mastered_at,
           rs.user_id IS NOT NULL, rs.easiness, rs.interval_days, rs.repetitions, rs.last_reviewed_at,
           rs.fsrs_state, rs.fsrs_step, rs.fsrs_stability, rs.fsrs_difficulty,
           st.singleton IS NOT NULL, st.scheduler, st.fsrs_parameters, st.fsrs_desired_retention,
           st.fsrs_learning_steps, st.fsrs_relearning_steps, st.fsrs_maximum_interval,
           st.answer_max_future_skew, st.answer_earliest_at, st.events_notify
      INTO concept_id, v_avg_rt,
           v_ks_found, v_mastery, v_initial, v_decay, v_guess, v_slip, v_rate, v_velocity,
           v_last, v_mastered_at,
           v_rs_found, v_ef, v_interval, v_reps, v_rs_last,
           v_fs_state, v_fs_step, v_fs_s, v_fs_d,
           v_settings_found, v_scheduler, v_w, v_retention, v_lsteps, v_rsteps, v_max_interval,
           v_skew, v_earliest, v_notify
      FROM content c
      LEFT JOIN knowledge_states ks ON ks.user_id = p_user_id AND ks.concept_id = c.concept_id
      LEFT JOIN review_schedule rs ON rs.user_id = p_user_id AND rs.content_id = c.content_id
      LEFT JOIN algorithm_settings st ON true
     WHERE c.content_id = p_content_id;
    -- One test on the normal path (each expression costs its compilation per answer).
    v_clock := clock_timestamp();
    IF NOT FOUND OR NOT v_settings_found OR p_answered_at > v_clock + v_skew
       OR p_answered_at < v_earliest THEN
        IF NOT FOUND THEN
            RAISE EXCEPTION 'record_answer: unknown content_id %', p_content_id
                USING ERRCODE = 'P0002';
        END IF;
        IF NOT v_settings_found THEN
            RAISE EXCEPTION 'record_answer: algorithm_settings has no row'
                USING ERRCODE = '55000',
                      HINT = 'INSERT INTO algorithm_settings DEFAULT VALUES restores the defaults.';
        END IF;
        RAISE EXCEPTION 'record_answer: answered_at %',
            answer_time_error(p_answered_at, v_clock, v_skew, v_earliest)
            USING ERRCODE = '22023';
    END IF;

    -- BKT on (user, concept).
    IF NOT v_ks_found THEN
        -- A new row: the concept's fitted parameters (bkt_concept_parameters), else the
        -- column defaults of knowledge_states (0003), so that the new row is written
        -- once, already updated; tests/test_record_answer.py checks they still agree.
        -- (Looked up here, not joined above: only the first answer per concept pays.)
        SELECT bp.initial_knowledge, bp.temporal_decay, bp.guess_parameter, bp.slip_parameter,
               bp.learning_rate
          INTO v_initial, v_decay, v_guess, v_slip, v_rate
          FROM bkt_concept_parameters bp
         WHERE bp.concept_id = record_answer.concept_id;
        v_initial := coalesce(v_initial, 0.1);
        v_guess := coalesce(v_guess, 0.2);
        v_slip := coalesce(v_slip, 0.1);
        v_rate := coalesce(v_rate, 0.15);
        v_velocity := 1;
        v_decay := coalesce(v_decay, 0.98);
    END IF;
    -- BKT (bkt.sql) with its edge tests as PL/pgSQL control flow. A simple expression
    -- is compiled (ExecInitExpr: every operator looked up and its EXECUTE right checked)
    -- in each transaction that evaluates it, whole, whatever CASE branch it takes:
    -- inlined, bkt_forget_complement alone repeats ln(m) + Δ·ln(decay) ten times. Here
    -- that exponent is computed once into a variable and handed to the regular-case
    -- functions bkt_forget, bkt_forget_complement and bkt_evidence are made of
    -- (bkt_decay_exponent, bkt_forget_from_log, bkt_complement_from_log,
    -- bkt_evidence_logistic); the edge cases (mastery 0, no elapsed time, decay 1, zero likelihoods)
    -- go to the whole functions. Same expressions on the same float8 values, so the
    -- same bits (tests/test_record_answer.py: batch == single and the reference).
    IF v_last IS NULL THEN
        -- bkt_posterior(initial, ...): the evidence from p0 = initial, undecayed.
        v_p0 := bkt_forget(v_initial, 1, 0);
        v_log_p0 := CASE WHEN v_initial > 0 THEN ln(v_initial) ELSE '-Infinity'::double precision END;
        v_q0 := 1 - v_initial;
    ELSE
        v_delta := greatest(0::double precision, date_part('epoch', p_answered_at - v_last) / 86400.0);
        IF v_mastery > 0 AND v_delta > 0 AND v_decay <> 1 AND v_decay > 0 THEN
            v_log_p0 := bkt_decay_exponent(v_mastery, v_decay, v_delta);
            v_p0 := bkt_forget_from_log(v_mastery, v_decay, v_delta, v_log_p0);
            v_q0 := bkt_complement_from_log(v_log_p0);
        ELSE
            v_p0 := bkt_forget(v_mastery, v_decay, v_delta);
            v_log_p0 := bkt_log_forget(v_mastery, v_decay, v_delta);
            v_q0 := bkt_forget_complement(v_mastery, v_decay, v_delta);
        END IF;
    END IF;
    v_like_mastered := CASE WHEN p_is_correct THEN 1 - v_slip ELSE v_slip END;
    v_like_unmastered := CASE WHEN p_is_correct THEN v_guess ELSE 1 - v_guess END;
    IF v_log_p0 <> '-Infinity' AND v_like_mastered > 0 AND v_q0 > 0 AND v_like_unmastered > 0 THEN
        v_p1 := bkt_evidence_logistic(v_log_p0, v_q0, v_like_mastered, v_like_unmastered);
    ELSE
        v_p1 := bkt_evidence(v_log_p0, v_q0, v_like_mastered, v_like_unmastered);
    END IF;
    mastery := bkt_learn(v_p1, v_rate, v_velocity);
    predicted_correct := v_p0 * (1 - v_slip) + (1 - v_p0) * v_guess;
    mastery_before := v_p0;
    newly_mastered := v_mastered_at IS NULL AND mastery >= 0.95;

    IF v_ks_found THEN
        UPDATE knowledge_states ks
           SET mastery_probability = record_answer.mastery,
               last_interaction = greatest(ks.last_interaction, p_answered_at),
               attempts = ks.attempts + 1,
               correct_attempts = ks.correct_attempts + CASE WHEN p_is_correct THEN 1 ELSE 0 END,
               mastered_at = CASE WHEN record_answer.newly_mastered THEN p_answered_at
                                  ELSE ks.mastered_at END
         WHERE ks.user_id = p_user_id AND ks.concept_id = record_answer.concept_id;
    ELSE
        INSERT INTO knowledge_states (user_id, concept_id, initial_knowledge, learning_rate,
                                      guess_parameter, slip_parameter, mastery_probability,
                                      temporal_decay, personal_learning_velocity, last_interaction,
                                      attempts, correct_attempts, mastered_at)
        VALUES (p_user_id, record_answer.concept_id, v_initial, v_rate, v_guess, v_slip,
                record_answer.mastery, v_decay, v_velocity, p_answered_at,
                1, CASE WHEN p_is_correct THEN 1 ELSE 0 END,
                CASE WHEN record_answer.newly_mastered THEN p_answered_at END);
    END IF;

    -- SM-2 (exact) and FSRS-6 on (user, item); a new row starts at EF 2.5, interval 0,
    -- repetitions 0, and as a new FSRS card (fsrs_state NULL).
    quality := coalesce(p_quality, answer_quality(p_is_correct, v_hints, p_response_time_ms, v_avg_rt));
    IF NOT v_rs_found THEN
        v_ef := 2.5;
        v_interval := 0;
        v_reps := 0;
    END IF;
    v_fsrs := fsrs_step(v_fs_state, v_fs_step, v_fs_s, v_fs_d, v_rs_last, fsrs_rating(quality),
                        p_answered_at, v_w, v_retention, v_lsteps, v_rsteps, v_max_interval);
    v_interval := sm2_next_interval(v_ef, v_interval, v_reps, quality);
    v_sm2_due := p_answered_at + v_interval * interval '24 hours';
    next_review_at := CASE WHEN v_scheduler = 'fsrs' THEN v_fsrs.due ELSE v_sm2_due END;
    IF v_rs_found THEN
        UPDATE review_schedule rs
           SET easiness = sm2_next_easiness(v_ef, record_answer.quality),
               interval_days = v_interval,
               repetitions = sm2_next_repetitions(v_reps, record_answer.quality),
               next_review_at = record_answer.next_review_at, last_quality = record_answer.quality,
               last_reviewed_at = greatest(rs.last_reviewed_at, p_answered_at),
               sm2_due = v_sm2_due, fsrs_state = v_fsrs.state, fsrs_step = v_fsrs.step,
               fsrs_stability = v_fsrs.stability, fsrs_difficulty = v_fsrs.difficulty,
               fsrs_due = v_fsrs.due
         WHERE rs.user_id = p_user_id AND rs.content_id = p_content_id;
    ELSE
        INSERT INTO review_schedule (user_id, content_id, easiness, interval_days, repetitions,
                                     next_review_at, last_quality, last_reviewed_at, sm2_due,
                                     fsrs_state, fsrs_step, fsrs_stability, fsrs_difficulty, fsrs_due)
        VALUES (p_user_id, p_content_id, sm2_next_easiness(2.5, record_answer.quality), v_interval,
                sm2_next_repetitions(0, record_answer.quality), record_answer.next_review_at,
                record_answer.quality, p_answered_at, v_sm2_due, v_fsrs.state, v_fsrs.step,
                v_fsrs.stability, v_fsrs.difficulty, v_fsrs.due);
    END IF;

    INSERT INTO learning_events AS e (user_id, occurred_at, event_type, concept_id, content_id,
                                      session_id, is_correct, response_time_ms, hints_used, quality,
                                      mastery_before, mastery_after, response_data, context_data,
                                      feed_tx, next_review_at, scheduler)
    VALUES (p_user_id, p_answered_at, 'question_answered', record_answer.concept_id, p_content_id,
            p_session_id, p_is_correct, p_response_time_ms, v_hints, record_answer.quality,
            v_p0, record_answer.mastery,
            jsonb_build_object('predicted_correct', record_answer.predicted_correct), v_context,
            v_feed_tx, record_answer.next_review_at, v_scheduler)
    RETURNING e.event_id INTO event_id;

    IF newly_mastered THEN
        INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id,
                                     session_id, mastery_before, mastery_after, context_data,
                                     feed_tx)
        VALUES (p_user_id, p_answered_at, 'concept_mastered', record_answer.concept_id, p_content_id,
                p_session_id, v_p0, record_answer.mastery, v_context, v_feed_tx);
    END IF;
    IF v_notify THEN
        PERFORM pg_notify('dmdb_events', '');
    END IF;
END;
$$;

COMMENT ON FUNCTION record_answer(bigint, bigint, boolean, integer, integer, integer, timestamptz,
                                  bigint, jsonb) IS
    'One answered question: event row, BKT, SM-2, gamification, mastery event; one transaction.';
