-- rollup_learning_events: bring the shared counters up to date from learning_events.
--
-- record_answer never touches rows that many learners share (a content item's
-- counters, its bandit arm): those would serialise everyone answering the same
-- question. This function adds the question_answered events not yet rolled up:
--   content.total_attempts    += answers
--   content.correct_attempts  += correct answers
--   content.average_response_time_ms = running mean, the old mean weighted by the
--                               old total_attempts (every answer recorded by
--                               record_answer carries a response time)
--   bandit_arms.pulls         += answers        (row created if missing)
--   bandit_arms.reward_sum    += Σ (mastery_after − mastery_before)
-- and moves the watermark (rollup_watermarks 'content_stats', migration 0006).
-- Running it twice adds nothing: the second run finds no event above the watermark.
--
-- Why the watermark is safe although event ids are not committed in order
-- ------------------------------------------------------------------------
-- event_id comes from a sequence: transaction A may draw id 100, transaction B id
-- 101, and B commit first. A rollup that then saw 101 and moved the watermark to 101
-- would never count 100. So the rollup only moves the watermark to a high-water mark
-- H below which nothing can still be in flight:
--   1. read H = the sequence's last allocated value;
--   2. list the transactions holding a ROW EXCLUSIVE lock on learning_events or
--      one of its partitions (every INSERT/COPY takes it when the statement is
--      parsed/planned, i.e. BEFORE its default nextval() runs, and keeps it to the
--      end of the transaction);
--   3. wait (polling pg_locks, no lock taken, writers never blocked) until each of
--      them has ended;
--   4. aggregate the events in (watermark, H] with a new snapshot (READ COMMITTED)
--      and set the watermark to H.
-- Any id <= H was drawn before step 1 by a transaction that, if not yet committed
-- at step 2, held that lock then, so step 3 waited for it: every id <= H is
-- committed (visible to step 4) or rolled back (never will be). Ids drawn after
-- step 1 are > H and left for the next run.
-- The alternatives: a watermark on occurred_at or on ids alone is unsafe (above);
-- LOCK TABLE … SHARE would do steps 2-3 but queue every new answer behind the
-- slowest open writer; a per-event "rolled up" flag would rewrite every event row;
-- an xid8 column per event would widen the busiest table.
-- Requirements (checked where possible): the sequence has CACHE 1 (a backend's
-- cached ids would be drawn long after H was read: refused with 0A000); a writer
-- that draws ids by hand must lock learning_events first (record_answers does
-- LOCK TABLE ONLY learning_events IN ROW EXCLUSIVE MODE); the function runs in READ
-- COMMITTED (step 4 needs a snapshot taken after step 3: else 25000). A writer
-- still open after p_wait (an idle-in-transaction session, a prepared transaction)
-- makes the run fail with 55P03 naming its pid; nothing is written then.
--
-- Concurrent rollups serialise on the watermark row (FOR UPDATE).
-- Returns the id range processed, the answers rolled up and the items touched.
CREATE OR REPLACE FUNCTION rollup_learning_events(
    p_wait interval DEFAULT '30 seconds',
    OUT from_event_id bigint,
    OUT to_event_id bigint,
    OUT answers bigint,
    OUT items integer,
    OUT waited_ms double precision
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_deadline timestamptz;
    v_rels oid[];
    v_writers text[];
    v_left text;
BEGIN
    IF p_wait IS NULL OR p_wait < interval '0' THEN
        RAISE EXCEPTION 'rollup_learning_events: wait % must be a non-negative interval', p_wait
            USING ERRCODE = '22023';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'rollup_learning_events: needs READ COMMITTED, the transaction is %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = '25000',
                  HINT = 'Run it in its own transaction with the default isolation level.';
    END IF;
    IF (SELECT s.seqcache FROM pg_catalog.pg_sequence s
         WHERE s.seqrelid = 'learning_events_event_id_seq'::regclass) > 1 THEN
        RAISE EXCEPTION 'rollup_learning_events: learning_events_event_id_seq has CACHE > 1, '
                        'so event ids are not drawn in time order and the watermark would skip events'
            USING ERRCODE = '0A000',
                  HINT = 'ALTER SEQUENCE learning_events_event_id_seq CACHE 1';
    END IF;

    SELECT w.last_event_id INTO from_event_id
      FROM rollup_watermarks w
     WHERE w.name = 'content_stats'
       FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO rollup_watermarks (name) VALUES ('content_stats') ON CONFLICT DO NOTHING;
        SELECT w.last_event_id INTO STRICT from_event_id
          FROM rollup_watermarks w
         WHERE w.name = 'content_stats'
           FOR UPDATE;
    END IF;

    -- 1. the high-water mark
    to_event_id := coalesce(pg_sequence_last_value('learning_events_event_id_seq'), 0);

    -- 2. the open writers of learning_events (parent or any partition)
    SELECT array_agg(t.relid) INTO v_rels
      FROM pg_partition_tree('learning_events') AS t;
    SELECT array_agg(DISTINCT l.virtualtransaction) INTO v_writers
      FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'relation'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                          WHERE d.datname = current_database())
       AND l.relation = ANY (v_rels)
       AND l.mode = 'RowExclusiveLock'
       AND l.granted
       AND l.pid IS DISTINCT FROM pg_backend_pid();

    -- 3. wait for each of them to end
    v_deadline := v_started + p_wait;
    WHILE v_writers IS NOT NULL LOOP
        SELECT array_agg(DISTINCT l.virtualtransaction) INTO v_writers
          FROM pg_catalog.pg_locks l
         WHERE l.virtualtransaction = ANY (v_writers);
        EXIT WHEN v_writers IS NULL;
        IF clock_timestamp() >= v_deadline THEN
            SELECT string_agg(DISTINCT coalesce(l.pid::text, 'prepared ' || l.virtualtransaction), ', ')
              INTO v_left
              FROM pg_catalog.pg_locks l
             WHERE l.virtualtransaction = ANY (v_writers);
            RAISE EXCEPTION 'rollup_learning_events: writers of learning_events still open after %'
                            ' (backend pid %)', p_wait, v_left
                USING ERRCODE = '55P03',
                      HINT = 'End those transactions or retry later with a longer wait.';
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    waited_ms := extract(epoch FROM clock_timestamp() - v_started) * 1000;

    -- 4. roll up (from, to] with a fresh snapshot
    answers := 0;
    items := 0;
    IF to_event_id > from_event_id THEN
        WITH ev AS (
            SELECT e.content_id,
                   count(*) AS n,
                   count(*) FILTER (WHERE e.is_correct) AS n_correct,
                   sum(e.response_time_ms) AS rt_sum,
                   count(e.response_time_ms) AS rt_n,
                   sum(coalesce(e.mastery_after - e.mastery_before, 0)) AS gain
              FROM learning_events e
             WHERE e.event_id > from_event_id
               AND e.event_id <= to_event_id
               AND e.event_type = 'question_answered'
               AND e.content_id IS NOT NULL
             GROUP BY e.content_id
        ), upd AS (
            UPDATE content c
               SET total_attempts = c.total_attempts + ev.n,
                   correct_attempts = c.correct_attempts + ev.n_correct,
                   average_response_time_ms = CASE
                       WHEN ev.rt_n = 0 THEN c.average_response_time_ms
                       WHEN c.average_response_time_ms IS NULL OR c.total_attempts = 0
                           THEN ev.rt_sum::double precision / ev.rt_n
                       ELSE (c.average_response_time_ms * c.total_attempts + ev.rt_sum)
                            / (c.total_attempts + ev.rt_n)
                   END
              FROM ev
             WHERE c.content_id = ev.content_id
            RETURNING c.content_id, c.concept_id, ev.n, ev.gain
        ), arms AS (
            INSERT INTO bandit_arms AS b (content_id, concept_id, pulls, reward_sum, updated_at)
            SELECT upd.content_id, upd.concept_id, upd.n, upd.gain, now()
              FROM upd
             ORDER BY upd.content_id
            ON CONFLICT (content_id) DO UPDATE
               SET pulls = b.pulls + EXCLUDED.pulls,
                   reward_sum = b.reward_sum + EXCLUDED.reward_sum,
                   concept_id = EXCLUDED.concept_id,
                   updated_at = EXCLUDED.updated_at
            RETURNING 1
        )
        SELECT coalesce((SELECT sum(ev.n) FROM ev), 0), (SELECT count(*) FROM arms)
          INTO answers, items;

        UPDATE rollup_watermarks w
           SET last_event_id = to_event_id,
               events_processed = w.events_processed + answers,
               updated_at = now()
         WHERE w.name = 'content_stats';
    ELSE
        to_event_id := from_event_id;
    END IF;
END;
$$;

COMMENT ON FUNCTION rollup_learning_events(interval) IS
    'Adds question_answered events above the watermark to content counters and bandit_arms.';
