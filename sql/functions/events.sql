-- The event feed's writers besides record_answer(s) (0014, docs/events.md).
--
-- Every writer of a learner's events holds the learner's users row lock to its commit
-- (record_answer's UPDATE of users, record_answers' FOR NO KEY UPDATE) and gives its
-- events feed_tx = greatest(its transaction id, users.feed_tx), storing that back: so a
-- learner's events are in commit order in the feed's (feed_tx, event_id) order. An
-- INSERT into learning_events that does neither still gets feed_tx = its transaction id
-- (the column default): it is in the feed and never skipped, but only these functions
-- keep a learner's order against a concurrent writer of the same learner.


-- start_session: a learning session begins. One learning_sessions row and one
-- session_started event (occurred_at = p_started_at; response_data {"device": ...} when a
-- device is given; context_data = p_context). p_started_at has record_answer's bounds
-- (finite, at most algorithm_settings.answer_max_future_skew ahead of the server clock,
-- not before answer_earliest_at).
-- Errors (nothing written): 22004 a NULL user or time; 22023 a time out of bounds, a
-- context that is not a JSON object or over 16 kB, a device name over 200 characters;
-- P0002 unknown user; 55000 algorithm_settings has no row.
CREATE OR REPLACE FUNCTION start_session(
    p_user_id bigint,
    p_started_at timestamptz DEFAULT now(),
    p_device text DEFAULT NULL,
    p_context jsonb DEFAULT '{}',
    OUT session_id bigint,
    OUT event_id bigint
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    v_context jsonb := coalesce(p_context, '{}'::jsonb);
    v_skew interval;
    v_earliest timestamptz;
    v_notify boolean;
    v_error text;
    v_feed_tx xid8;
BEGIN
    IF p_user_id IS NULL OR p_started_at IS NULL THEN
        RAISE EXCEPTION 'start_session: % must not be NULL',
            CASE WHEN p_user_id IS NULL THEN 'user_id' ELSE 'started_at' END
            USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(v_context) <> 'object' THEN
        RAISE EXCEPTION 'start_session: context must be a JSON object, got %', jsonb_typeof(v_context)
            USING ERRCODE = '22023';
    END IF;
    IF pg_column_size(v_context) > 16384 THEN
        RAISE EXCEPTION 'start_session: context is % bytes, over the 16384 an event may carry',
            pg_column_size(v_context) USING ERRCODE = '22023';
    END IF;
    IF length(p_device) > 200 THEN
        RAISE EXCEPTION 'start_session: device is % characters, over 200', length(p_device)
            USING ERRCODE = '22023';
    END IF;
    SELECT st.answer_max_future_skew, st.answer_earliest_at, st.events_notify
      INTO v_skew, v_earliest, v_notify
      FROM algorithm_settings st;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'start_session: algorithm_settings has no row'
            USING ERRCODE = '55000',
                  HINT = 'INSERT INTO algorithm_settings DEFAULT VALUES restores the defaults.';
    END IF;
    v_error := answer_time_error(p_started_at, clock_timestamp(), v_skew, v_earliest);
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'start_session: started_at %', v_error USING ERRCODE = '22023';
    END IF;

    -- The learner's lock, and the feed position of their events.
    UPDATE users u
       SET feed_tx = greatest(u.feed_tx, pg_current_xact_id())
     WHERE u.user_id = p_user_id
    RETURNING u.feed_tx INTO v_feed_tx;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'start_session: unknown user_id %', p_user_id USING ERRCODE = 'P0002';
    END IF;

    INSERT INTO learning_sessions AS s (user_id, started_at, device)
    VALUES (p_user_id, p_started_at, p_device)
    RETURNING s.session_id INTO session_id;

    INSERT INTO learning_events AS e (user_id, occurred_at, event_type, session_id, response_data,
                                      context_data, feed_tx)
    VALUES (p_user_id, p_started_at, 'session_started', start_session.session_id,
            CASE WHEN p_device IS NULL THEN '{}'::jsonb
                 ELSE jsonb_build_object('device', p_device) END,
            v_context, v_feed_tx)
    RETURNING e.event_id INTO event_id;

    IF v_notify THEN
        PERFORM pg_notify('dmdb_events', '');
    END IF;
END;
$$;

COMMENT ON FUNCTION start_session(bigint, timestamptz, text, jsonb) IS
    'A learning session begins: its learning_sessions row and a session_started event.';


-- emit_learner_erased: the erasure tombstone, for the privacy work to call in the
-- transaction that erases the learner, BEFORE it deletes the users row (the learner's
-- learning_events rows go with it: ON DELETE CASCADE). One event_tombstones row
-- (event type learner_erased in the feed): the learner's id, when, and the erasure
-- request's reference (no personal data: the consumers erase what they hold of that id).
-- Under the learner's lock (users FOR UPDATE) and after their last events in the feed's
-- order; a learner with no users row any more (an erasure applied again after a
-- restore) gets a tombstone all the same. Returns its event id.
-- Owner only: a tombstone makes every consumer erase a learner (dm_app may not call it).
-- Errors (nothing written): 22004 a NULL user or time; 22023 a time that is not finite,
-- a reference over 200 characters.
CREATE OR REPLACE FUNCTION emit_learner_erased(
    p_user_id bigint,
    p_erased_at timestamptz DEFAULT now(),
    p_request_ref text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_feed_tx xid8;
    v_notify boolean;
    v_event_id bigint;
BEGIN
    IF p_user_id IS NULL OR p_erased_at IS NULL THEN
        RAISE EXCEPTION 'emit_learner_erased: % must not be NULL',
            CASE WHEN p_user_id IS NULL THEN 'user_id' ELSE 'erased_at' END
            USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(p_erased_at) THEN
        RAISE EXCEPTION 'emit_learner_erased: erased_at % is not a finite time', p_erased_at
            USING ERRCODE = '22023';
    END IF;
    IF length(p_request_ref) > 200 THEN
        RAISE EXCEPTION 'emit_learner_erased: request_ref is % characters, over 200',
            length(p_request_ref) USING ERRCODE = '22023';
    END IF;

    SELECT u.feed_tx INTO v_feed_tx FROM users u WHERE u.user_id = p_user_id FOR UPDATE;
    v_feed_tx := greatest(v_feed_tx, pg_current_xact_id());
    UPDATE users u SET feed_tx = v_feed_tx WHERE u.user_id = p_user_id;

    -- The id comes from the events' sequence: lock learning_events first, as every writer
    -- that draws from it does (rollup_learning_events relies on it, see rollup.sql).
    LOCK TABLE ONLY learning_events IN ROW EXCLUSIVE MODE;
    INSERT INTO event_tombstones AS t (feed_tx, user_id, erased_at, request_ref)
    VALUES (v_feed_tx, p_user_id, p_erased_at, p_request_ref)
    RETURNING t.event_id INTO v_event_id;

    SELECT st.events_notify INTO v_notify FROM algorithm_settings st;
    IF v_notify THEN
        PERFORM pg_notify('dmdb_events', '');
    END IF;
    RETURN v_event_id;
END;
$$;

COMMENT ON FUNCTION emit_learner_erased(bigint, timestamptz, text) IS
    'The event feed''s erasure tombstone (learner_erased) for a learner being erased.';

DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dm_app') THEN
        REVOKE EXECUTE ON FUNCTION emit_learner_erased(bigint, timestamptz, text) FROM dm_app;
    END IF;
END
$do$;
