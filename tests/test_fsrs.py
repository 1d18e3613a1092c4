"""FSRS-6 (sql/functions/fsrs.sql, scheduler.sql) against the reference package py-fsrs 6.3.2
(`fsrs`, fuzzing off): fsrs_step on over 10,000 generated review sequences, the scheduler
choice in record_answer/record_answers/next_questions, and switching schedulers live."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fsrs import Card, Rating, Scheduler
from fsrs.scheduler import LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS

import reference_algorithms as ref

T0 = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)

# Replays many sequences in one call: p_seq numbers the sequence of each review (a new
# card starts where it changes); the last review kept is the later one, as in
# record_answer (the generated times never go backwards, so this is py-fsrs' rule too).
REPLAY = """
CREATE FUNCTION pg_temp.fsrs_replay(p_seq integer[], p_rating integer[], p_at timestamptz[],
    p_w float8[], p_retention float8, p_ls integer[], p_rs integer[], p_max integer)
RETURNS TABLE (i integer, state smallint, step smallint, stability float8, difficulty float8,
               due timestamptz)
LANGUAGE plpgsql AS $f$
DECLARE
    v_state smallint; v_step smallint; v_s float8; v_d float8; v_last timestamptz; r record;
BEGIN
    FOR k IN 1 .. cardinality(p_seq) LOOP
        IF k = 1 OR p_seq[k] <> p_seq[k - 1] THEN
            v_state := NULL; v_step := NULL; v_s := NULL; v_d := NULL; v_last := NULL;
        END IF;
        r := fsrs_step(v_state, v_step, v_s, v_d, v_last, p_rating[k], p_at[k], p_w, p_retention,
                       p_ls, p_rs, p_max);
        v_state := r.state; v_step := r.step; v_s := r.stability; v_d := r.difficulty;
        v_last := greatest(v_last, p_at[k]);
        i := k; state := r.state; step := r.step; stability := r.stability;
        difficulty := r.difficulty; due := r.due;
        RETURN NEXT;
    END LOOP;
END $f$"""


@pytest.fixture(scope="module")
def conn(make_database):
    with psycopg.connect(make_database(), autocommit=True) as c:
        c.execute(REPLAY)
        yield c


def _next_time(rnd: random.Random, card: Card, at: datetime) -> datetime:
    """When the next review happens: on time, late (up to years), early, or the same day."""
    mode = rnd.random()
    if mode < 0.35:
        return card.due
    if mode < 0.6:
        return card.due + timedelta(seconds=rnd.randint(1, 86400 * 40))
    if mode < 0.7:
        return card.due + timedelta(days=rnd.randint(100, 3000), seconds=rnd.randint(0, 86399))
    if mode < 0.85:
        return at + timedelta(seconds=rnd.randint(0, 86400 * 3))
    return at + timedelta(hours=23, minutes=59, seconds=rnd.randint(0, 120))  # around 1 day


def _sequences(rnd: random.Random, scheduler: Scheduler, n: int):
    """n generated sequences → (seq ids, ratings, times, py-fsrs' card after each review)."""
    seqs, ratings, ats, cards = [], [], [], []
    for s in range(n):
        card = Card(card_id=s + 1, due=T0)
        at = T0 + timedelta(seconds=rnd.randint(0, 86400 * 365))
        weights = rnd.choice([(1, 1, 1, 1), (1, 1, 4, 1), (3, 1, 2, 1), (1, 0, 5, 2)])
        for k in range(rnd.randint(1, 20)):
            if k:
                at = _next_time(rnd, card, at)
            rating = rnd.choices([1, 2, 3, 4], weights)[0]
            card, _ = scheduler.review_card(card, Rating(rating), at)
            seqs.append(s)
            ratings.append(rating)
            ats.append(at)
            cards.append(card)
    return seqs, ratings, ats, cards


def _random_parameters(rnd: random.Random) -> list[float]:
    return [lo + (hi - lo) * rnd.random() ** 2 if rnd.random() < 0.5 else default
            for lo, hi, default in zip(LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS,
                                       Scheduler().parameters)]


def _seconds(steps) -> list[int]:
    return [int(s.total_seconds()) for s in steps]


CONFIGS = [  # (label, sequences, Scheduler keyword arguments)
    ("defaults", 6000, {}),
    ("one learning step, no relearning", 700, {
        "learning_steps": (timedelta(minutes=5),), "relearning_steps": ()}),
    ("no learning steps", 700, {"learning_steps": (), "desired_retention": 0.8}),
    ("three steps each", 700, {
        "learning_steps": (timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1)),
        "relearning_steps": (timedelta(minutes=10), timedelta(hours=2), timedelta(seconds=45))}),
    ("short maximum, high retention", 700, {"maximum_interval": 30, "desired_retention": 0.97}),
    ("random parameters A", 700, "random"),
    ("random parameters B", 700, "random"),
]


def _config_sequences(label, n, kwargs):
    """One configuration's py-fsrs scheduler and its n generated sequences (seeded by label)."""
    rnd = random.Random(label)
    if kwargs == "random":
        kwargs = {"parameters": _random_parameters(rnd),
                  "desired_retention": rnd.choice([0.7, 0.85, 0.9, 0.95])}
    scheduler = Scheduler(enable_fuzzing=False, **kwargs)
    return (scheduler, *_sequences(rnd, scheduler, n))


@pytest.mark.parametrize("label,n,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fsrs_step_equals_py_fsrs(conn, label, n, kwargs):
    # 10,200 sequences over all configurations (~100,000 reviews): state, step and due
    # exact; stability and difficulty within 1e-9 (relative above 1).
    scheduler, seqs, ratings, ats, cards = _config_sequences(label, n, kwargs)
    got = conn.execute(
        "SELECT state, step, stability, difficulty, due FROM pg_temp.fsrs_replay(%s, %s, %s, %s, "
        "%s, %s, %s, %s) ORDER BY i",
        (seqs, ratings, ats, list(scheduler.parameters), scheduler.desired_retention,
         _seconds(scheduler.learning_steps), _seconds(scheduler.relearning_steps),
         scheduler.maximum_interval)).fetchall()
    assert len(got) == len(cards)
    states = set()
    for k, (card, (state, step, stability, difficulty, due)) in enumerate(zip(cards, got)):
        where = (label, seqs[k], ratings[k], ats[k])
        assert (state, step, due) == (card.state.value, card.step, card.due), where
        assert abs(stability - card.stability) <= 1e-9 * max(1.0, card.stability), where
        assert abs(difficulty - card.difficulty) <= 1e-9 * max(1.0, card.difficulty), where
        if k and seqs[k - 1] == seqs[k]:
            states.add((cards[k - 1].state.value, ratings[k]))
    # Every rating was given in every state (the generator reaches all branches).
    if label == "defaults":
        assert states == {(s, r) for s in (1, 2, 3) for r in (1, 2, 3, 4)}


# The same replay through the inlinable scalars, assigned as record_answers assigns them
# (the new stability and state first, the due and step from them), beside fsrs_step.
REPLAY_SCALARS = """
CREATE FUNCTION pg_temp.fsrs_replay_scalars(p_seq integer[], p_rating integer[],
    p_at timestamptz[], p_w float8[], p_retention float8, p_ls integer[], p_rs integer[],
    p_max integer)
RETURNS TABLE (i integer, state smallint, step smallint, stability float8, difficulty float8,
               due timestamptz, same_as_step boolean)
LANGUAGE plpgsql AS $f$
DECLARE
    v_state smallint; v_step smallint; v_s float8; v_d float8; v_last timestamptz;
    v_rating integer; v_new_s float8; v_new_state smallint; r record;
BEGIN
    FOR k IN 1 .. cardinality(p_seq) LOOP
        IF k = 1 OR p_seq[k] <> p_seq[k - 1] THEN
            v_state := NULL; v_step := NULL; v_s := NULL; v_d := NULL; v_last := NULL;
        END IF;
        v_rating := p_rating[k];
        r := fsrs_step(v_state, v_step, v_s, v_d, v_last, v_rating, p_at[k], p_w, p_retention,
                       p_ls, p_rs, p_max);
        v_new_s := fsrs_next_stability(v_state, v_s, v_d, v_last, v_rating, p_at[k], p_w);
        v_new_state := fsrs_next_state(v_state, v_step, v_rating, p_ls, p_rs);
        due := fsrs_next_due(v_state, v_step, v_rating, p_at[k], v_new_state, v_new_s, p_w,
                             p_retention, p_ls, p_rs, p_max);
        v_d := fsrs_next_difficulty(v_state, v_s, v_d, v_rating, p_w);
        v_s := v_new_s;
        v_step := fsrs_next_step(v_state, v_step, v_rating, v_new_state);
        v_state := v_new_state;
        v_last := greatest(v_last, p_at[k]);
        i := k; state := v_state; step := v_step; stability := v_s; difficulty := v_d;
        same_as_step := ROW(v_state, v_step, v_s, v_d, due) IS NOT DISTINCT FROM r;
        RETURN NEXT;
    END LOOP;
END $f$"""

SCALARS = ("fsrs_exp", "fsrs_elapsed_days", "fsrs_review_retrievability", "fsrs_initial_stability",
           "fsrs_initial_difficulty", "fsrs_short_term_stability", "fsrs_forget_stability",
           "fsrs_recall_stability", "fsrs_reviewed_difficulty", "fsrs_next_stability",
           "fsrs_next_difficulty", "fsrs_steps", "fsrs_current_step", "fsrs_graduates",
           "fsrs_next_state", "fsrs_next_step", "fsrs_review_due", "fsrs_learning_due",
           "fsrs_next_due", "fsrs_interval_days", "fsrs_retrievability", "fsrs_rating")


@pytest.mark.parametrize("label,n,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_scalars_equal_fsrs_step_and_py_fsrs_to_the_bit(conn, label, n, kwargs):
    # The same ~100,000 reviews as above through fsrs_next_*: every field equal to
    # fsrs_step's (IS NOT DISTINCT FROM, NULLs included) and to py-fsrs' exactly, the
    # floats to the last bit (the same expressions in the same order as py-fsrs).
    scheduler, seqs, ratings, ats, cards = _config_sequences(label, n, kwargs)
    conn.execute("DROP FUNCTION IF EXISTS pg_temp.fsrs_replay_scalars")
    conn.execute(REPLAY_SCALARS)
    got = conn.execute(
        "SELECT state, step, stability, difficulty, due, same_as_step FROM "
        "pg_temp.fsrs_replay_scalars(%s, %s, %s, %s, %s, %s, %s, %s) ORDER BY i",
        (seqs, ratings, ats, list(scheduler.parameters), scheduler.desired_retention,
         _seconds(scheduler.learning_steps), _seconds(scheduler.relearning_steps),
         scheduler.maximum_interval)).fetchall()
    assert len(got) == len(cards)
    want = [(c.state.value, c.step, c.stability, c.difficulty, c.due, True) for c in cards]
    bad = [(k, w, g) for k, (w, g) in enumerate(zip(want, got)) if w != g]
    assert not bad, f"{len(bad)} of {len(want)}: {bad[:3]}"


def test_scalars_are_inlined(conn):
    # Single-expression SQL functions the planner can inline: IMMUTABLE, PARALLEL SAFE,
    # not STRICT, no SET, not SECURITY DEFINER; and a call of each fsrs_next_* inside a
    # query leaves no fsrs_ function in the plan (only built-in operators and functions).
    rows = conn.execute(
        "SELECT p.proname, l.lanname, p.provolatile, p.proparallel, p.proisstrict, "
        "p.prosecdef, p.proconfig FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)",
        (list(SCALARS),)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(SCALARS)
    assert all(r[1:] == ("sql", "i", "s", False, False, None) for r in rows), rows
    conn.execute("DROP TABLE IF EXISTS pg_temp.card")
    conn.execute("CREATE TEMP TABLE card AS SELECT 2::smallint st, NULL::smallint sp, "
                 "10::float8 s, 5::float8 d, timestamptz '2025-01-01Z' l, 3 r, "
                 "timestamptz '2025-01-20Z' t, 4 q")
    calls = {
        "fsrs_next_stability": "fsrs_next_stability(c.st, c.s, c.d, c.l, c.r, c.t, a.fsrs_parameters)",
        "fsrs_next_difficulty": "fsrs_next_difficulty(c.st, c.s, c.d, fsrs_rating(c.q), a.fsrs_parameters)",
        "fsrs_next_state": "fsrs_next_state(c.st, c.sp, c.r, a.fsrs_learning_steps, "
                           "a.fsrs_relearning_steps)",
        "fsrs_next_step": "fsrs_next_step(c.st, c.sp, c.r, 1::smallint)",
        "fsrs_next_due": "fsrs_next_due(c.st, c.sp, c.r, c.t, c.st, c.s, a.fsrs_parameters, "
                         "a.fsrs_desired_retention, a.fsrs_learning_steps, "
                         "a.fsrs_relearning_steps, a.fsrs_maximum_interval)",
    }
    for name, call in calls.items():
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN (VERBOSE, COSTS OFF) SELECT {call} FROM card c, algorithm_settings a"))
        output = next(line for line in plan.splitlines() if "Output:" in line)
        assert not re.search(r"fsrs_\w*\(", output) and "CASE" in output, (name, output)
    # Inside PL/pgSQL, as record_answers uses them: with function tracking on, the
    # replay counts its fsrs_step calls and no call of any scalar (an inlined function
    # is never called).
    w = list(Scheduler().parameters)
    with conn.transaction():
        conn.execute("SET LOCAL track_functions = 'all'")
        conn.execute("DROP FUNCTION IF EXISTS pg_temp.fsrs_replay_scalars")
        conn.execute(REPLAY_SCALARS)
        n = conn.execute("SELECT count(*) FROM pg_temp.fsrs_replay_scalars(%s, %s, %s, %s, 0.9, "
                         "'{60,600}', '{600}', 36500)",
                         ([0] * 8 + [1] * 8, [1, 2, 3, 4, 3, 3, 1, 2] * 2,
                          [T0 + timedelta(hours=k * k) for k in range(16)], w)).fetchone()[0]
        calls = dict(conn.execute(
            "SELECT p.proname, pg_stat_get_xact_function_calls(p.oid) FROM pg_proc p "
            "WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)",
            (list(SCALARS) + ["fsrs_step"],)).fetchall())
    assert n == 16 and calls.pop("fsrs_step") == 16
    assert set(calls.values()) == {None}, calls


def test_fsrs_rating_from_quality(conn):
    got = conn.execute("SELECT array_agg(fsrs_rating(q) ORDER BY q) FROM generate_series(0, 5) q"
                       ).fetchone()[0]
    assert got == [ref.fsrs_rating(q) for q in range(6)] == [1, 1, 1, 2, 3, 4]


def test_fsrs_step_refuses_bad_input(conn):
    w = list(Scheduler().parameters)
    for rating, at in ((0, T0), (5, T0), (3, "infinity")):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT * FROM fsrs_step(NULL, NULL, NULL, NULL, NULL, %s, %s, %s, 0.9, "
                         "'{60,600}', '{600}', 36500)", (rating, at, w))


def test_settings_refuse_out_of_bounds_values(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as db:
        assert db.execute("SELECT scheduler, fsrs_parameters, fsrs_desired_retention, "
                          "fsrs_learning_steps, fsrs_relearning_steps, fsrs_maximum_interval "
                          "FROM algorithm_settings").fetchone() == (
            "sm2", list(Scheduler().parameters), 0.9, [60, 600], [600], 36500)
        w = list(Scheduler().parameters)
        bad = ["scheduler = 'anki'", "fsrs_desired_retention = 1", "fsrs_maximum_interval = 0",
               "fsrs_learning_steps = '{60,0}'", "fsrs_relearning_steps = '{NULL}'",
               "fsrs_parameters = fsrs_parameters[1:20]", "answer_max_future_skew = '-1 minute'"]
        for k, (lo, hi) in enumerate(zip(LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS)):
            bad.append(f"fsrs_parameters[{k + 1}] = {hi + 0.01}")
            bad.append(f"fsrs_parameters[{k + 1}] = {lo - 0.01}")
        for change in bad:
            with pytest.raises(psycopg.errors.CheckViolation):
                db.execute(f"UPDATE algorithm_settings SET {change}")
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute("INSERT INTO algorithm_settings DEFAULT VALUES")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown scheduler"):
            db.execute("SELECT set_scheduler('anki')")
        assert db.execute("SELECT fsrs_parameters FROM algorithm_settings").fetchone()[0] == w


# -- the chosen scheduler in record_answer / next_questions, and switching live -----------------


def _setup(db, n_items=4):
    user = db.execute("INSERT INTO users (email, display_name) VALUES (%s, 'f') RETURNING user_id",
                      (f"f{random.random()}@example.invalid",)).fetchone()[0]
    concept = db.execute("INSERT INTO concepts (code, name, category) VALUES (%s, 'c', "
                         "'road_rules') RETURNING concept_id", (f"c{random.random()}",)).fetchone()[0]
    items = [db.execute("INSERT INTO content (concept_id, category, question) VALUES (%s, "
                        "'road_rules', 'q') RETURNING content_id", (concept,)).fetchone()[0]
             for _ in range(n_items)]
    return user, items


def _answer(db, user, item, quality, at):
    return db.execute("SELECT next_review_at FROM record_answer(%s, %s, %s, 1000, p_quality => %s, "
                      "p_answered_at => %s)", (user, item, quality >= 3, quality, at)).fetchone()[0]


def test_record_answer_and_next_questions_follow_the_chosen_scheduler(schema_url):
    scheduler = Scheduler(enable_fuzzing=False)
    with psycopg.connect(schema_url, autocommit=True) as db:
        db.execute("SELECT set_scheduler('fsrs')")
        user, items = _setup(db)
        cards = {}
        plan = [(0, 4, 0), (0, 4, 60), (1, 5, 0), (2, 1, 30), (0, 4, 700), (3, 3, 100)]
        for item_k, quality, minutes in plan:
            item = items[item_k]
            at = T0 + timedelta(minutes=minutes)
            got = _answer(db, user, item, quality, at)
            cards[item] = ref.fsrs_review(scheduler, cards.get(item), ref.fsrs_rating(quality), at)
            assert got == cards[item].due
        rows = db.execute("SELECT content_id, next_review_at, fsrs_due, sm2_due, fsrs_state, "
                          "fsrs_stability FROM review_schedule WHERE user_id = %s", (user,)).fetchall()
        for item, nxt, fsrs_due, sm2_due, state, stability in rows:
            assert nxt == fsrs_due == cards[item].due and state == cards[item].state.value
            assert stability == pytest.approx(cards[item].stability, rel=1e-12)
            assert sm2_due >= T0 + timedelta(days=1)
        # next_questions reads next_review_at: FSRS's minutes-long learning steps make
        # items due long before SM-2's one-day interval.
        when = max(c.due for c in cards.values() if c.due < T0 + timedelta(hours=23))
        due_items = sorted(i for i, c in cards.items() if c.due <= when)
        got = db.execute("SELECT content_id FROM next_questions(%s, 10, %s) WHERE reason = 'review' "
                         "ORDER BY content_id", (user, when)).fetchall()
        assert [g[0] for g in got] == due_items and due_items


def test_switching_schedulers_on_a_live_database(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as db:
        user, items = _setup(db, 6)
        for k, item in enumerate(items):
            for day, q in enumerate([5, 4, 3, 5][: k % 4 + 1]):
                _answer(db, user, item, q, T0 + timedelta(days=day * 3, minutes=k))
        # A row last answered before migration 0007: no FSRS state.
        db.execute("UPDATE review_schedule SET fsrs_state = NULL, fsrs_step = NULL, "
                   "fsrs_stability = NULL, fsrs_difficulty = NULL, fsrs_due = NULL "
                   "WHERE content_id = %s", (items[0],))

        def rows():
            return db.execute("SELECT content_id, next_review_at, sm2_due, fsrs_due FROM "
                              "review_schedule WHERE user_id = %s ORDER BY 1", (user,)).fetchall()

        assert all(r[1] == r[2] for r in rows())  # SM-2 is the default
        assert db.execute("SELECT set_scheduler('fsrs')").fetchone()[0] == len(items) - 1
        for item, nxt, sm2_due, fsrs_due in rows():
            assert nxt == (sm2_due if item == items[0] else fsrs_due)
        assert db.execute("SELECT set_scheduler('fsrs')").fetchone()[0] == 0  # nothing to do
        # The next answer starts FSRS for the pre-0007 row, as a new card.
        _answer(db, user, items[0], 4, T0 + timedelta(days=30))
        row = db.execute("SELECT next_review_at, fsrs_due, fsrs_state FROM review_schedule WHERE "
                         "user_id = %s AND content_id = %s", (user, items[0])).fetchone()
        assert row == (T0 + timedelta(days=30, minutes=10), T0 + timedelta(days=30, minutes=10), 1)
        # Back to SM-2 without re-pointing, then the batch re-point (one commit per batch).
        before = rows()
        assert db.execute("SELECT set_scheduler('sm2', false)").fetchone()[0] == 0
        assert rows() == before
        db.execute("CALL repoint_schedules(1)")
        assert all(r[1] == r[2] for r in rows())
        with pytest.raises(psycopg.errors.InvalidTransactionTermination), db.transaction():
            db.execute("CALL repoint_schedules(1)")


def test_switch_under_concurrent_answers_leaves_every_row_consistent(schema_url):
    # Answers keep arriving on 3 connections while the scheduler is switched back and
    # forth: afterwards every row's next_review_at is the due of the final choice.
    with psycopg.connect(schema_url, autocommit=True) as db:
        users_items = [_setup(db, 5) for _ in range(3)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(k):
        rnd = random.Random(k)
        user, items = users_items[k]
        # Answer times advance ~12 h per answer: start years back and stop before they
        # would reach the server clock (answers from the future are refused by design).
        at = T0 - timedelta(days=3650)
        latest = datetime.now(timezone.utc) - timedelta(days=2)
        try:
            with psycopg.connect(schema_url, autocommit=True) as c:
                while not stop.is_set():
                    at += timedelta(hours=rnd.choice([0.1, 5, 30]))
                    if at > latest:
                        break
                    batch = [{"user_id": user, "content_id": rnd.choice(items), "is_correct": True,
                              "response_time_ms": 5, "quality": rnd.randint(0, 5),
                              "answered_at": at.isoformat()}]
                    if rnd.random() < 0.5:
                        c.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
                    else:
                        _answer(c, user, batch[0]["content_id"], batch[0]["quality"], at)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        with psycopg.connect(schema_url, autocommit=True) as db:
            for choice in ["fsrs", "sm2", "fsrs", "sm2", "fsrs"]:
                time.sleep(0.3)
                db.execute("SELECT set_scheduler(%s)", (choice,))
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    with psycopg.connect(schema_url, autocommit=True) as db:
        rows = db.execute("SELECT next_review_at, fsrs_due FROM review_schedule").fetchall()
    assert rows and all(nxt == fsrs_due for nxt, fsrs_due in rows)


def test_fsrs_backfill_replays_the_history_of_pre_0007_rows(schema_url):
    # Rows answered before migration 0007 have no FSRS state. Simulated here by answering
    # with FSRS state kept, then erasing it: the backfill must rebuild exactly the state
    # the answers produced live, and py-fsrs' replay of the same history.
    scheduler = Scheduler(enable_fuzzing=False)
    rnd = random.Random(7)
    with psycopg.connect(schema_url, autocommit=True) as db:
        learners = [_setup(db, 4) for _ in range(3)]
        history: dict[tuple[int, int], list[tuple[int, datetime]]] = {}
        for user, items in learners:
            at = T0
            for _ in range(30):
                at += timedelta(hours=rnd.choice([0.05, 2, 20, 50, 400]))
                item, q = rnd.choice(items), rnd.randint(0, 5)
                _answer(db, user, item, q, at)
                history.setdefault((user, item), []).append((q, at))
        live = db.execute("SELECT user_id, content_id, fsrs_state, fsrs_step, fsrs_stability, "
                          "fsrs_difficulty, fsrs_due, next_review_at FROM review_schedule "
                          "ORDER BY 1, 2").fetchall()
        db.execute("UPDATE review_schedule SET fsrs_state = NULL, fsrs_step = NULL, "
                   "fsrs_stability = NULL, fsrs_difficulty = NULL, fsrs_due = NULL, sm2_due = NULL")
        db.execute("SELECT set_scheduler('fsrs')")  # re-points nothing: no FSRS due yet
        db.execute("CALL fsrs_backfill(2)")
        rebuilt = db.execute("SELECT user_id, content_id, fsrs_state, fsrs_step, fsrs_stability, "
                             "fsrs_difficulty, fsrs_due, sm2_due FROM review_schedule "
                             "ORDER BY 1, 2").fetchall()
    assert [r[:7] for r in rebuilt] == [r[:7] for r in live]
    assert [r[7] for r in rebuilt] == [r[7] for r in live]  # SM-2's due kept aside
    for user, item, state, step, stability, difficulty, due, _ in rebuilt:
        card = None
        for q, at in history[(user, item)]:
            card = ref.fsrs_review(scheduler, card, ref.fsrs_rating(q), at)
        assert (state, step, due) == (card.state.value, card.step, card.due)
        assert stability == pytest.approx(card.stability, rel=1e-12)
        assert difficulty == pytest.approx(card.difficulty, rel=1e-12)
    with psycopg.connect(schema_url, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM review_schedule WHERE next_review_at <> fsrs_due"
                          ).fetchone()[0] == 0
        db.execute("CALL fsrs_backfill()")  # nothing left to do


def test_settings_changed_between_reviews(conn):
    # The deployment may change the steps (or any setting) while cards are in learning:
    # a card past the new, shorter list of steps graduates on Hard/Good/Easy, as in py-fsrs.
    rnd = random.Random(11)
    configs = [Scheduler(enable_fuzzing=False),
               Scheduler(enable_fuzzing=False, learning_steps=(timedelta(minutes=3),),
                         relearning_steps=(), desired_retention=0.8, maximum_interval=100),
               Scheduler(enable_fuzzing=False, learning_steps=(
                   timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30)),
                   relearning_steps=(timedelta(minutes=2), timedelta(minutes=20)))]
    for s in range(150):
        card, state, at = Card(card_id=s + 1, due=T0), (None, None, None, None, None), T0
        for k in range(rnd.randint(2, 10)):
            if k:
                at = _next_time(rnd, card, at)
            scheduler = rnd.choice(configs)
            rating = rnd.choice([1, 2, 3, 3, 4])
            card, _ = scheduler.review_card(card, Rating(rating), at)
            got = conn.execute(
                "SELECT state, step, stability, difficulty, due FROM fsrs_step(%s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s)",
                (*state[:4], state[4], rating, at, list(scheduler.parameters),
                 scheduler.desired_retention, _seconds(scheduler.learning_steps),
                 _seconds(scheduler.relearning_steps), scheduler.maximum_interval)).fetchone()
            assert (got[0], got[1], got[4]) == (card.state.value, card.step, card.due), (s, k)
            assert got[2] == pytest.approx(card.stability, rel=1e-12)
            assert got[3] == pytest.approx(card.difficulty, rel=1e-12)
            state = (got[0], got[1], got[2], got[3], at)


def test_set_scheduler_waits_in_short_attempts_and_names_who_holds_the_settings(schema_url):
    """An idle report holding a read of algorithm_settings must not stall every answer for
    as long as set_scheduler waits for it (issue 29): set_scheduler waits in attempts of
    200 ms, within the caller's lock_timeout, and then names the blocker."""
    import threading

    with psycopg.connect(schema_url, autocommit=True) as report, \
            psycopg.connect(schema_url, autocommit=True) as admin, \
            psycopg.connect(schema_url, autocommit=True) as answers:
        report.execute("BEGIN")
        report.execute("SELECT scheduler FROM algorithm_settings").fetchone()
        outcome: dict = {}

        def switch() -> None:
            admin.execute("SET lock_timeout = '3s'")
            try:
                admin.execute("SELECT set_scheduler('fsrs')")
            except psycopg.Error as exc:
                outcome["error"] = exc

        switching = threading.Thread(target=switch)
        switching.start()
        # Every answer reads the settings; each may wait for one 200 ms attempt at most.
        answers.execute("SET lock_timeout = '1s'")
        reads = 0
        while switching.is_alive():
            answers.execute("SELECT scheduler FROM algorithm_settings").fetchone()
            reads += 1
        switching.join()
        error = outcome["error"]
        assert isinstance(error, psycopg.errors.LockNotAvailable)
        assert f"pid {report.info.backend_pid}" in error.diag.message_detail
        assert reads > 1
        report.execute("COMMIT")
        assert admin.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "3s"
        admin.execute("SELECT set_scheduler('sm2')")
        assert admin.execute("SELECT scheduler FROM algorithm_settings").fetchone()[0] == "sm2"
