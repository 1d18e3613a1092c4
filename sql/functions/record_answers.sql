-- record_answers: the batch form of record_answer, for an event pipeline.
--
-- p_answers is a JSON array of objects, applied in array order, each with the
-- keys of record_answer's parameters (without p_):
--   {"user_id": 1, "content_id": 7, "is_correct": true, "response_time_ms": 4200,
--    "hints_used": 0, "quality": null, "answered_at": "2025-11-25T10:00:00Z",
--    "session_id": null, "context": {}}
-- hints_used defaults to 0, quality to the derived one, answered_at to now(),
-- context to {}. Unknown keys are ignored. answered_at has record_answer's bounds
-- (finite, at most algorithm_settings.answer_max_future_skew ahead of the server clock,
-- not before answer_earliest_at). New knowledge_states rows take the concept's
-- bkt_concept_parameters; review_schedule keeps SM-2's and FSRS-6's states and
-- next_review_at is the chosen scheduler's due, as in record_answer.
--
-- The result, and every row written, is exactly what calling record_answer once
-- per element in the same order would give (tests/test_record_answer.py checks
-- this property, tests/test_conformance.py too), except the order of the event ids:
-- the batch draws its question_answered ids in input order and its concept_mastered
-- events' ids after them (record_answer's mastered event follows its own answer), and
-- with concurrent writers the ids may interleave. One row per answer is returned, in
-- input order.
--
-- How it is fast (≥ 20,000 answers/s for batches of 1,000 on 2 cores): the
-- JSON is parsed once by jsonb_to_recordset; the per-user state (users,
-- knowledge_states, review_schedule rows) is read once per distinct key into
-- arrays; the sequential part (BKT/SM-2/streak chains, which depend on the
-- previous answer of the same key) runs as a PL/pgSQL loop over those arrays
-- with only inlined arithmetic; then each table is written with ONE set-based
-- statement (INSERT … SELECT, UPDATE … FROM over the arrays). The writes read their
-- arrays with unnest() in a select list, which streams them in step: unnest(a, b, …)
-- in FROM materialises every array in a tuplestore of its own first (measured: 0.73
-- against 0.2-0.26 µs per row for 14 arrays).
-- SET enable_hashjoin/enable_mergejoin = off: every join here is "≤ 1,000 keys from
-- an array → their rows by primary key"; the planner cannot see the array's size
-- and, on a mid-sized table, picks a hash join over a sequential scan of all of
-- knowledge_states/review_schedule for each batch (measured: 25 ms of a 67 ms batch
-- at 36,000 rows, growing with the table). Nested loops over the primary keys keep
-- a batch's cost independent of the table size.
--
-- Locking: users rows FOR NO KEY UPDATE in user_id order (the same per-user lock
-- record_answer's UPDATE of users takes first, so batches and single answers
-- serialise per user and cannot deadlock each other); the user's
-- knowledge_states/review_schedule rows are then only written by the holder.
-- learning_events is locked (ROW EXCLUSIVE, as any INSERT would) BEFORE the event ids are drawn from the sequence: rollup_learning_events()
-- relies on "whoever holds an event id not yet committed holds a lock on
-- learning_events" (see rollup.sql).
--
-- The event feed (0014, docs/events.md): every event of the batch carries one feed_tx,
-- greatest(this transaction's id, the highest users.feed_tx of its learners, read under
-- their locks), and those users rows take it, as in record_answer; the answers' events
-- also carry next_review_at and the scheduler. With algorithm_settings.events_notify,
-- one payload-less NOTIFY dmdb_events.
--
-- Errors (nothing written): as record_answer, plus 22023 when p_answers is not a JSON
-- array of objects. The message names the first failing element by its JSON index
-- (0-based, as p_answers->i; the result's ordinal is i + 1) and the field:
--   record_answers: answers[17].quality: 100000 is outside 0..5
--   record_answers: answers[3].answered_at: "yesterday" is not a timestamp
-- A value of the wrong type (a string that is no number, 3.5 for an integer, a number out
-- of the column's range, text that is no timestamp) fails the typed parse; only then
-- record_answers_input_error() walks the elements one by one to name it. A JSON string
-- is read by the column type's own input, so "5" is quality 5 and "yes" is true.
CREATE OR REPLACE FUNCTION record_answers_input_error(
    p_answers jsonb,
    p_clock timestamptz,
    p_skew interval,
    p_earliest timestamptz
) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_elem jsonb;
    v_i integer := -1;
    v_field text;
    v_type text;
    v_value jsonb;
    v_text text;
    v_at timestamptz;
    v_where text;
BEGIN
    FOR v_elem IN SELECT e FROM jsonb_array_elements(p_answers) AS e LOOP
        v_i := v_i + 1;
        v_where := format('answers[%s]', v_i);
        IF jsonb_typeof(v_elem) <> 'object' THEN
            RETURN format('22023%s: must be a JSON object, got %s', v_where, jsonb_typeof(v_elem));
        END IF;
        FOREACH v_field IN ARRAY ARRAY['user_id', 'content_id', 'is_correct', 'response_time_ms',
                                       'hints_used', 'quality', 'answered_at', 'session_id',
                                       'context'] LOOP
            v_value := v_elem -> v_field;
            v_type := CASE v_field WHEN 'user_id' THEN 'bigint' WHEN 'content_id' THEN 'bigint'
                                   WHEN 'session_id' THEN 'bigint' WHEN 'is_correct' THEN 'boolean'
                                   WHEN 'answered_at' THEN 'timestamptz' WHEN 'context' THEN 'jsonb'
                                   ELSE 'integer' END;
            IF v_value IS NULL OR v_value = 'null'::jsonb THEN
                IF v_field IN ('user_id', 'content_id', 'is_correct', 'response_time_ms') THEN
                    RETURN format('22004%s.%s: must not be null', v_where, v_field);
                END IF;
                CONTINUE;
            END IF;
            IF v_type = 'jsonb' THEN
                IF jsonb_typeof(v_value) <> 'object' THEN
                    RETURN format('22023%s.context: must be a JSON object, got %s', v_where,
                                  jsonb_typeof(v_value));
                END IF;
                CONTINUE;
            END IF;
            v_text := v_value #>> '{}';
            -- One pg_input_is_valid call per type: each call site caches the type it
            -- first checked (PostgreSQL 18 answers wrongly when the type changes).
            IF jsonb_typeof(v_value) NOT IN ('number', 'string', 'boolean')
               OR NOT (CASE v_type WHEN 'bigint' THEN pg_input_is_valid(v_text, 'bigint')
                                   WHEN 'integer' THEN pg_input_is_valid(v_text, 'integer')
                                   WHEN 'boolean' THEN pg_input_is_valid(v_text, 'boolean')
                                   ELSE pg_input_is_valid(v_text, 'timestamptz') END) THEN
                RETURN format('22023%s.%s: %s is not %s', v_where, v_field, v_value,
                              CASE v_type WHEN 'bigint' THEN 'an id (a whole number)'
                                          WHEN 'integer' THEN 'a whole number in the integer range'
                                          WHEN 'boolean' THEN 'a boolean'
                                          ELSE 'a timestamp' END);
            END IF;
            IF v_field IN ('response_time_ms', 'hints_used') AND v_text::integer < 0 THEN
                RETURN format('22023%s.%s: %s is negative', v_where, v_field, v_text);
            END IF;
            IF v_field = 'quality' AND v_text::integer NOT BETWEEN 0 AND 5 THEN
                RETURN format('22023%s.quality: %s is outside 0..5', v_where, v_text);
            END IF;
            IF v_field = 'content_id'
               AND NOT EXISTS (SELECT FROM content c WHERE c.content_id = v_text::bigint) THEN
                RETURN format('P0002%s.content_id: unknown content_id %s', v_where, v_text);
            END IF;
            IF v_field = 'answered_at' THEN
                v_at := v_text::timestamptz;
                IF NOT isfinite(v_at) OR v_at > p_clock + p_skew OR v_at < p_earliest THEN
                    RETURN format('22023%s.answered_at: %s', v_where,
                                  answer_time_error(v_at, p_clock, p_skew, p_earliest));
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$;


CREATE OR REPLACE FUNCTION record_answers(p_answers jsonb)
RETURNS TABLE (
    ordinal integer,
    event_id bigint,
    concept_id bigint,
    mastery double precision,
    mastery_before double precision,
    predicted_correct double precision,
    quality smallint,
    next_review_at timestamptz,
    newly_mastered boolean
)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    v_n integer;
    v_now timestamptz := now();
    v_clock timestamptz := clock_timestamp();
    v_settings algorithm_settings%ROWTYPE;
    v_rating integer;
    v_fs_s double precision;
    v_fs_state smallint;
    v_bad integer;
    v_bad_msg text;
    v_bad_code text;
    v_has_sessions boolean;
    v_feed_tx xid8;
    i integer;
    k integer;
    r integer;
    u integer;
    -- per answer (input, parsed and looked up once)
    a_user bigint[];
    a_content bigint[];
    a_correct boolean[];
    a_rt integer[];
    a_hints integer[];
    a_q smallint[];
    a_at timestamptz[];
    a_day date[];
    a_session bigint[];
    a_context jsonb[];
    a_concept bigint[];
    a_k integer[];
    a_r integer[];
    a_u integer[];
    -- per answer (output)
    o_id bigint[];
    o_before double precision[];
    o_after double precision[];
    o_pred double precision[];
    o_next timestamptz[];
    o_mastered boolean[];
    -- per (user, concept): knowledge_states, index = a_k
    k_user bigint[];
    k_concept bigint[];
    k_m double precision[];
    k_init double precision[];
    k_decay double precision[];
    k_guess double precision[];
    k_slip double precision[];
    k_rate double precision[];
    k_vel double precision[];
    k_last timestamptz[];
    k_mastered_at timestamptz[];
    k_found boolean[];
    k_n integer[];
    k_nc integer[];
    -- per (user, item): review_schedule, index = a_r
    r_user bigint[];
    r_content bigint[];
    r_ef numeric[];
    r_sm2_due timestamptz[];
    r_fs_state smallint[];
    r_fs_step smallint[];
    r_fs_s double precision[];
    r_fs_d double precision[];
    r_fs_due timestamptz[];
    r_int integer[];
    r_reps integer[];
    r_q smallint[];
    r_next timestamptz[];
    r_last timestamptz[];
    r_found boolean[];
    -- per user, index = a_u
    u_id bigint[];
    u_xp integer[];
    u_streak integer[];
    u_longest integer[];
    u_last date[];
    -- scratch
    v_at timestamptz;
    v_m double precision;
    v_p0 double precision;
    v_delta double precision;
    v_log_p0 double precision;
    v_q0 double precision;
    v_q integer;
    v_day date;
    v_ef numeric;
    v_int integer;
    v_reps integer;
BEGIN
    IF p_answers IS NULL OR jsonb_typeof(p_answers) <> 'array' THEN
        RAISE EXCEPTION 'record_answers: p_answers must be a JSON array, got %',
            coalesce(jsonb_typeof(p_answers), 'NULL')
            USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_settings FROM algorithm_settings;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'record_answers: algorithm_settings has no row'
            USING ERRCODE = '55000',
                  HINT = 'INSERT INTO algorithm_settings DEFAULT VALUES restores the defaults.';
    END IF;

    -- Parse once; look the items up; derive quality and the UTC day; number
    -- the distinct keys (dense_rank in key order = the index into the per-key
    -- arrays loaded below in the same order); find the first invalid element.
    -- A value the typed parse cannot convert (or an element that is not an object)
    -- raises a data exception: record_answers_input_error() then names it.
    BEGIN
    SELECT count(*)::integer,
           array_agg(x.user_id ORDER BY x.ord),
           array_agg(x.content_id ORDER BY x.ord),
           array_agg(x.is_correct ORDER BY x.ord),
           array_agg(x.response_time_ms ORDER BY x.ord),
           array_agg(x.hints ORDER BY x.ord),
           array_agg(coalesce(CASE WHEN x.quality BETWEEN 0 AND 5 THEN x.quality::smallint END,
                              answer_quality(x.is_correct, x.hints, x.response_time_ms, x.avg_rt))
                     ORDER BY x.ord),
           array_agg(x.at ORDER BY x.ord),
           array_agg((x.at AT TIME ZONE 'UTC')::date ORDER BY x.ord),
           array_agg(x.session_id ORDER BY x.ord),
           array_agg(x.ctx ORDER BY x.ord),
           array_agg(x.concept_id ORDER BY x.ord),
           array_agg(x.k ORDER BY x.ord),
           array_agg(x.r ORDER BY x.ord),
           array_agg(x.u ORDER BY x.ord),
           bool_or(x.session_id IS NOT NULL),
           min(x.ord) FILTER (WHERE x.bad IS NOT NULL),
           (array_agg(x.bad ORDER BY x.ord) FILTER (WHERE x.bad IS NOT NULL))[1]
      INTO v_n, a_user, a_content, a_correct, a_rt, a_hints, a_q, a_at, a_day, a_session,
           a_context, a_concept, a_k, a_r, a_u, v_has_sessions, v_bad, v_bad_msg
      FROM (
          SELECT j.user_id, j.content_id, j.is_correct, j.response_time_ms, j.quality,
                 j.session_id, j.ord, c.concept_id, c.average_response_time_ms AS avg_rt,
                 coalesce(j.hints_used, 0) AS hints,
                 coalesce(j.answered_at, v_now) AS at,
                 coalesce(j.context, '{}'::jsonb) AS ctx,
                 dense_rank() OVER (ORDER BY j.user_id, c.concept_id)::integer AS k,
                 dense_rank() OVER (ORDER BY j.user_id, c.concept_id, j.content_id)::integer AS r,
                 dense_rank() OVER (ORDER BY j.user_id)::integer AS u,
                 CASE
                     WHEN j.user_id IS NULL THEN '22004user_id: must not be null'
                     WHEN j.content_id IS NULL THEN '22004content_id: must not be null'
                     WHEN j.is_correct IS NULL THEN '22004is_correct: must not be null'
                     WHEN j.response_time_ms IS NULL THEN '22004response_time_ms: must not be null'
                     WHEN j.response_time_ms < 0 THEN
                         '22023response_time_ms: ' || j.response_time_ms || ' is negative'
                     WHEN j.hints_used < 0 THEN
                         '22023hints_used: ' || j.hints_used || ' is negative'
                     WHEN j.response_time_ms > 86400000 THEN
                         '22023response_time_ms: ' || j.response_time_ms
                         || ' is over 86400000 (a day)'
                     WHEN j.hints_used > 1000 THEN
                         '22023hints_used: ' || j.hints_used || ' is over 1000'
                     WHEN j.quality NOT BETWEEN 0 AND 5 THEN
                         '22023quality: ' || j.quality || ' is outside 0..5'
                     WHEN c.concept_id IS NULL THEN 'P0002content_id: unknown content_id ' || j.content_id
                     WHEN j.answered_at IS NOT NULL
                          AND (NOT isfinite(j.answered_at)
                               OR j.answered_at > v_clock + v_settings.answer_max_future_skew
                               OR j.answered_at < v_settings.answer_earliest_at) THEN
                         '22023answered_at: ' || answer_time_error(j.answered_at, v_clock,
                             v_settings.answer_max_future_skew, v_settings.answer_earliest_at)
                     WHEN j.context IS NOT NULL AND jsonb_typeof(j.context) <> 'object' THEN
                         '22023context: must be a JSON object, got ' || jsonb_typeof(j.context)
                     WHEN pg_column_size(j.context) > 16384 THEN
                         '22023context: ' || pg_column_size(j.context)
                         || ' bytes, over the 16384 an answer may carry'
                 END AS bad
            FROM ROWS FROM (jsonb_to_recordset(p_answers) AS (
                     user_id bigint, content_id bigint, is_correct boolean,
                     response_time_ms integer, hints_used integer, quality integer,
                     answered_at timestamptz, session_id bigint, context jsonb))
                 WITH ORDINALITY AS j(user_id, content_id, is_correct, response_time_ms,
                                      hints_used, quality, answered_at, session_id, context, ord)
            LEFT JOIN content c ON c.content_id = j.content_id
      ) AS x;
    EXCEPTION WHEN data_exception THEN
        v_bad_msg := record_answers_input_error(p_answers, v_clock,
                                                v_settings.answer_max_future_skew,
                                                v_settings.answer_earliest_at);
        IF v_bad_msg IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'record_answers: %', substr(v_bad_msg, 6)
            USING ERRCODE = left(v_bad_msg, 5);
    END;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    IF v_bad IS NOT NULL THEN
        v_bad_code := left(v_bad_msg, 5);
        RAISE EXCEPTION 'record_answers: answers[%].%', v_bad - 1, substr(v_bad_msg, 6)
            USING ERRCODE = v_bad_code;
    END IF;

    -- Sessions: must exist and belong to the answer's user.
    IF v_has_sessions THEN
        SELECT t.i, format('P0002session_id: session_id %s is not a session of user_id %s',
                           t.sid, t.uid)
          INTO v_bad, v_bad_msg
          FROM unnest(a_session, a_user) WITH ORDINALITY AS t(sid, uid, i)
          LEFT JOIN learning_sessions s ON s.user_id = t.uid AND s.session_id = t.sid
         WHERE t.sid IS NOT NULL AND s.session_id IS NULL
         ORDER BY t.i LIMIT 1;
        IF FOUND THEN
            v_bad_code := left(v_bad_msg, 5);
            RAISE EXCEPTION 'record_answers: answers[%].%', v_bad - 1, substr(v_bad_msg, 6)
                USING ERRCODE = v_bad_code;
        END IF;
    END IF;

    -- Users: lock in user_id order (the per-user serialisation point; the
    -- knowledge_states and review_schedule rows of these users are written by
    -- lock holders only, so they are read below without further row locks).
    SELECT array_agg(l.user_id ORDER BY l.user_id),
           array_agg(l.current_streak ORDER BY l.user_id),
           array_agg(l.longest_streak ORDER BY l.user_id),
           array_agg(l.last_active_date ORDER BY l.user_id),
           greatest(max(l.feed_tx), pg_current_xact_id())
      INTO u_id, u_streak, u_longest, u_last, v_feed_tx
      FROM (SELECT us.user_id, us.current_streak, us.longest_streak, us.last_active_date,
                   us.feed_tx
              FROM users us
             WHERE us.user_id = ANY (a_user)
             ORDER BY us.user_id
               FOR NO KEY UPDATE) AS l;
    IF coalesce(cardinality(u_id), 0) <> (SELECT max(x) FROM unnest(a_u) AS x) THEN
        SELECT t.i, t.uid INTO v_bad, v_bad_msg
          FROM unnest(a_user) WITH ORDINALITY AS t(uid, i)
         WHERE NOT (t.uid = ANY (coalesce(u_id, '{}')))
         ORDER BY t.i LIMIT 1;
        RAISE EXCEPTION 'record_answers: answers[%].user_id: unknown user_id %', v_bad - 1, v_bad_msg
            USING ERRCODE = 'P0002';
    END IF;

    -- knowledge_states: the rows in (user, concept) order, or for a missing one the
    -- state a new row starts from (the concept's bkt_concept_parameters, else the column
    -- defaults, as record_answer; mastery starts at initial_knowledge). The new rows are
    -- INSERTed once, already updated, after the loop: inserting the defaults first and
    -- updating them would prepare the CHECKs twice and run the foreign-key checks twice
    -- (an UPDATE of a row inserted by the same transaction re-checks them).
    SELECT array_agg(p.uid ORDER BY p.uid, p.cid),
           array_agg(p.cid ORDER BY p.uid, p.cid),
           array_agg(ks.user_id IS NOT NULL ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.initial_knowledge, 0.1)
                          ELSE ks.mastery_probability END ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.initial_knowledge, 0.1)
                          ELSE ks.initial_knowledge END ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.temporal_decay, 0.98)
                          ELSE ks.temporal_decay END ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.guess_parameter, 0.2)
                          ELSE ks.guess_parameter END ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.slip_parameter, 0.1)
                          ELSE ks.slip_parameter END ORDER BY p.uid, p.cid),
           array_agg(CASE WHEN ks.user_id IS NULL THEN coalesce(bp.learning_rate, 0.15)
                          ELSE ks.learning_rate END ORDER BY p.uid, p.cid),
           array_agg(coalesce(ks.personal_learning_velocity, 1) ORDER BY p.uid, p.cid),
           array_agg(ks.last_interaction ORDER BY p.uid, p.cid),
           array_agg(ks.mastered_at ORDER BY p.uid, p.cid)
      INTO k_user, k_concept, k_found, k_m, k_init, k_decay, k_guess, k_slip, k_rate, k_vel, k_last,
           k_mastered_at
      FROM (SELECT DISTINCT t.uid, t.cid FROM unnest(a_user, a_concept) AS t(uid, cid)
             ORDER BY t.uid, t.cid) AS p
      LEFT JOIN knowledge_states ks ON ks.user_id = p.uid AND ks.concept_id = p.cid
      LEFT JOIN bkt_concept_parameters bp ON bp.concept_id = p.cid AND ks.user_id IS NULL;

    -- review_schedule: current rows (or the SM-2 start state) in (user, concept, item)
    -- order, the order of the parse's numbering r (an item belongs to one concept, so one
    -- sort there serves all three numberings). The keys come sorted, so the aggregate
    -- needs no sort of its own.
    SELECT array_agg(p.uid ORDER BY p.uid, p.cid, p.iid),
           array_agg(p.iid ORDER BY p.uid, p.cid, p.iid),
           array_agg(coalesce(rs.easiness, 2.5) ORDER BY p.uid, p.cid, p.iid),
           array_agg(coalesce(rs.interval_days, 0) ORDER BY p.uid, p.cid, p.iid),
           array_agg(coalesce(rs.repetitions, 0) ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.last_reviewed_at ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.user_id IS NOT NULL ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.fsrs_state ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.fsrs_step ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.fsrs_stability ORDER BY p.uid, p.cid, p.iid),
           array_agg(rs.fsrs_difficulty ORDER BY p.uid, p.cid, p.iid)
      INTO r_user, r_content, r_ef, r_int, r_reps, r_last, r_found,
           r_fs_state, r_fs_step, r_fs_s, r_fs_d
      FROM (SELECT DISTINCT t.uid, t.cid, t.iid
              FROM unnest(a_user, a_concept, a_content) AS t(uid, cid, iid)
             ORDER BY t.uid, t.cid, t.iid) AS p
      LEFT JOIN review_schedule rs ON rs.user_id = p.uid AND rs.content_id = p.iid;
    r_q := array_fill(NULL::smallint, ARRAY[cardinality(r_user)]);
    r_next := array_fill(NULL::timestamptz, ARRAY[cardinality(r_user)]);
    r_sm2_due := r_next;
    r_fs_due := r_next;

    k_n := array_fill(0, ARRAY[cardinality(k_user)]);
    k_nc := k_n;
    u_xp := array_fill(0, ARRAY[cardinality(u_id)]);
    o_before := array_fill(NULL::double precision, ARRAY[v_n]);
    o_after := o_before;
    o_pred := o_before;
    o_next := array_fill(NULL::timestamptz, ARRAY[v_n]);
    o_mastered := array_fill(false, ARRAY[v_n]);

    -- The sequential part, in input order: the same arithmetic as record_answer
    -- (the BKT/SM-2 chains of a key depend on its previous answer).
    FOR i IN 1 .. v_n LOOP
        v_at := a_at[i];
        k := a_k[i];
        -- BKT (first interaction: mastery = initial_knowledge, Δdays = 0)
        IF k_last[k] IS NULL THEN
            v_p0 := bkt_forget(k_init[k], 1, 0);
            v_m := bkt_posterior(k_init[k], a_correct[i], k_guess[k], k_slip[k], k_rate[k], k_vel[k]);
            k_last[k] := v_at;
        ELSE
            v_delta := greatest(0::double precision, date_part('epoch', v_at - k_last[k]) / 86400.0);
            v_p0 := bkt_forget(k_m[k], k_decay[k], v_delta);
            -- bkt_update in steps, so that its parts are inlined (see record_answer)
            v_log_p0 := bkt_log_forget(k_m[k], k_decay[k], v_delta);
            v_q0 := bkt_forget_complement(k_m[k], k_decay[k], v_delta);
            v_m := bkt_learn(bkt_evidence(v_log_p0, v_q0,
                                          CASE WHEN a_correct[i] THEN 1 - k_slip[k] ELSE k_slip[k] END,
                                          CASE WHEN a_correct[i] THEN k_guess[k] ELSE 1 - k_guess[k] END),
                             k_rate[k], k_vel[k]);
            k_last[k] := greatest(k_last[k], v_at);
        END IF;
        o_pred[i] := v_p0 * (1 - k_slip[k]) + (1 - v_p0) * k_guess[k];
        o_before[i] := v_p0;
        o_after[i] := v_m;
        k_m[k] := v_m;
        k_n[k] := k_n[k] + 1;
        IF v_m >= 0.95 AND k_mastered_at[k] IS NULL THEN
            k_mastered_at[k] := v_at;
            o_mastered[i] := true;
        END IF;
        -- SM-2 (exact) and FSRS-6; next_review_at is the chosen scheduler's due. FSRS by
        -- the inlined scalars of fsrs.sql (no call per answer), new stability and state
        -- first: the due and step follow from them and the card before the review.
        v_q := a_q[i];
        r := a_r[i];
        v_rating := fsrs_rating(v_q);
        v_fs_s := fsrs_next_stability(r_fs_state[r], r_fs_s[r], r_fs_d[r], r_last[r], v_rating,
                                      v_at, v_settings.fsrs_parameters);
        v_fs_state := fsrs_next_state(r_fs_state[r], r_fs_step[r], v_rating,
                                      v_settings.fsrs_learning_steps,
                                      v_settings.fsrs_relearning_steps);
        r_fs_due[r] := fsrs_next_due(r_fs_state[r], r_fs_step[r], v_rating, v_at, v_fs_state,
                                     v_fs_s, v_settings.fsrs_parameters,
                                     v_settings.fsrs_desired_retention,
                                     v_settings.fsrs_learning_steps,
                                     v_settings.fsrs_relearning_steps,
                                     v_settings.fsrs_maximum_interval);
        r_fs_d[r] := fsrs_next_difficulty(r_fs_state[r], r_fs_s[r], r_fs_d[r], v_rating,
                                          v_settings.fsrs_parameters);
        r_fs_s[r] := v_fs_s;
        r_fs_step[r] := fsrs_next_step(r_fs_state[r], r_fs_step[r], v_rating, v_fs_state);
        r_fs_state[r] := v_fs_state;
        v_ef := r_ef[r];
        v_reps := r_reps[r];
        v_int := sm2_next_interval(v_ef, r_int[r], v_reps, v_q);
        r_int[r] := v_int;
        r_reps[r] := sm2_next_repetitions(v_reps, v_q);
        r_ef[r] := sm2_next_easiness(v_ef, v_q);
        r_sm2_due[r] := v_at + v_int * interval '24 hours';
        o_next[i] := CASE WHEN v_settings.scheduler = 'fsrs' THEN r_fs_due[r] ELSE r_sm2_due[r] END;
        r_next[r] := o_next[i];
        r_q[r] := v_q;
        r_last[r] := greatest(r_last[r], v_at);
        -- XP and the daily streak (UTC days)
        u := a_u[i];
        IF a_correct[i] THEN
            k_nc[k] := k_nc[k] + 1;
            u_xp[u] := u_xp[u] + 10;
        ELSE
            u_xp[u] := u_xp[u] + 2;
        END IF;
        v_day := a_day[i];
        IF u_last[u] IS NULL OR v_day > u_last[u] + 1 THEN
            u_streak[u] := 1;
            u_last[u] := v_day;
        ELSIF v_day = u_last[u] + 1 THEN
            u_streak[u] := u_streak[u] + 1;
            u_last[u] := v_day;
        END IF;
        IF u_streak[u] > u_longest[u] THEN
            u_longest[u] := u_streak[u];
        END IF;
    END LOOP;

    -- Writes, one statement per table.
    UPDATE users us
       SET xp = us.xp + t.xp, current_streak = t.streak, longest_streak = t.longest,
           last_active_date = t.last_day, feed_tx = v_feed_tx
      FROM (SELECT unnest(u_id) AS uid, unnest(u_xp) AS xp, unnest(u_streak) AS streak,
                   unnest(u_longest) AS longest, unnest(u_last) AS last_day) AS t
     WHERE us.user_id = t.uid;

    IF true = ANY (k_found) THEN
        UPDATE knowledge_states ks
           SET mastery_probability = t.m,
               last_interaction = t.last_at,
               attempts = ks.attempts + t.n,
               correct_attempts = ks.correct_attempts + t.nc,
               mastered_at = t.mastered_at
          FROM (SELECT unnest(k_user) AS uid, unnest(k_concept) AS cid, unnest(k_m) AS m,
                       unnest(k_last) AS last_at, unnest(k_mastered_at) AS mastered_at,
                       unnest(k_n) AS n, unnest(k_nc) AS nc, unnest(k_found) AS found) AS t
         WHERE t.found AND ks.user_id = t.uid AND ks.concept_id = t.cid;
    END IF;
    IF false = ANY (k_found) THEN
        -- A concurrent writer cannot have created one of these rows: they belong to
        -- users locked above, and every writer of them holds that lock.
        INSERT INTO knowledge_states (user_id, concept_id, initial_knowledge, learning_rate,
                                      guess_parameter, slip_parameter, mastery_probability,
                                      temporal_decay, personal_learning_velocity,
                                      last_interaction, attempts, correct_attempts, mastered_at)
        SELECT t.uid, t.cid, t.init, t.rate, t.guess, t.slip, t.m, t.decay, t.vel, t.last_at,
               t.n, t.nc, t.mastered_at
          FROM (SELECT unnest(k_user) AS uid, unnest(k_concept) AS cid, unnest(k_init) AS init,
                       unnest(k_rate) AS rate, unnest(k_guess) AS guess,
                       unnest(k_slip) AS slip, unnest(k_m) AS m, unnest(k_decay) AS decay,
                       unnest(k_vel) AS vel, unnest(k_last) AS last_at, unnest(k_n) AS n,
                       unnest(k_nc) AS nc, unnest(k_mastered_at) AS mastered_at,
                       unnest(k_found) AS found) AS t
         WHERE NOT t.found;
    END IF;

    -- review_schedule: UPDATE the rows that exist, INSERT the new ones (an upsert would
    -- also lock each existing row first: one more WAL record and page change per row).
    UPDATE review_schedule rs
       SET easiness = t.ef, interval_days = t.ival, repetitions = t.reps, next_review_at = t.nxt,
           last_quality = t.q, last_reviewed_at = t.last_at, sm2_due = t.sm2_due,
           fsrs_state = t.fs_state, fsrs_step = t.fs_step, fsrs_stability = t.fs_s,
           fsrs_difficulty = t.fs_d, fsrs_due = t.fs_due
      FROM (SELECT unnest(r_user) AS uid, unnest(r_content) AS iid, unnest(r_ef) AS ef,
                   unnest(r_int) AS ival, unnest(r_reps) AS reps, unnest(r_next) AS nxt,
                   unnest(r_q) AS q, unnest(r_last) AS last_at, unnest(r_found) AS found,
                   unnest(r_sm2_due) AS sm2_due, unnest(r_fs_state) AS fs_state,
                   unnest(r_fs_step) AS fs_step, unnest(r_fs_s) AS fs_s,
                   unnest(r_fs_d) AS fs_d, unnest(r_fs_due) AS fs_due) AS t
     WHERE t.found AND rs.user_id = t.uid AND rs.content_id = t.iid;
    IF false = ANY (r_found) THEN
        INSERT INTO review_schedule (user_id, content_id, easiness, interval_days, repetitions,
                                     next_review_at, last_quality, last_reviewed_at, sm2_due,
                                     fsrs_state, fsrs_step, fsrs_stability, fsrs_difficulty, fsrs_due)
        SELECT t.uid, t.iid, t.ef, t.ival, t.reps, t.nxt, t.q, t.last_at, t.sm2_due,
               t.fs_state, t.fs_step, t.fs_s, t.fs_d, t.fs_due
          FROM (SELECT unnest(r_user) AS uid, unnest(r_content) AS iid, unnest(r_ef) AS ef,
                       unnest(r_int) AS ival, unnest(r_reps) AS reps, unnest(r_next) AS nxt,
                       unnest(r_q) AS q, unnest(r_last) AS last_at, unnest(r_found) AS found,
                       unnest(r_sm2_due) AS sm2_due, unnest(r_fs_state) AS fs_state,
                       unnest(r_fs_step) AS fs_step, unnest(r_fs_s) AS fs_s,
                       unnest(r_fs_d) AS fs_d, unnest(r_fs_due) AS fs_due) AS t
         WHERE NOT t.found;
    END IF;

    -- Lock learning_events before drawing ids (see the header and rollup.sql).
    LOCK TABLE ONLY learning_events IN ROW EXCLUSIVE MODE;
    o_id := ARRAY(SELECT nextval('learning_events_event_id_seq') FROM generate_series(1, v_n));
    -- The ids follow the input order; the rows go in in primary-key order (user, time), so
    -- that consecutive index insertions land on the same leaf page (measured: the sort
    -- costs less than the scattered insertions it saves on batches of many users).
    INSERT INTO learning_events (event_id, user_id, occurred_at, event_type, concept_id,
                                 content_id, session_id, is_correct, response_time_ms, hints_used,
                                 quality, mastery_before, mastery_after, response_data, context_data,
                                 feed_tx, next_review_at, scheduler)
    SELECT t.id, t.uid, t.at, 'question_answered', t.cid, t.iid, t.sid, t.ok, t.rt, t.hints,
           t.q, t.before, t.after, jsonb_build_object('predicted_correct', t.pred), t.ctx,
           v_feed_tx, t.nxt, v_settings.scheduler
      FROM (SELECT unnest(o_id) AS id, unnest(a_user) AS uid, unnest(a_at) AS at,
                   unnest(a_concept) AS cid, unnest(a_content) AS iid,
                   unnest(a_session) AS sid, unnest(a_correct) AS ok, unnest(a_rt) AS rt,
                   unnest(a_hints) AS hints, unnest(a_q) AS q, unnest(o_before) AS before,
                   unnest(o_after) AS after, unnest(o_pred) AS pred,
                   unnest(a_context) AS ctx, unnest(o_next) AS nxt) AS t
     ORDER BY t.uid, t.at;

    IF true = ANY (o_mastered) THEN
        INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id,
                                     session_id, mastery_before, mastery_after, context_data,
                                     feed_tx)
        SELECT t.uid, t.at, 'concept_mastered', t.cid, t.iid, t.sid, t.before, t.after, t.ctx,
               v_feed_tx
          FROM (SELECT unnest(a_user) AS uid, unnest(a_at) AS at, unnest(a_concept) AS cid,
                       unnest(a_content) AS iid, unnest(a_session) AS sid,
                       unnest(o_before) AS before, unnest(o_after) AS after,
                       unnest(a_context) AS ctx, unnest(o_mastered) AS m,
                       generate_series(1, v_n) AS i) AS t
         WHERE t.m
         ORDER BY t.i;
    END IF;

    IF v_settings.events_notify THEN
        PERFORM pg_notify('dmdb_events', '');
    END IF;

    RETURN QUERY
    SELECT t.i::integer, t.id, t.cid, t.after, t.before, t.pred, t.q, t.nxt, t.m
      FROM (SELECT unnest(o_id) AS id, unnest(a_concept) AS cid, unnest(o_after) AS after,
                   unnest(o_before) AS before, unnest(o_pred) AS pred, unnest(a_q) AS q,
                   unnest(o_next) AS nxt, unnest(o_mastered) AS m,
                   generate_series(1, v_n) AS i) AS t;
END;
$$;

COMMENT ON FUNCTION record_answers(jsonb) IS
    'Batch of answers (JSON array, applied in order): same effects as record_answer per element.';
