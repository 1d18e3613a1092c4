"""record_answer, record_answers, rollup_learning_events and next_questions on a real schema."""

from __future__ import annotations

import json
import math
import random
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest

import reference_algorithms as ref

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
TOL = Decimal("1e-9")


def close(got, want, tol=TOL) -> bool:
    """A float from the database within tol of an exact (Decimal) reference value."""
    return abs(Decimal(got) - ref.dec(want)) <= tol


@pytest.fixture
def db(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        yield conn


def add_user(conn, name="learner") -> int:
    return conn.execute("INSERT INTO users (email, display_name) VALUES (%s, %s) RETURNING user_id",
                        (f"{name}-{random.random()}@example.invalid", name)).fetchone()[0]


def add_concept(conn, code, category="road_rules", prerequisites=()) -> int:
    cid = conn.execute("INSERT INTO concepts (code, name, category) VALUES (%s, %s, %s) "
                       "RETURNING concept_id", (code, code, category)).fetchone()[0]
    for p in prerequisites:
        conn.execute("INSERT INTO concept_prerequisites (concept_id, prerequisite_id) "
                     "VALUES (%s, %s)", (cid, p))
    return cid


def add_item(conn, concept_id, active=True, avg_rt=None) -> int:
    return conn.execute(
        "INSERT INTO content (concept_id, category, question, is_active, average_response_time_ms) "
        "VALUES (%s, 'road_rules', 'q', %s, %s) RETURNING content_id",
        (concept_id, active, avg_rt)).fetchone()[0]


def answer(conn, user, item, correct, rt=3000, **kw):
    names = ", ".join(f"{k} => %({k})s" for k in kw)
    row = conn.execute(
        f"SELECT * FROM record_answer(%(u)s, %(i)s, %(c)s, %(rt)s{', ' if kw else ''}{names})",
        {"u": user, "i": item, "c": correct, "rt": rt, **kw}).fetchone()
    cols = ["mastery", "next_review_at", "predicted_correct", "mastery_before", "quality",
            "concept_id", "event_id", "newly_mastered", "xp", "current_streak"]
    return dict(zip(cols, row))


def counts(conn):
    return conn.execute(
        """SELECT (SELECT count(*) FROM learning_events), (SELECT count(*) FROM knowledge_states),
                  (SELECT count(*) FROM review_schedule), (SELECT sum(xp) FROM users),
                  (SELECT count(*) FROM learning_events WHERE event_type = 'concept_mastered')"""
    ).fetchone()


# -- hand-worked cases ---------------------------------------------------------------------


def test_bkt_sequence_by_hand(db):
    user, concept = add_user(db), add_concept(db, "signs")
    item = add_item(db, concept)
    # Defaults: initial 0.1, guess 0.2, slip 0.1, learning_rate 0.15, velocity 1, decay 0.98.
    # 1. T0, correct, first interaction: p0 = 0.1; predicted = 0.1·0.9 + 0.9·0.2 = 0.27;
    #    p1 = 0.09/0.27 = 1/3; p = 1/3 + (2/3)·0.15 = 13/30 = 0.4333…
    r1 = answer(db, user, item, True, p_answered_at=T0)
    assert r1["mastery_before"] == pytest.approx(0.1, abs=1e-15)
    assert r1["predicted_correct"] == pytest.approx(0.27, abs=1e-15)
    assert r1["mastery"] == pytest.approx(13 / 30, abs=1e-15)
    # 2. T0 + 1 day, wrong: p0 = 13/30 · 0.98 = 637/1500 = 0.42466…;
    #    predicted = p0·0.9 + (1 − p0)·0.2 = 0.49726…;
    #    p1 = p0·0.1 / (p0·0.1 + (1 − p0)·0.8) = 637/7541 = 0.084471…;
    #    p = p1 + (1 − p1)·0.15 = 8363/37705 = 0.221800…
    r2 = answer(db, user, item, False, p_answered_at=T0 + timedelta(days=1))
    assert r2["mastery_before"] == pytest.approx(637 / 1500, abs=1e-12)
    assert r2["predicted_correct"] == pytest.approx(0.4972666666666667, abs=1e-12)
    assert r2["mastery"] == pytest.approx(8363 / 37705, abs=1e-12)
    # 3. T0 + 3 days (Δ = 2), correct: p0 = 8363/37705 · 0.98² = 0.213017…;
    #    p1 = p0·0.9 / (p0·0.9 + (1 − p0)·0.2) = 0.549152…; p = p1 + (1 − p1)·0.15 = 0.616779…
    r3 = answer(db, user, item, True, p_answered_at=T0 + timedelta(days=3))
    assert r3["mastery_before"] == pytest.approx(0.21301750961410953, abs=1e-12)
    assert r3["mastery"] == pytest.approx(0.6167793573941512, abs=1e-12)
    # 4. An answer dated before last_interaction (out of order): Δ clamped to 0, p0 = p.
    r4 = answer(db, user, item, True, p_answered_at=T0 + timedelta(days=2))
    assert r4["mastery_before"] == pytest.approx(r3["mastery"], abs=1e-15)
    assert r4["mastery"] == pytest.approx(0.8968769796243846, abs=1e-12)

    ks = db.execute("SELECT mastery_probability, attempts, correct_attempts, last_interaction "
                    "FROM knowledge_states WHERE user_id = %s AND concept_id = %s",
                    (user, concept)).fetchone()
    assert ks[0] == pytest.approx(r4["mastery"], abs=1e-15)
    assert ks[1:] == (4, 3, T0 + timedelta(days=3))  # last_interaction keeps the later time
    events = db.execute("SELECT mastery_before, mastery_after, is_correct, "
                        "(response_data->>'predicted_correct')::float8 FROM learning_events "
                        "WHERE event_type = 'question_answered' ORDER BY event_id").fetchall()
    assert [(e[0], e[1], e[2]) for e in events] == [
        (r["mastery_before"], r["mastery"], c)
        for r, c in ((r1, True), (r2, False), (r3, True), (r4, True))]
    assert events[0][3] == pytest.approx(0.27, abs=1e-15)


def test_bkt_functions_are_inlined_in_both_paths(db):
    # record_answer compiles its expressions per transaction and record_answers runs them
    # per answer: a bkt.sql function that stopped being inlined (a nested call whose
    # argument the planner finds too costly to repeat) would become a SQL function call
    # per answer, same values, several times the cost. With function tracking on, an
    # inlined function is never counted as called.
    user, concept = add_user(db), add_concept(db, "inline-check")
    item, other = add_item(db, concept), add_item(db, concept)
    batch = json.dumps([{"user_id": user, "content_id": other, "is_correct": k % 2 == 0,
                         "response_time_ms": 2000,
                         "answered_at": (T0 + timedelta(days=3, hours=k)).isoformat()}
                        for k in range(4)])
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'all'")
        for k, correct in enumerate((True, False, True)):  # first interaction, then decayed
            answer(db, user, item, correct, p_answered_at=T0 + timedelta(days=k))
        db.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (batch,))
        calls = dict(db.execute(
            "SELECT p.proname, pg_stat_get_xact_function_calls(p.oid) FROM pg_proc p "
            "WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'bkt\\_%%'"
        ).fetchall())
        answered = db.execute(
            "SELECT pg_stat_get_xact_function_calls('record_answer'::regproc), "
            "pg_stat_get_xact_function_calls('record_answers'::regproc)").fetchone()
    assert answered == (3, 1)  # tracking was on
    assert {"bkt_decay_exponent", "bkt_complement_from_log", "bkt_learn_step"} <= set(calls)
    assert {name: n for name, n in calls.items() if n} == {}


def test_new_knowledge_state_has_the_column_defaults(db):
    # record_answer writes a new (user, concept) row once, already updated, with the
    # parameters copied from knowledge_states' column defaults: they must still agree.
    user, concept = add_user(db), add_concept(db, "defaults")
    other = add_concept(db, "defaults-other")
    item = add_item(db, concept)
    answer(db, user, item, True, p_answered_at=T0)
    params = ("initial_knowledge, learning_rate, guess_parameter, slip_parameter, temporal_decay, "
              "personal_learning_velocity")
    created = db.execute(f"SELECT {params} FROM knowledge_states WHERE user_id = %s "
                         "AND concept_id = %s", (user, concept)).fetchone()
    defaults = db.execute(f"INSERT INTO knowledge_states (user_id, concept_id) VALUES (%s, %s) "
                          f"RETURNING {params}", (user, other)).fetchone()
    assert created == defaults


def test_sm2_sequence_through_failure_and_recovery(db):
    user, concept = add_user(db), add_concept(db, "rules")
    item = add_item(db, concept)
    # (quality, expected EF, interval, repetitions) from DESIGN.md, EF before the review
    # used for the interval:
    steps = [
        (5, "2.6", 1, 1),    # reps 0 → 1 day; EF 2.5 + 0.1 − 0 = 2.6
        (5, "2.7", 6, 2),    # reps 1 → 6 days
        (5, "2.8", 17, 3),   # ceil(6 × 2.7) = ceil(16.2) = 17
        (2, "2.48", 1, 0),   # failure: reps 0, 1 day; EF 2.8 + 0.1 − 3(0.08 + 0.06) = 2.48
        (4, "2.48", 1, 1),   # recovery from reps 0: 1 day; EF 2.48 + 0.1 − 1(0.08 + 0.02)
        (5, "2.58", 6, 2),   # 6 days
        (3, "2.44", 16, 3),  # ceil(6 × 2.58) = ceil(15.48) = 16; EF 2.58 + 0.1 − 2(0.08 + 0.04)
        (0, "1.64", 1, 0),   # EF 2.44 + 0.1 − 5(0.08 + 0.10) = 1.64
        (0, "1.3", 1, 0),    # 1.64 − 0.8 = 0.84 → floor 1.3
    ]
    at = T0
    for q, ef, interval, reps in steps:
        r = answer(db, user, item, q >= 3, p_quality=q, p_answered_at=at)
        row = db.execute("SELECT easiness, interval_days, repetitions, next_review_at, last_quality "
                         "FROM review_schedule WHERE user_id = %s AND content_id = %s",
                         (user, item)).fetchone()
        assert row[0] == Decimal(ef), q  # exact
        assert row[1:3] == (interval, reps), q
        assert row[3] == r["next_review_at"] == at + timedelta(days=interval)
        assert row[4] == r["quality"] == q
        at = row[3]


def test_quality_derived_from_the_answer(db):
    user, concept = add_user(db), add_concept(db, "q")
    timed = add_item(db, concept, avg_rt=4000.0)
    untimed = add_item(db, concept)
    assert answer(db, user, timed, True, rt=3999)["quality"] == 5   # within the average
    assert answer(db, user, timed, True, rt=4001)["quality"] == 4   # slower
    assert answer(db, user, timed, True, rt=100, p_hints_used=2)["quality"] == 3
    assert answer(db, user, timed, False, rt=100)["quality"] == 1
    assert answer(db, user, untimed, True, rt=99999)["quality"] == 5  # no average yet


def test_mastery_event_written_exactly_once(db):
    user, concept = add_user(db), add_concept(db, "m")
    item = add_item(db, concept)
    learner = ref.Learner()
    seq = [True, True, True, True, False, False, True, True, True, True]
    crossed = []
    for k, c in enumerate(seq):
        at = T0 + timedelta(minutes=k)
        r = answer(db, user, item, c, p_answered_at=at)
        want = learner.answer(concept, item, c, 3000, at)
        assert close(r["mastery"], want.mastery, Decimal("1e-12"))
        assert r["newly_mastered"] == want.newly_mastered
        if r["newly_mastered"]:
            crossed.append(at)
    # 13/30 → 0.8969 (with Δ = 1 min) … crosses 0.95 on the 4th answer, drops below after two
    # wrong answers and crosses again later: still one event, mastered_at unchanged.
    assert len(crossed) == 1
    rows = db.execute("SELECT occurred_at, concept_id, content_id, mastery_after FROM learning_events "
                      "WHERE event_type = 'concept_mastered'").fetchall()
    assert len(rows) == 1 and rows[0][0] == crossed[0] and rows[0][1:3] == (concept, item)
    assert rows[0][3] >= 0.95
    assert db.execute("SELECT mastered_at FROM knowledge_states WHERE user_id = %s",
                      (user,)).fetchone()[0] == crossed[0]


def test_gamification_xp_and_streaks(db):
    user, concept = add_user(db), add_concept(db, "g")
    item = add_item(db, concept)
    plan = [  # (answered_at, correct, expected current_streak)
        (T0, True, 1),
        (T0 + timedelta(hours=5), False, 1),           # same day: unchanged
        (T0 + timedelta(days=1), True, 2),             # next day: +1
        (T0 + timedelta(days=2, hours=1), True, 3),
        (T0 - timedelta(days=5), True, 3),             # older than last_active_date: unchanged
        (T0 + timedelta(days=5), True, 1),             # gap: reset to 1
        (T0 + timedelta(days=6), False, 2),
    ]
    xp = 0
    for at, correct, streak in plan:
        xp += 10 if correct else 2
        r = answer(db, user, item, correct, p_answered_at=at)
        assert (r["xp"], r["current_streak"]) == (xp, streak), at
    row = db.execute("SELECT xp, current_streak, longest_streak, last_active_date FROM users "
                     "WHERE user_id = %s", (user,)).fetchone()
    assert row == (xp, 2, 3, (T0 + timedelta(days=6)).date())


# -- bad input -------------------------------------------------------------------------------


BAD = [  # label, override, error, record_answer's message, record_answers' message (3rd element)
    ("unknown user", {"u": 10**9}, psycopg.errors.NoDataFound, "unknown user_id 1000000000",
     r"answers\[2\]\.user_id: unknown user_id 1000000000"),
    ("unknown item", {"i": 10**9}, psycopg.errors.NoDataFound, "unknown content_id 1000000000",
     r"answers\[2\]\.content_id: unknown content_id 1000000000"),
    ("quality 6", {"q": 6}, psycopg.errors.InvalidParameterValue, "quality 6 is outside 0..5",
     r"answers\[2\]\.quality: 6 is outside 0\.\.5"),
    ("quality -1", {"q": -1}, psycopg.errors.InvalidParameterValue, "quality -1",
     r"answers\[2\]\.quality: -1 is outside"),
    ("negative time", {"rt": -5}, psycopg.errors.InvalidParameterValue,
     "response_time_ms -5 is negative", r"answers\[2\]\.response_time_ms: -5 is negative"),
    ("negative hints", {"h": -1}, psycopg.errors.InvalidParameterValue, "hints_used -1",
     r"answers\[2\]\.hints_used: -1 is negative"),
    ("null correct", {"c": None}, psycopg.errors.NullValueNotAllowed, "is_correct",
     r"answers\[2\]\.is_correct: must not be null"),
    ("context array", {"ctx": "[]"}, psycopg.errors.InvalidParameterValue, "JSON object",
     r"answers\[2\]\.context: must be a JSON object, got array"),
    ("unknown session", {"s": 10**9}, psycopg.errors.NoDataFound,
     "session_id 1000000000 is not a session of user_id",
     r"answers\[2\]\.session_id: session_id 1000000000 is not a session of user_id"),
    # Bounds (issue 29): 2^31-1 ms and a 10 MB context were accepted.
    ("time over a day", {"rt": 86_400_001}, psycopg.errors.InvalidParameterValue,
     "response_time_ms 86400001 is over 86400000",
     r"answers\[2\]\.response_time_ms: 86400001 is over 86400000"),
    ("int max time", {"rt": 2**31 - 1}, psycopg.errors.InvalidParameterValue,
     "response_time_ms 2147483647 is over", r"answers\[2\]\.response_time_ms: 2147483647"),
    ("too many hints", {"h": 1001}, psycopg.errors.InvalidParameterValue,
     "hints_used 1001 is over 1000", r"answers\[2\]\.hints_used: 1001 is over 1000"),
    ("huge context", {"ctx": json.dumps({"blob": "x" * 20_000})},
     psycopg.errors.InvalidParameterValue, r"context is \d+ bytes, over the 16384",
     r"answers\[2\]\.context: \d+ bytes, over the 16384"),
]


@pytest.mark.parametrize("label,override,error,message,batch_message", BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_refused_and_nothing_written(db, label, override, error, message, batch_message):
    user, concept = add_user(db), add_concept(db, "b")
    item = add_item(db, concept)
    answer(db, user, item, True, p_answered_at=T0)
    before = counts(db)
    args = {"u": user, "i": item, "c": True, "rt": 3000, "h": 0, "q": None, "s": None, "ctx": "{}"}
    args.update(override)
    with pytest.raises(error, match=message):
        db.execute("SELECT record_answer(%(u)s, %(i)s, %(c)s, %(rt)s, %(h)s, %(q)s, now(), "
                   "%(s)s, %(ctx)s::jsonb)", args)
    assert counts(db) == before

    # The batch form refuses the same element (3rd of 3) and writes nothing either.
    good = {"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 10}
    bad = {"user_id": args["u"], "content_id": args["i"], "is_correct": args["c"],
           "response_time_ms": args["rt"], "hints_used": args["h"], "quality": args["q"],
           "session_id": args["s"], "context": json.loads(args["ctx"])}
    with pytest.raises(error, match=batch_message):
        db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps([good, good, bad]),))
    assert counts(db) == before


def test_session_of_another_user_refused(db):
    """A session is looked up by (user_id, session_id), its key (0016): another learner's
    session is not one of this learner's, as an unknown one is not (issue 31)."""
    u1, u2, concept = add_user(db), add_user(db), add_concept(db, "s")
    item = add_item(db, concept)
    session = db.execute("INSERT INTO learning_sessions (user_id, started_at) VALUES (%s, now()) "
                         "RETURNING session_id", (u2,)).fetchone()[0]
    with pytest.raises(psycopg.errors.NoDataFound,
                       match=f"session_id {session} is not a session of user_id {u1}"):
        answer(db, u1, item, True, p_session_id=session)
    batch = [{"user_id": u1, "content_id": item, "is_correct": True, "response_time_ms": 10,
              "session_id": session}]
    with pytest.raises(psycopg.errors.NoDataFound,
                       match=rf"answers\[0\]\.session_id: session_id {session} is not a "
                             f"session of user_id {u1}"):
        db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps(batch),))
    r = answer(db, u2, item, True, p_session_id=session, p_context=json.dumps({"device": "ios"}))
    assert db.execute("SELECT session_id, context_data FROM learning_events WHERE event_id = %s",
                      (r["event_id"],)).fetchone() == (session, {"device": "ios"})


def test_batch_refuses_non_array(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="JSON array"):
        db.execute("SELECT * FROM record_answers('{}'::jsonb)")
    assert db.execute("SELECT count(*) FROM record_answers('[]'::jsonb)").fetchone()[0] == 0


# -- answer time bounds ------------------------------------------------------------------------


def _clock(conn) -> datetime:
    return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def test_answer_times_out_of_bounds_are_refused_and_nothing_written(db):
    user, concept = add_user(db), add_concept(db, "t")
    item = add_item(db, concept)
    answer(db, user, item, True, p_answered_at=T0)
    before = counts(db)
    now = _clock(db)
    bad = [(now + timedelta(minutes=10), "ahead of the server clock"),
           (datetime(2100, 1, 1, tzinfo=timezone.utc), "ahead of the server clock"),
           ("infinity", "not a finite time"), ("-infinity", "not a finite time"),
           (datetime(1999, 12, 31, 23, 59, tzinfo=timezone.utc), "before the earliest accepted time")]
    for at, why in bad:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="answered_at .*" + why):
            db.execute("SELECT record_answer(%s, %s, true, 100, p_answered_at => %s::timestamptz)",
                       (user, item, at))
        text = at.isoformat() if isinstance(at, datetime) else at
        batch = [{"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5},
                 {"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5,
                  "answered_at": text}]
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match=r"answers\[1\]\.answered_at: .*" + why):
            db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps(batch),))
        assert counts(db) == before
    # Within the skew (default 5 minutes) and at the floor: accepted.
    answer(db, user, item, True, p_answered_at=_clock(db) + timedelta(minutes=4))
    answer(db, user, item, True, p_answered_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    # The bounds are settings of the deployment.
    db.execute("UPDATE algorithm_settings SET answer_max_future_skew = '1 day', "
               "answer_earliest_at = '1990-01-01Z'")
    answer(db, user, item, True, p_answered_at=_clock(db) + timedelta(hours=20))
    db.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(
        [{"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5,
          "answered_at": "1995-06-01T00:00:00Z"}]),))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE algorithm_settings SET answer_earliest_at = 'infinity'")


def test_far_future_answer_cannot_corrupt_a_learner(db):
    # The case: an answer dated 2100 used to leave last_active_date in 2100 (the
    # streak stuck at 1 and forgetting off for good) and an event in the DEFAULT partition.
    user, concept = add_user(db), add_concept(db, "f")
    item = add_item(db, concept)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        answer(db, user, item, True, p_answered_at=datetime(2100, 1, 1, tzinfo=timezone.utc))
    now = _clock(db)
    answer(db, user, item, True, p_answered_at=now - timedelta(days=1))
    r = answer(db, user, item, True, p_answered_at=now)
    assert r["current_streak"] == 2
    assert db.execute("SELECT last_active_date, max(occurred_at) <= %s FROM users "
                      "JOIN learning_events USING (user_id) WHERE user_id = %s "
                      "GROUP BY last_active_date", (now, user)).fetchone() == \
        ((now.astimezone(timezone.utc)).date(), True)


# -- record_answers names the element and the field ----------------------------------------


BATCH_BAD = [  # field, value, error, message after "answers[17].<field>: "
    ("quality", 100000, psycopg.errors.InvalidParameterValue, "100000 is outside 0..5"),
    ("quality", "abc", psycopg.errors.InvalidParameterValue, '"abc" is not a whole number'),
    ("quality", 3.5, psycopg.errors.InvalidParameterValue, "3.5 is not a whole number"),
    ("response_time_ms", 10**12, psycopg.errors.InvalidParameterValue, "1000000000000 is not"),
    ("response_time_ms", None, psycopg.errors.NullValueNotAllowed, "must not be null"),
    ("hints_used", -2, psycopg.errors.InvalidParameterValue, "-2 is negative"),
    ("user_id", "x1", psycopg.errors.InvalidParameterValue, '"x1" is not an id'),
    ("user_id", None, psycopg.errors.NullValueNotAllowed, "must not be null"),
    ("content_id", 10**9, psycopg.errors.NoDataFound, "unknown content_id 1000000000"),
    ("is_correct", "maybe", psycopg.errors.InvalidParameterValue, '"maybe" is not a boolean'),
    ("answered_at", "yesterday-ish", psycopg.errors.InvalidParameterValue, "is not a timestamp"),
    ("answered_at", "2100-01-01T00:00:00Z", psycopg.errors.InvalidParameterValue,
     "ahead of the server clock"),
    ("answered_at", "infinity", psycopg.errors.InvalidParameterValue, "not a finite time"),
    ("session_id", 1.5, psycopg.errors.InvalidParameterValue, "1.5 is not an id"),
    ("context", [1], psycopg.errors.InvalidParameterValue, "must be a JSON object, got array"),
]


@pytest.mark.parametrize("field,value,error,message", BATCH_BAD,
                         ids=[f"{b[0]}={b[1]!r}" for b in BATCH_BAD])
def test_batch_error_names_element_and_field(db, field, value, error, message):
    user, concept = add_user(db), add_concept(db, "n")
    item = add_item(db, concept)
    before = counts(db)
    batch = [{"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5}
             for _ in range(20)]
    batch[17] = dict(batch[17], **{field: value})
    with pytest.raises(error) as info:
        db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps(batch),))
    assert info.value.diag.message_primary.startswith(f"record_answers: answers[17].{field}: ")
    assert message in info.value.diag.message_primary
    assert counts(db) == before


def test_batch_error_names_an_element_that_is_not_an_object(db):
    user, concept = add_user(db), add_concept(db, "o")
    item = add_item(db, concept)
    batch = [{"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5}, [1]]
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match=r"answers\[1\]: must be a JSON object, got array"):
        db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps(batch),))


# -- fitted BKT parameters per concept (bkt_concept_parameters) -----------------------------


def test_new_knowledge_state_takes_fitted_concept_parameters(db):
    user, user2 = add_user(db), add_user(db)
    fitted_concept, plain_concept = add_concept(db, "fitted"), add_concept(db, "plain")
    fitted_item, plain_item = add_item(db, fitted_concept), add_item(db, plain_concept)
    # An existing row of the fitted concept, created before the fit: it keeps its parameters.
    answer(db, user2, fitted_item, True, p_answered_at=T0)
    old = db.execute("SELECT * FROM knowledge_states WHERE user_id = %s", (user2,)).fetchone()
    params = {"initial_knowledge": 0.3, "learning_rate": 0.25, "guess": 0.15, "slip": 0.05,
              "decay": 0.95}
    db.execute("INSERT INTO bkt_concept_parameters (concept_id, initial_knowledge, learning_rate, "
               "guess_parameter, slip_parameter, temporal_decay, answers_used) "
               "VALUES (%s, 0.3, 0.25, 0.15, 0.05, 0.95, 1234)", (fitted_concept,))
    learner = ref.Learner(concept_parameters={fitted_concept: params})
    for k, (item, concept, correct) in enumerate([(fitted_item, fitted_concept, True),
                                                  (fitted_item, fitted_concept, False),
                                                  (plain_item, plain_concept, True)]):
        at = T0 + timedelta(days=k)
        r = answer(db, user, item, correct, p_answered_at=at)
        want = learner.answer(concept, item, correct, 3000, at)
        assert close(r["mastery_before"], want.mastery_before)
        assert close(r["mastery"], want.mastery)
    cols = "initial_knowledge, learning_rate, guess_parameter, slip_parameter, temporal_decay"
    assert db.execute(f"SELECT {cols} FROM knowledge_states WHERE user_id = %s AND concept_id = %s",
                      (user, fitted_concept)).fetchone() == (0.3, 0.25, 0.15, 0.05, 0.95)
    assert db.execute(f"SELECT {cols} FROM knowledge_states WHERE user_id = %s AND concept_id = %s",
                      (user, plain_concept)).fetchone() == (0.1, 0.15, 0.2, 0.1, 0.98)
    assert db.execute("SELECT * FROM knowledge_states WHERE user_id = %s", (user2,)).fetchone() == old
    # The batch path creates new rows from the same table; mastery starts at the fitted
    # initial_knowledge (0.3: the mastery_before of the first answer).
    user3 = add_user(db)
    rows = db.execute("SELECT mastery_before FROM record_answers(%s::jsonb)", (json.dumps(
        [{"user_id": user3, "content_id": fitted_item, "is_correct": True, "response_time_ms": 5,
          "answered_at": T0.isoformat()}]),)).fetchall()
    assert rows == [(0.3,)]
    assert db.execute(f"SELECT {cols} FROM knowledge_states WHERE user_id = %s",
                      (user3,)).fetchone() == (0.3, 0.25, 0.15, 0.05, 0.95)
    # The table's guards.
    for bad in ("guess_parameter = 0.6", "slip_parameter = -0.1", "temporal_decay = 0.5",
                "initial_knowledge = 1.5", "learning_rate = 2"):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(f"UPDATE bkt_concept_parameters SET {bad}")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE bkt_concept_parameters SET guess_parameter = 0.5, slip_parameter = 0.5")


# -- SM-2 exact through record_answer and record_answers -------------------------------------


def test_sm2_is_exact_in_record_answer_and_record_answers(db):
    # The examples: from a new card, 0,0,5,5,3 and 1,2,3,4,3 end at 9 days (the
    # double precision EF 1.5000000000000002 gave 10); and 300 generated sequences.
    user, concept = add_user(db), add_concept(db, "x")
    rnd = random.Random(5)
    sequences = [[0, 0, 5, 5, 3], [1, 2, 3, 4, 3]] + [
        [rnd.choice([0, 1, 2, 3, 4, 5, 5]) for _ in range(rnd.randint(1, 25))] for _ in range(300)]
    items = [add_item(db, concept) for _ in sequences]
    for seq, item in zip(sequences[:2], items[:2]):
        for k, q in enumerate(seq):
            r = answer(db, user, item, q >= 3, p_quality=q, p_answered_at=T0 + timedelta(days=k))
        assert r["next_review_at"] == T0 + timedelta(days=len(seq) - 1 + 9)
    batch_user = add_user(db)
    payload = [{"user_id": batch_user, "content_id": item, "is_correct": q >= 3,
                "response_time_ms": 5, "quality": q, "answered_at": (T0 + timedelta(days=k)).isoformat()}
               for seq, item in zip(sequences, items) for k, q in enumerate(seq)]
    got = db.execute("SELECT next_review_at FROM record_answers(%s::jsonb) ORDER BY ordinal",
                     (json.dumps(payload),)).fetchall()
    pos = 0
    for seq, item in zip(sequences, items):
        state = (ref.SM2_START, 0, 0)
        for k, q in enumerate(seq):
            state = ref.sm2_step(*state, q)
            assert got[pos][0] == T0 + timedelta(days=k + state[1]), (seq, k)
            pos += 1
        row = db.execute("SELECT easiness, interval_days, repetitions FROM review_schedule "
                         "WHERE user_id = %s AND content_id = %s", (batch_user, item)).fetchone()
        assert (ref.frac(row[0]), row[1], row[2]) == state, seq


# -- batch = the same answers one by one = the Python replay ---------------------------------


def _catalogue(conn):
    users = [add_user(conn, f"u{k}") for k in range(3)]
    concepts = [add_concept(conn, f"c{k}") for k in range(2)]
    items = [(add_item(conn, concepts[k % 2], avg_rt=3000.0 if k == 0 else None), concepts[k % 2])
             for k in range(4)]
    return users, items


def _answers(seed, users, items, n=150):
    rnd = random.Random(seed)
    out = []
    at = T0
    for _ in range(n):
        at += timedelta(hours=rnd.choice([0, 0.5, 3, 20, 30, 70]))
        item, concept = rnd.choice(items)
        when = at - timedelta(days=2) if rnd.random() < 0.1 else at  # some out of order
        out.append({"user_id": rnd.choice(users), "content_id": item, "concept": concept,
                    "is_correct": rnd.random() < 0.7, "response_time_ms": rnd.randint(0, 6000),
                    "hints_used": rnd.choice([0, 0, 0, 1]),
                    "quality": rnd.choice([None, None, None, 0, 2, 3, 5]),
                    "answered_at": when})
    return out


def _state(conn):
    return {
        "ks": conn.execute("SELECT user_id, concept_id, mastery_probability, attempts, "
                           "correct_attempts, last_interaction, mastered_at FROM knowledge_states "
                           "ORDER BY 1, 2").fetchall(),
        "rs": conn.execute("SELECT user_id, content_id, easiness, interval_days, repetitions, "
                           "next_review_at, last_quality, last_reviewed_at, sm2_due, fsrs_state, "
                           "fsrs_step, fsrs_stability, fsrs_difficulty, fsrs_due FROM review_schedule "
                           "ORDER BY 1, 2").fetchall(),
        "users": conn.execute("SELECT user_id, xp, current_streak, longest_streak, "
                              "last_active_date FROM users ORDER BY 1").fetchall(),
        "events": sorted(conn.execute(
            "SELECT user_id, occurred_at, event_type, concept_id, content_id, is_correct, "
            "response_time_ms, hints_used, quality, mastery_before, mastery_after, response_data "
            "FROM learning_events").fetchall(), key=repr),
    }


@pytest.mark.parametrize("seed,scheduler", [(1, "sm2"), (2, "sm2"), (3, "fsrs"), (4, "fsrs")])
def test_batch_equals_single_answers_and_reference(make_database, seed, scheduler):
    from fsrs import Scheduler

    urls = [make_database(), make_database()]
    conns = [psycopg.connect(u, autocommit=True) for u in urls]
    fsrs_scheduler = Scheduler(enable_fuzzing=False)
    try:
        for c in conns:
            c.execute("SELECT set_scheduler(%s)", (scheduler,))
        users, items = _catalogue(conns[0])
        assert _catalogue(conns[1]) == (users, items)
        answers = _answers(seed, users, items)
        singles = [answer(conns[0], a["user_id"], a["content_id"], a["is_correct"],
                          a["response_time_ms"], p_hints_used=a["hints_used"],
                          p_quality=a["quality"], p_answered_at=a["answered_at"])
                   for a in answers]
        payload = [{k: (v.isoformat() if isinstance(v, datetime) else v)
                    for k, v in a.items() if k != "concept"} for a in answers]
        batch = conns[1].execute(
            "SELECT ordinal, mastery, mastery_before, predicted_correct, quality, next_review_at, "
            "newly_mastered, concept_id FROM record_answers(%s::jsonb)",
            (json.dumps(payload),)).fetchall()
        assert [b[0] for b in batch] == list(range(1, len(answers) + 1))
        learners: dict[int, ref.Learner] = {}
        avg = {items[0][0]: 3000.0}
        for a, s, b in zip(answers, singles, batch):
            want = learners.setdefault(a["user_id"], ref.Learner(
                scheduler=scheduler, fsrs_scheduler=fsrs_scheduler)).answer(
                a["concept"], a["content_id"], a["is_correct"], a["response_time_ms"],
                a["answered_at"], a["hints_used"], a["quality"], avg.get(a["content_id"]))
            got_single = (s["mastery"], s["mastery_before"], s["predicted_correct"], s["quality"],
                          s["next_review_at"], s["newly_mastered"], s["concept_id"])
            assert got_single == tuple(b[1:])  # the batch is bit-for-bit the single path
            assert close(s["mastery"], want.mastery)
            assert close(s["mastery_before"], want.mastery_before)
            assert close(s["predicted_correct"], want.predicted_correct)
            assert (s["quality"], s["next_review_at"], s["newly_mastered"]) == \
                (want.quality, want.next_review_at, want.newly_mastered)
        assert _state(conns[0]) == _state(conns[1])
        for uid, learner in learners.items():
            row = conns[0].execute("SELECT xp, current_streak, longest_streak, last_active_date "
                                   "FROM users WHERE user_id = %s", (uid,)).fetchone()
            assert row == (learner.user.xp, learner.user.current_streak,
                           learner.user.longest_streak, learner.user.last_active_date)
            for item, want in learner.reviews.items():
                row = conns[0].execute(
                    "SELECT easiness, interval_days, repetitions, sm2_due, next_review_at, "
                    "fsrs_state, fsrs_step, fsrs_stability, fsrs_difficulty, fsrs_due "
                    "FROM review_schedule WHERE user_id = %s AND content_id = %s",
                    (uid, item)).fetchone()
                card = want.fsrs_card
                assert row[:6] == (Decimal(want.easiness.numerator) / want.easiness.denominator,
                                   want.interval_days, want.repetitions, want.sm2_due,
                                   want.next_review_at, card.state.value)
                assert (row[6], row[9]) == (card.step, card.due)
                assert row[7] == pytest.approx(card.stability, rel=1e-12)
                assert row[8] == pytest.approx(card.difficulty, rel=1e-12)
    finally:
        for c in conns:
            c.close()


# -- concurrency -----------------------------------------------------------------------------


def test_eight_connections_same_user_and_concept(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        user_a, user_b = add_user(conn, "a"), add_user(conn, "b")
        concept = add_concept(conn, "conc")
        items = [add_item(conn, concept) for _ in range(3)]
    per_thread = 25
    errors: list[BaseException] = []
    expected = {"a": [0, 0], "b": [0, 0]}  # [answers, correct]
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(k):
        rnd = random.Random(k)
        try:
            with psycopg.connect(schema_url, autocommit=True) as c:
                barrier.wait()
                for _ in range(per_thread):
                    ok = rnd.random() < 0.6
                    if k % 2 == 0:  # single answers for user a
                        c.execute("SELECT record_answer(%s, %s, %s, 1000)",
                                  (user_a, rnd.choice(items), ok))
                        with lock:
                            expected["a"][0] += 1
                            expected["a"][1] += ok
                    else:  # batches touching both users, in opposite orders
                        order = [user_a, user_b, user_a] if k % 4 == 1 else [user_b, user_a, user_b]
                        batch = [{"user_id": u, "content_id": rnd.choice(items),
                                  "is_correct": ok, "response_time_ms": 1000} for u in order]
                        c.execute("SELECT count(*) FROM record_answers(%s::jsonb)",
                                  (json.dumps(batch),))
                        with lock:
                            for u in order:
                                key = "a" if u == user_a else "b"
                                expected[key][0] += 1
                                expected[key][1] += ok
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlocked or stuck"
    assert not errors, errors

    with psycopg.connect(schema_url, autocommit=True) as conn:
        for key, uid in (("a", user_a), ("b", user_b)):
            attempts, correct, mastery = conn.execute(
                "SELECT attempts, correct_attempts, mastery_probability FROM knowledge_states "
                "WHERE user_id = %s AND concept_id = %s", (uid, concept)).fetchone()
            assert (attempts, correct) == tuple(expected[key])
            # Events of one user get their ids while the user's row lock is held, so
            # event_id order is that user's commit order: replay serially in it.
            events = conn.execute(
                "SELECT occurred_at, content_id, is_correct, mastery_before, mastery_after "
                "FROM learning_events WHERE user_id = %s AND event_type = 'question_answered' "
                "ORDER BY event_id", (uid,)).fetchall()
            assert len(events) == attempts
            # Each step is replayed from the previous step's stored mastery_after (near
            # mastery 1 a wrong answer amplifies rounding ~8x, so an independent chain of
            # 100 steps would drift apart by more than the tolerance without any bug).
            learner = ref.Learner()
            previous_after = None
            for at, item, ok, before, after in events:
                if concept in learner.knowledge:
                    learner.knowledge[concept].mastery = previous_after
                want = learner.answer(concept, item, ok, 1000, at)
                assert close(before, want.mastery_before)
                assert close(after, want.mastery)
                previous_after = after
            assert mastery == previous_after
            assert learner.knowledge[concept].attempts == attempts
            xp = conn.execute("SELECT xp FROM users WHERE user_id = %s", (uid,)).fetchone()[0]
            assert xp == learner.user.xp == 10 * expected[key][1] + 2 * (
                expected[key][0] - expected[key][1])
            for item in items:
                reps = conn.execute("SELECT repetitions, interval_days FROM review_schedule "
                                    "WHERE user_id = %s AND content_id = %s",
                                    (uid, item)).fetchone()
                if item in learner.reviews:
                    want = learner.reviews[item]
                    assert reps == (want.repetitions, want.interval_days)


# -- rollup ----------------------------------------------------------------------------------


def _expected_rollup(conn):
    return conn.execute(
        """SELECT content_id, count(*), count(*) FILTER (WHERE is_correct), avg(response_time_ms),
                  sum(mastery_after - mastery_before)
             FROM learning_events WHERE event_type = 'question_answered'
            GROUP BY content_id ORDER BY content_id""").fetchall()


def _rolled_up(conn):
    return conn.execute(
        """SELECT c.content_id, c.total_attempts, c.correct_attempts, c.average_response_time_ms,
                  b.pulls, b.reward_sum
             FROM content c LEFT JOIN bandit_arms b USING (content_id)
            WHERE c.total_attempts > 0 ORDER BY 1""").fetchall()


def _check_rollup(conn):
    want = _expected_rollup(conn)
    got = _rolled_up(conn)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert g[3] == pytest.approx(float(w[3]), rel=1e-9)
        assert g[4] == g[1]
        assert g[5] == pytest.approx(w[4], abs=1e-9)


def test_rollup_is_incremental_and_idempotent(db):
    users = [add_user(db) for _ in range(3)]
    concept = add_concept(db, "r")
    items = [add_item(db, concept) for _ in range(4)]
    rnd = random.Random(7)
    for _ in range(40):
        answer(db, rnd.choice(users), rnd.choice(items), rnd.random() < 0.5, rt=rnd.randint(0, 9000))
    first = db.execute("SELECT * FROM rollup_learning_events()").fetchone()
    assert first[:3] == (0, db.execute("SELECT max(event_id) FROM learning_events").fetchone()[0], 40)
    _check_rollup(db)
    snapshot = _rolled_up(db)
    again = db.execute("SELECT * FROM rollup_learning_events()").fetchone()
    assert again[1] == first[1] and again[2:4] == (0, 0)
    assert _rolled_up(db) == snapshot  # twice adds nothing
    batch = [{"user_id": rnd.choice(users), "content_id": rnd.choice(items),
              "is_correct": rnd.random() < 0.5, "response_time_ms": rnd.randint(0, 9000)}
             for _ in range(30)]
    db.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
    third = db.execute("SELECT * FROM rollup_learning_events()").fetchone()
    assert third[0] == first[1] and third[2] == 30
    _check_rollup(db)
    assert db.execute("SELECT last_event_id, events_processed FROM rollup_watermarks "
                      "WHERE name = 'content_stats'").fetchone() == (third[1], 70)


def test_rollup_never_skips_an_event_committed_late(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as db:
        user1, user2 = add_user(db), add_user(db)
        concept = add_concept(db, "late")
        item = add_item(db, concept)
        slow = psycopg.connect(schema_url)  # a transaction that draws its event id first...
        slow.execute("SELECT record_answer(%s, %s, true, 100)", (user1, item))
        answer(db, user2, item, True)  # ...and a later id that commits first
        # The rollup sees an open writer of learning_events: it waits, and times out
        # rather than moving the watermark past the uncommitted id.
        with pytest.raises(psycopg.errors.LockNotAvailable, match="still open"):
            db.execute("SELECT * FROM rollup_learning_events('0.2 seconds')")
        assert db.execute("SELECT last_event_id FROM rollup_watermarks").fetchone()[0] == 0
        # With the writer committing while the rollup waits, both events are counted.
        timer = threading.Timer(0.3, slow.commit)
        timer.start()
        row = db.execute("SELECT * FROM rollup_learning_events('20 seconds')").fetchone()
        timer.join()
        slow.close()
        assert row[2] == 2 and row[4] >= 100
        assert db.execute("SELECT total_attempts FROM content WHERE content_id = %s",
                          (item,)).fetchone()[0] == 2
        assert db.execute("SELECT * FROM rollup_learning_events()").fetchone()[2] == 0


def test_rollup_needs_read_committed(db):
    with pytest.raises(psycopg.errors.InvalidTransactionState, match="READ COMMITTED"), \
            db.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        db.execute("SELECT * FROM rollup_learning_events()")


# -- next_questions --------------------------------------------------------------------------


def test_next_questions_ordering(db):
    now = T0 + timedelta(days=30)
    user = add_user(db)
    a = add_concept(db, "A")
    b = add_concept(db, "B", prerequisites=[a])
    add_concept(db, "C", prerequisites=[b])
    d = add_concept(db, "D")
    a1, a2, a3, a4, a5, a6, a7, a8 = [add_item(db, a) for _ in range(8)]
    db.execute("UPDATE content SET is_active = false WHERE content_id = %s", (a4,))
    b1 = add_item(db, b)
    d1 = add_item(db, d)
    arms = {a1: (10, 2.0), a2: (0, 0.0), a3: (5, 0.5), a6: (3, 0.9), a7: (3, 0.9), a8: (20, 10.0)}
    for item, (pulls, reward) in arms.items():
        db.execute("INSERT INTO bandit_arms (content_id, concept_id, pulls, reward_sum) "
                   "VALUES (%s, %s, %s, %s)", (item, a, pulls, reward))
    for concept, m in ((a, 0.5), (d, 0.9)):  # A not mastered, D mastered (>= 0.8)
        db.execute("INSERT INTO knowledge_states (user_id, concept_id, mastery_probability) "
                   "VALUES (%s, %s, %s)", (user, concept, m))
    for item, due in ((d1, now - timedelta(days=2)), (a3, now - timedelta(days=1)),
                      (a1, now + timedelta(days=3)), (a4, now - timedelta(days=9))):
        db.execute("INSERT INTO review_schedule (user_id, content_id, next_review_at) "
                   "VALUES (%s, %s, %s)", (user, item, due))

    def ask(n):
        return db.execute("SELECT rank, content_id, reason FROM next_questions(%s, %s, %s)",
                          (user, n, now)).fetchall()

    got = ask(20)
    # Reviews first, most overdue first (a4 is inactive). Then A's items (B, C locked behind
    # A; D mastered): never-pulled a2, a5 by id; then UCB1 with N = 10+5+3+3+20 = 41:
    # a6 = a7 = 0.3 + sqrt(2 ln 41 / 3) = 1.8783 (tie → id), a8 = 0.5 + sqrt(2 ln 41 / 20) =
    # 1.1094. a1 is scheduled for later and a3 is already listed as a review.
    n_a = 41
    practice = ref.ucb_order([(i, arms.get(i, (0, 0))[0], arms.get(i, (0, 0))[1], n_a)
                              for i in (a2, a5, a6, a7, a8)])
    assert practice == [a2, a5, a6, a7, a8]
    assert [(r[1], r[2]) for r in got] == [(d1, "review"), (a3, "review"), (a2, "explore"),
                                           (a5, "explore"), (a6, "ucb"), (a7, "ucb"), (a8, "ucb")]
    assert [r[0] for r in got] == list(range(1, 8))
    assert ask(20) == got  # deterministic
    assert ask(1) == [(1, d1, "review")]
    assert ask(3) == got[:3]
    assert ask(0) == []
    score = db.execute("SELECT ucb_score FROM next_questions(%s, 20, %s) WHERE content_id = %s",
                       (user, now, a8)).fetchone()[0]
    assert score == pytest.approx(0.5 + math.sqrt(2 * math.log(41) / 20), abs=1e-12)

    # Mastering A unlocks B (and drops A's items); C still waits for B.
    db.execute("UPDATE knowledge_states SET mastery_probability = 0.85 WHERE concept_id = %s", (a,))
    assert [(r[1], r[2]) for r in ask(20)] == [(d1, "review"), (a3, "review"), (b1, "explore")]


def test_next_questions_bad_input(db):
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown user_id"):
        db.execute("SELECT * FROM next_questions(123456, 5, now())")
    user = add_user(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="n -1"):
        db.execute("SELECT * FROM next_questions(%s, -1, now())", (user,))


def test_missing_settings_row_is_a_clear_error(db):
    user, concept = add_user(db), add_concept(db, "s0")
    item = add_item(db, concept)
    db.execute("DELETE FROM algorithm_settings")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="algorithm_settings"):
        answer(db, user, item, True)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="algorithm_settings"):
        db.execute("SELECT * FROM record_answers(%s::jsonb)", (json.dumps(
            [{"user_id": user, "content_id": item, "is_correct": True, "response_time_ms": 5}]),))
    db.execute("INSERT INTO algorithm_settings DEFAULT VALUES")
    assert answer(db, user, item, True)["quality"] == 5
