"""Independent conformance of the learning algorithms (issue 16 review).

The references here are written from DESIGN.md ("The algorithms") and issue 16 alone,
not from tests/reference_algorithms.py or the SQL: SM-2 in fractions.Fraction, BKT and IRT
in 60-digit decimal, FSRS-6 by py-fsrs 6.3.2 itself (fuzzing off). Every check batches many
generated cases into one SQL call, so the whole file stays fast.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, localcontext
from fractions import Fraction

import psycopg
import pytest
from fsrs import Card, Rating, Scheduler
from fsrs.scheduler import LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS

T0 = datetime(2003, 2, 5, 7, 30, tzinfo=timezone.utc)
CTX = Context(prec=60, Emax=10**18 - 1, Emin=-(10**18 - 1))
# DMDB_CONFORM_SCALE=20 runs twenty times as many generated cases (a deeper search).
SCALE = int(os.environ.get("DMDB_CONFORM_SCALE", "1"))
SM2_CAP = 36500  # the documented guard on SM-2 intervals (sm2.sql, docs/algorithms.md)


# -- the references, from the specification ------------------------------------------------


def sm2_ref(ef: Fraction, interval: int, reps: int, q: int) -> tuple[Fraction, int, int]:
    """One SM-2 review, exact; the interval with the documented 36,500-day cap."""
    if q < 3:
        new_interval, new_reps = 1, 0
    else:
        if reps == 0:
            new_interval = 1
        elif reps == 1:
            new_interval = 6
        else:
            new_interval = math.ceil(interval * ef)
        new_reps = reps + 1
    new_ef = max(Fraction(13, 10),
                 ef + Fraction(1, 10) - (5 - q) * (Fraction(8, 100) + (5 - q) * Fraction(2, 100)))
    return new_ef, min(new_interval, SM2_CAP), new_reps


def D(x) -> Decimal:
    return Decimal(x) if not isinstance(x, Fraction) else CTX.divide(Decimal(x.numerator),
                                                                      Decimal(x.denominator))


def bkt_ref(m, decay, delta, correct, guess, slip, rate, velocity):
    """(p0, predicted P(correct), new mastery) in 60 digits from the float inputs taken exactly.
    0/0 in the evidence step (the answer impossible under the model) keeps p0 (documented)."""
    with localcontext(CTX):
        m, decay, guess, slip = D(m), D(decay), D(guess), D(slip)
        delta = D(delta)
        if delta <= 0 or m == 0:
            p0, q0 = m, 1 - m
        elif decay == 0:
            p0, q0 = Decimal(0), Decimal(1)
        else:
            # 1 − p0 where p0 is within 1e−60 of 1 (a tiny gap): more digits, not 0
            x = delta * decay.ln()
            with localcontext(Context(prec=70 + max(0, -x.adjusted()), Emax=CTX.Emax, Emin=CTX.Emin)):
                p0, q0 = m * x.exp(), 1 - m * x.exp()
            p0, q0 = +p0, +q0
        pred = p0 * (1 - slip) + q0 * guess
        if correct:
            a, b = p0 * (1 - slip), q0 * guess
        else:
            a, b = p0 * slip, q0 * (1 - guess)
        p1 = p0 if a + b == 0 else a / (a + b)
        learn = min(Decimal(1), D(rate) * D(velocity))
        return p0, pred, p1 + (1 - p1) * learn


def irt_ref(theta, b, a, c):
    with localcontext(CTX):
        x = Decimal(-17) / 10 * D(a) * (D(theta) - D(b))
        return D(c) + (1 - D(c)) / (1 + x.exp())


def quality_ref(correct, hints, rt, avg):
    if not correct:
        return 1
    if hints:
        return 3
    if avg is None or rt <= avg:
        return 5
    return 4


def close(got, want, tol="1e-12") -> bool:
    return abs(Decimal(got) - want) <= Decimal(tol)


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def conn(make_database):
    with psycopg.connect(make_database(), autocommit=True) as c:
        yield c


@pytest.fixture
def db(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as c:
        yield c


def add_users(conn, n) -> list[int]:
    return [conn.execute("INSERT INTO users (email, display_name) VALUES (%s, 'x') RETURNING user_id",
                         (f"c{random.random()}@example.invalid",)).fetchone()[0] for _ in range(n)]


def add_concept(conn, code, params=None) -> int:
    cid = conn.execute("INSERT INTO concepts (code, name, category) VALUES (%s, %s, 'road_rules') "
                       "RETURNING concept_id", (code, code)).fetchone()[0]
    if params:
        conn.execute("INSERT INTO bkt_concept_parameters (concept_id, initial_knowledge, learning_rate, "
                     "guess_parameter, slip_parameter, temporal_decay, answers_used) "
                     "VALUES (%s, %s, %s, %s, %s, %s, 100)", (cid, *params))
    return cid


def add_item(conn, concept, avg_rt=None) -> int:
    return conn.execute(
        "INSERT INTO content (concept_id, category, question, average_response_time_ms) "
        "VALUES (%s, 'road_rules', 'q', %s) RETURNING content_id", (concept, avg_rt)).fetchone()[0]


def snapshot(conn) -> dict:
    """Every base table's row count and content digest: 'nothing written' means equal."""
    tables = conn.execute(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    out = {}
    for (t,) in tables:
        out[t] = conn.execute(
            psycopg.sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                            "FROM {} x").format(psycopg.sql.SQL(t))).fetchone()
    return out


def as_json(a: dict) -> dict:
    out = dict(a)
    out["answered_at"] = a["answered_at"].isoformat()
    return out


# -- SM-2 --------------------------------------------------------------------------------------


def _sm2_sequences(rnd, n):
    """Every step of n generated sequences: (state before, quality, state after)."""
    steps = []
    for _ in range(n):
        ef, interval, reps = Fraction(5, 2), 0, 0
        kind = rnd.random()
        for _ in range(rnd.randint(1, 40)):
            if kind < 0.3:
                q = rnd.randint(0, 5)
            elif kind < 0.6:  # mostly low: EF sits at the floor, then climbs
                q = rnd.choice([0, 1, 2, 3, 3, 3, 4, 5])
            else:  # mostly good: long runs, intervals reach the cap
                q = rnd.choice([3, 4, 5, 5, 5, 2])
            after = sm2_ref(ef, interval, reps, q)
            steps.append(((ef, interval, reps), q, after))
            ef, interval, reps = after
    return steps


def test_sm2_step_exact(conn):
    rnd = random.Random(1601)
    steps = _sm2_sequences(rnd, 3000 * SCALE)
    # the issue's two examples end at 9 days, not 10
    for qs in ([0, 0, 5, 5, 3], [1, 2, 3, 4, 3]):
        st = (Fraction(5, 2), 0, 0)
        for q in qs:
            st = sm2_ref(*st, q)
        assert st[1] == 9
    rows = conn.execute(
        "SELECT s.easiness, s.interval_days, s.repetitions FROM unnest(%s::numeric[], %s::int[], "
        "%s::int[], %s::int[]) WITH ORDINALITY AS u(e, i, r, q, n), "
        "LATERAL sm2_step(u.e, u.i, u.r, u.q) s ORDER BY u.n",
        ([str(D(b[0])) for b, _, _ in steps], [b[1] for b, _, _ in steps],
         [b[2] for b, _, _ in steps], [q for _, q, _ in steps])).fetchall()
    bad = [(b, q, a, got) for (b, q, a), got in zip(steps, rows)
           if (Fraction(got[0]), got[1], got[2]) != a]
    assert not bad, bad[:5]
    assert any(a[1] == SM2_CAP for _, _, a in steps) and any(a[0] == Fraction(13, 10) for _, _, a in steps)


def test_sm2_huge_intervals_bounded(conn):
    """EF has no upper bound; the interval stays an integer ≤ 36,500 days and the due time a
    valid timestamp, whatever the stored interval or EF."""
    rows = conn.execute(
        "SELECT (sm2_step(e, i, 5, 5)).interval_days FROM unnest(%s::numeric[], %s::int[]) u(e, i)",
        (["1.30", "2.50", "999.98", "2.50", "1.30"], [2147483647, 2147483647, 36500, 1, 28077])
    ).fetchall()
    assert [r[0] for r in rows] == [SM2_CAP, SM2_CAP, SM2_CAP, 3, SM2_CAP]
    doc = open("docs/algorithms.md", encoding="utf-8").read()
    assert "interval is capped at 36,500 days" in doc


def _learners(db, n_users, scheduler="sm2"):
    concepts = [add_concept(db, f"k{random.random()}"),
                add_concept(db, f"k{random.random()}", (0.3, 0.4, 0.05, 0.02, 0.95)),
                add_concept(db, f"k{random.random()}", (0.0, 0.0, 0.0, 0.5, 1.0))]
    items = [add_item(db, c, avg) for c in concepts for avg in (None, 4000)]
    db.execute("SELECT set_scheduler(%s)", (scheduler,))
    return add_users(db, n_users), items


def _answers(rnd, users, items, n, out_of_order=True, quality=True, long_gaps=True):
    t = {u: T0 + timedelta(seconds=rnd.randint(0, 86400 * 30)) for u in users}
    out = []
    for _ in range(n):
        u = rnd.choice(users)
        gap = rnd.choice([0, 30, 600, 3600 * 5, 86400, 86400 * 3, 86400 * 40])
        if long_gaps and rnd.random() < 0.02:
            gap = 86400 * 400
        at = t[u] + timedelta(seconds=gap + rnd.randint(0, 59))
        if out_of_order and rnd.random() < 0.1:
            at = t[u] - timedelta(seconds=rnd.randint(1, 86400 * 5))
        t[u] = max(t[u], at)
        out.append({"user_id": u, "content_id": rnd.choice(items), "is_correct": rnd.random() < 0.7,
                    "response_time_ms": rnd.choice([1000, 4000, 9000]),
                    "hints_used": rnd.choice([0, 0, 0, 1]),
                    "quality": rnd.randint(0, 5) if quality and rnd.random() < 0.6 else None,
                    "answered_at": at})
    return out


def test_sm2_bkt_quality_through_record_answers_exact(db):
    """Whole answer streams (several users, out-of-order times, fitted concept parameters)
    against the specification: SM-2 exact, BKT to 1e-9, quality, one concept_mastered per
    crossing of 0.95, next_review_at = answered_at + interval days."""
    rnd = random.Random(1602)
    users, items = _learners(db, 6)
    params = {c: p for c, *p in db.execute(
        "SELECT c.content_id, coalesce(bp.initial_knowledge, 0.1), coalesce(bp.temporal_decay, 0.98), "
        "coalesce(bp.guess_parameter, 0.2), coalesce(bp.slip_parameter, 0.1), "
        "coalesce(bp.learning_rate, 0.15), c.concept_id, c.average_response_time_ms FROM content c "
        "LEFT JOIN bkt_concept_parameters bp USING (concept_id) WHERE c.content_id = ANY(%s)",
        (items,)).fetchall()}
    answers = _answers(rnd, users, items, 1500)
    rows = db.execute("SELECT ordinal, mastery, mastery_before, predicted_correct, quality, "
                      "next_review_at, newly_mastered FROM record_answers(%s) ORDER BY ordinal",
                      (json.dumps([as_json(a) for a in answers]),)).fetchall()
    ks, rs, mastered = {}, {}, set()
    bad = []
    for a, row in zip(answers, rows):
        init, decay, guess, slip, rate, concept, avg = params[a["content_id"]]
        key = (a["user_id"], concept)
        if key in ks:
            m, last = ks[key]
            delta = Fraction(max(0, (a["answered_at"] - last) // timedelta(microseconds=1)), 86400 * 10**6)
        else:
            m, last, delta = init, a["answered_at"], 0
        p0, pred, after = bkt_ref(m, decay, delta, a["is_correct"], guess, slip, rate, 1)
        ks[key] = (float(after), max(last, a["answered_at"]))
        newly = key not in mastered and after >= Decimal("0.95")
        if newly:
            mastered.add(key)
        q = a["quality"] if a["quality"] is not None else quality_ref(
            a["is_correct"], a["hints_used"], a["response_time_ms"], avg)
        st = rs.get((a["user_id"], a["content_id"]), (Fraction(5, 2), 0, 0))
        st = sm2_ref(*st, q)
        rs[(a["user_id"], a["content_id"])] = st
        want = (q, a["answered_at"] + timedelta(days=st[1]), newly)
        if (not close(row[1], after, "1e-9") or not close(row[2], p0, "1e-9")
                or not close(row[3], pred, "1e-9") or tuple(row[4:]) != want):
            bad.append((a, row, (after, p0, pred, want)))
        ks[key] = (row[1], ks[key][1])  # carry the database's float forward (no drift to compare)
    assert not bad, bad[:3]
    got = {(u, c): (Fraction(e), i, r) for u, c, e, i, r in db.execute(
        "SELECT user_id, content_id, easiness, interval_days, repetitions FROM review_schedule")}
    assert got == rs
    events = db.execute("SELECT user_id, concept_id, count(*) FROM learning_events "
                        "WHERE event_type = 'concept_mastered' GROUP BY 1, 2").fetchall()
    assert {(u, c) for u, c, n in events} == mastered and all(n == 1 for *_, n in events)
    assert mastered  # the streams do cross 0.95


# -- BKT ---------------------------------------------------------------------------------------


def _bkt_cases(rnd):
    cases = []
    masteries = [0.0, 1e-300, 1e-12, 0.1, 0.5, 0.94, 0.95, 1 - 2**-52, 1.0]
    decays = [0.5, 0.9, 0.98, 1 - 2**-52, 1.0]
    deltas = [0.0, -3.0, 1e-290, 3.7e-151, 1e-40, 1e-12, 1 / 1440, 1.0, 36.5, 7000.0, 1e6, 1e12]
    gs = [(0.0, 0.0), (0.0, 0.1), (0.2, 0.0), (0.2, 0.1), (0.5, 0.5), (0.5, 0.0), (0.0, 0.5), (0.3, 0.3)]
    rates = [(0.15, 1.0), (0.5, 2.0), (0.9, 3.0), (1.0, 1.0), (0.0, 1.0), (1e-200, 1e-200)]
    for m in masteries:
        for d in decays:
            for dt in deltas:
                for g, s in gs:
                    for c in (True, False):
                        r, v = rnd.choice(rates)
                        cases.append((m, d, dt, c, g, s, r, v))
    for _ in range(3000 * SCALE):
        cases.append((rnd.random(), rnd.uniform(0.9, 1.0), 10 ** rnd.uniform(-6, 4),
                      rnd.random() < 0.5, rnd.uniform(0, 0.5), rnd.uniform(0, 0.5),
                      rnd.random(), rnd.uniform(0.2, 4)))
    for _ in range(1000 * SCALE):  # log-uniform: values near 0 and 1 in every decade
        def near(lo=-300):
            x = 10 ** rnd.uniform(lo, 0)
            return x if rnd.random() < 0.5 else 1 - x
        cases.append((near(), 1 - 10 ** rnd.uniform(-16, -1.05), 10 ** rnd.uniform(-12, 9),
                      rnd.random() < 0.5, 10 ** rnd.uniform(-200, math.log10(0.5)),
                      10 ** rnd.uniform(-200, math.log10(0.5)), 10 ** rnd.uniform(-5, 0),
                      10 ** rnd.uniform(-3, 3)))
    return cases


def test_bkt_update_and_prediction_60_digits(conn):
    cases = _bkt_cases(random.Random(1603))
    cols = list(zip(*cases))
    rows = conn.execute(
        "SELECT bkt_update(m, d, t, c, g, s, r, v), bkt_predict_correct(m, d, t, g, s) "
        "FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::bool[], %s::float8[], "
        "%s::float8[], %s::float8[], %s::float8[]) WITH ORDINALITY u(m, d, t, c, g, s, r, v, n) "
        "ORDER BY n", [list(c) for c in cols]).fetchall()
    bad = []
    for case, (upd, pred) in zip(cases, rows):
        _, want_pred, want = bkt_ref(*case)
        if upd is None or not (0 <= upd <= 1) or not close(upd, want) or not close(pred, want_pred):
            bad.append((case, upd, pred, want, want_pred))
    assert not bad, f"{len(bad)} of {len(cases)}: {bad[:4]}"


def test_bkt_issue_limit(conn):
    assert conn.execute("SELECT bkt_update(0.5, 0.9, 7000, true, 0, 0.1, 0.15, 1)").fetchone()[0] == 1.0


def test_concept_mastered_once_with_high_velocity(db):
    """learning_rate × velocity ≥ 1: the first answer already reaches 1; later answers,
    a drop below 0.95 and a climb back never write a second event."""
    users, items = _learners(db, 1)
    user, item = users[0], items[0]
    db.execute("SELECT record_answer(%s, %s, false, 100, p_answered_at => %s)", (user, item, T0))
    db.execute("UPDATE knowledge_states SET personal_learning_velocity = 10 WHERE user_id = %s", (user,))
    got = []
    for k, correct in enumerate([True, False, True, True]):
        got.append(db.execute("SELECT mastery, newly_mastered FROM record_answer(%s, %s, %s, 100, "
                              "p_answered_at => %s)", (user, item, correct, T0 + timedelta(days=k + 1))
                              ).fetchone())
    assert [g[0] for g in got] == [1.0] * 4 and [g[1] for g in got] == [True, False, False, False]
    db.execute("UPDATE knowledge_states SET personal_learning_velocity = 1 WHERE user_id = %s", (user,))
    for k in range(5):  # forgetting over years then relearning: still no second event
        db.execute("SELECT record_answer(%s, %s, %s, 100, p_answered_at => %s)",
                   (user, item, k > 1, T0 + timedelta(days=400 * (k + 2))))
    assert db.execute("SELECT count(*) FROM learning_events WHERE event_type = 'concept_mastered'"
                      ).fetchone()[0] == 1


# -- quality and IRT -------------------------------------------------------------------------


def test_answer_quality_mapping(conn):
    cases = [(c, h, rt, avg) for c in (True, False) for h in (0, 1, 3)
             for rt in (0.0, 999.0, 1000.0, 1000.5, 50000.0) for avg in (None, 1000.0)]
    cols = [list(c) for c in zip(*cases)]
    got = [r[0] for r in conn.execute(
        "SELECT answer_quality(c, h, rt, a) FROM unnest(%s::bool[], %s::int[], %s::float8[], "
        "%s::float8[]) WITH ORDINALITY u(c, h, rt, a, n) ORDER BY n", cols).fetchall()]
    assert got == [quality_ref(*c) for c in cases]


def test_irt_3pl_60_digits(conn):
    rnd = random.Random(1604)
    cases = [(rnd.uniform(-4, 4), rnd.uniform(-4, 4), rnd.uniform(0.1, 3), rnd.uniform(0, 0.4))
             for _ in range(5000 * SCALE)]
    cases += [(t, b, a, c) for t in (-400.0, 0.0, 400.0) for b in (-3.0, 3.0) for a in (0.01, 5.0)
              for c in (0.0, 0.25)]
    got = conn.execute("SELECT irt_probability(t, b, a, c) FROM unnest(%s::float8[], %s::float8[], "
                       "%s::float8[], %s::float8[]) WITH ORDINALITY u(t, b, a, c, n) ORDER BY n",
                       [list(c) for c in zip(*cases)]).fetchall()
    bad = [(c, g[0]) for c, g in zip(cases, got) if not close(g[0], irt_ref(*c))]
    assert not bad, bad[:4]


# -- answer-time bounds --------------------------------------------------------------------------


def test_answer_time_bounds_write_nothing(db):
    users, items = _learners(db, 2)
    db.execute("SELECT record_answer(%s, %s, true, 100, p_answered_at => %s)", (users[0], items[0], T0))
    now = db.execute("SELECT now()").fetchone()[0]
    bad_times = ["infinity", "-infinity", (now + timedelta(minutes=7)).isoformat(),
                 "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"]
    before = snapshot(db)
    for at in bad_times:
        for user in users:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                db.execute("SELECT record_answer(%s, %s, true, 100, p_answered_at => %s::timestamptz)",
                           (user, items[0], at))
        good = {"user_id": users[1], "content_id": items[1], "is_correct": True,
                "response_time_ms": 10, "answered_at": T0.isoformat()}
        batch = [good, good, dict(good, answered_at=at), good]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"answers\[2\]\.answered_at"):
            db.execute("SELECT * FROM record_answers(%s)", (json.dumps(batch),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"answers\[1\]\.quality"):
        db.execute("SELECT * FROM record_answers(%s)", (json.dumps(
            [good, dict(good, quality=100000)]),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"answers\[0\]\.hints_used"):
        db.execute("SELECT * FROM record_answers(%s)", (json.dumps([dict(good, hints_used=-1)]),))
    assert snapshot(db) == before
    # within the skew and the floor: accepted
    db.execute("SELECT record_answer(%s, %s, true, 100, p_answered_at => %s)",
               (users[1], items[0], now + timedelta(minutes=4)))
    db.execute("SELECT record_answer(%s, %s, true, 100, p_answered_at => '2000-01-01Z')",
               (users[1], items[1]))


def test_out_of_order_answer_has_no_forgetting(db):
    users, items = _learners(db, 1)
    u, i = users[0], items[0]
    first = db.execute("SELECT mastery FROM record_answer(%s, %s, true, 100, p_answered_at => %s)",
                       (u, i, T0 + timedelta(days=30))).fetchone()[0]
    row = db.execute("SELECT mastery_before, mastery FROM record_answer(%s, %s, false, 100, "
                     "p_answered_at => %s)", (u, i, T0)).fetchone()
    assert row[0] == first
    _, _, want = bkt_ref(first, 0.98, 0, False, 0.2, 0.1, 0.15, 1)
    assert close(row[1], want)
    assert db.execute("SELECT last_interaction FROM knowledge_states WHERE user_id = %s",
                      (u,)).fetchone()[0] == T0 + timedelta(days=30)


# -- FSRS-6 ------------------------------------------------------------------------------------


def _fsrs_configs(rnd):
    configs = [Scheduler(enable_fuzzing=False),
               Scheduler(enable_fuzzing=False, learning_steps=(), relearning_steps=()),
               Scheduler(enable_fuzzing=False, desired_retention=0.97, maximum_interval=90,
                         learning_steps=(timedelta(minutes=5),),
                         relearning_steps=(timedelta(minutes=3), timedelta(hours=2)))]
    for _ in range(2):
        w = [lo + (hi - lo) * rnd.random() for lo, hi in zip(LOWER_BOUNDS_PARAMETERS,
                                                               UPPER_BOUNDS_PARAMETERS)]
        configs.append(Scheduler(parameters=w, enable_fuzzing=False,
                                 desired_retention=rnd.uniform(0.75, 0.97),
                                 learning_steps=tuple(timedelta(minutes=rnd.randint(1, 90))
                                                      for _ in range(rnd.randint(0, 3))),
                                 maximum_interval=rnd.randint(30, 36500)))
    return configs


def test_fsrs_step_equals_py_fsrs(conn):
    """Each review of generated sequences (gaps of minutes to years, every rating, the
    settings changed between reviews) from py-fsrs' card before it: state/step/due exact,
    stability and difficulty within 1e-9."""
    rnd = random.Random(1605)
    configs = _fsrs_configs(rnd)
    conn.execute("DROP TABLE IF EXISTS pg_temp.cfg")
    conn.execute("CREATE TEMP TABLE cfg (id int, w float8[], ret float8, ls int[], rs int[], mx int)")
    for k, s in enumerate(configs):
        conn.execute("INSERT INTO cfg VALUES (%s, %s, %s, %s, %s, %s)",
                     (k, list(s.parameters), s.desired_retention,
                      [int(x.total_seconds()) for x in s.learning_steps],
                      [int(x.total_seconds()) for x in s.relearning_steps], s.maximum_interval))
    inputs, wants = [], []
    for _ in range(1500 * SCALE):
        card = Card()
        at = T0 + timedelta(seconds=rnd.randint(0, 86400 * 100))
        cfg = rnd.randrange(len(configs))
        for k in range(rnd.randint(1, 12)):
            if k:
                at += timedelta(seconds=rnd.choice([0, rnd.randint(60, 3600), rnd.randint(3600, 86400 * 2),
                                                    rnd.randint(86400, 86400 * 60),
                                                    rnd.randint(86400 * 200, 86400 * 365 * 4)]))
                if rnd.random() < 0.2:
                    cfg = rnd.randrange(len(configs))
            rating = rnd.randint(1, 4)
            inputs.append((None if card.stability is None else card.state.value, card.step,
                           card.stability, card.difficulty, card.last_review, rating, at, cfg))
            card, _ = configs[cfg].review_card(card, Rating(rating), at)
            wants.append((card.state.value, card.step, card.stability, card.difficulty, card.due))
    rows = conn.execute(
        "SELECT f.state, f.step, f.stability, f.difficulty, f.due FROM unnest(%s::int2[], %s::int2[], "
        "%s::float8[], %s::float8[], %s::timestamptz[], %s::int[], %s::timestamptz[], %s::int[]) "
        "WITH ORDINALITY u(st, sp, s, d, l, r, t, c, n) JOIN cfg ON cfg.id = u.c, "
        "LATERAL fsrs_step(u.st, u.sp, u.s, u.d, u.l, u.r, u.t, cfg.w, cfg.ret, cfg.ls, cfg.rs, cfg.mx) f "
        "ORDER BY u.n", [list(c) for c in zip(*inputs)]).fetchall()
    assert len(rows) == len(wants)
    bad = [(i, w, g) for i, w, g in zip(inputs, wants, rows)
           if (g[0], g[1], g[4]) != (w[0], w[1], w[4])
           or abs(g[2] - w[2]) > 1e-9 or abs(g[3] - w[3]) > 1e-9]
    assert not bad, f"{len(bad)} of {len(wants)}: {bad[:3]}"
    assert {w[0] for w in wants} == {1, 2, 3}


# -- batch = single ------------------------------------------------------------------------------


STATE = """
SELECT u.xp, u.current_streak, u.longest_streak, u.last_active_date,
       (SELECT array_agg(ROW(k.concept_id, k.mastery_probability, k.last_interaction, k.attempts,
                             k.correct_attempts, k.mastered_at, k.initial_knowledge,
                             k.guess_parameter, k.temporal_decay)::text ORDER BY k.concept_id)
          FROM knowledge_states k WHERE k.user_id = u.user_id),
       (SELECT array_agg(ROW(r.content_id, r.easiness, r.interval_days, r.repetitions,
                             r.next_review_at, r.last_quality, r.last_reviewed_at, r.sm2_due,
                             r.fsrs_state, r.fsrs_step, r.fsrs_stability, r.fsrs_difficulty,
                             r.fsrs_due)::text ORDER BY r.content_id)
          FROM review_schedule r WHERE r.user_id = u.user_id),
       (SELECT array_agg(ROW(e.occurred_at, e.event_type, e.concept_id, e.content_id, e.is_correct,
                             e.quality, e.mastery_before, e.mastery_after, e.response_data)::text
                         ORDER BY ROW(e.occurred_at, e.event_type, e.concept_id, e.content_id,
                                      e.is_correct, e.quality, e.mastery_before, e.mastery_after,
                                      e.response_data)::text)
          FROM learning_events e WHERE e.user_id = u.user_id)
  FROM users u WHERE u.user_id = %s"""


@pytest.mark.parametrize("scheduler", ["sm2", "fsrs"])
def test_batch_equals_single(db, scheduler):
    rnd = random.Random(1606 if scheduler == "sm2" else 1607)
    users, items = _learners(db, 8, scheduler)
    single_users, batch_users = users[:4], users[4:]
    answers = _answers(rnd, single_users, items, 400)
    single = []
    with db.cursor() as cur:
        for a in answers:
            cur.execute("SELECT mastery, mastery_before, predicted_correct, quality, next_review_at, "
                        "newly_mastered, concept_id FROM record_answer(%s, %s, %s, %s, %s, %s, %s)",
                        (a["user_id"], a["content_id"], a["is_correct"], a["response_time_ms"],
                         a["hints_used"], a["quality"], a["answered_at"]))
            single.append(cur.fetchone())
    mapping = dict(zip(single_users, batch_users))
    batch_in = [as_json(dict(a, user_id=mapping[a["user_id"]])) for a in answers]
    batch = db.execute("SELECT mastery, mastery_before, predicted_correct, quality, next_review_at, "
                       "newly_mastered, concept_id FROM record_answers(%s) ORDER BY ordinal",
                       (json.dumps(batch_in),)).fetchall()
    assert batch == single
    for s, b in mapping.items():
        got, want = db.execute(STATE, (b,)).fetchone(), db.execute(STATE, (s,)).fetchone()
        for k, (g, w) in enumerate(zip(got, want)):
            if isinstance(g, list) and g != w:
                for x, y in zip(g, w):
                    assert x == y, (k, len(g), len(w))
            assert g == w, k


# -- fault injection -----------------------------------------------------------------------------


def test_interrupted_record_answers_writes_nothing(db, schema_url):
    """A statement cancelled, timed out or its backend killed in the middle of record_answers:
    every table exactly as before (all or nothing per call)."""
    rnd = random.Random(1608)
    users, items = _learners(db, 30)
    db.execute("SELECT * FROM record_answers(%s)",
               (json.dumps([as_json(a) for a in _answers(rnd, users, items, 200, quality=False)]),))
    big = json.dumps([as_json(a) for a in _answers(rnd, users, items, 20000, out_of_order=False,
                                                   long_gaps=False)])
    before = snapshot(db)
    start = time.monotonic()
    db.execute("SELECT count(*) FROM record_answers(%s)", (big,))  # how long a whole call takes
    full = time.monotonic() - start
    after_full = snapshot(db)
    assert after_full != before
    interrupted = 0
    for k, how in enumerate(["timeout", "cancel", "kill", "timeout", "cancel", "kill"]):
        with psycopg.connect(schema_url, autocommit=True) as c:
            pid = c.info.backend_pid
            base = snapshot(c)
            delay = full * (0.1 + 0.1 * k)
            if how == "timeout":
                c.execute("SELECT set_config('statement_timeout', %s, false)", (str(int(delay * 1000)),))
            else:
                def stop(c=c, how=how, pid=pid, delay=delay):
                    time.sleep(delay)
                    if how == "cancel":
                        c.cancel_safe() if hasattr(c, "cancel_safe") else c.cancel()
                    else:
                        with psycopg.connect(schema_url, autocommit=True) as k2:
                            k2.execute("SELECT pg_terminate_backend(%s)", (pid,))
                threading.Thread(target=stop, daemon=True).start()
            try:
                c.execute("SELECT count(*) FROM record_answers(%s)", (big,))
            except (psycopg.errors.QueryCanceled, psycopg.OperationalError):
                interrupted += 1
                assert snapshot(db) == base
            else:
                assert snapshot(db) != base
            time.sleep(0.05)
    assert interrupted >= 3


# -- migration 0010: intervals stored by the pre-0007 double precision arithmetic ---------------


def _old_float_sm2(qualities):
    """The pre-0007 functions' arithmetic (double precision EF), as stored in the field."""
    ef, interval, reps = 2.5, 0, 0
    for q in qualities:
        if q < 3 or reps == 0:
            interval = 1
        elif reps == 1:
            interval = 6
        else:
            interval = min(SM2_CAP, math.ceil(interval * ef))
        reps = 0 if q < 3 else reps + 1
        ef = max(1.3, ef + 0.1 - (5 - q) * (0.08 + (5 - q) * 0.02))
    return ef, interval, reps


def test_0010_repairs_drifted_intervals_with_full_history(db):
    rnd = random.Random(1610)
    (user,) = _learners(db, 1)[0]
    concept = add_concept(db, f"r{random.random()}")
    pairs = []
    for k in range(400 * SCALE):
        item = add_item(db, concept)
        qs = [rnd.choice([0, 1, 2, 3, 3, 4, 5, 5]) for _ in range(rnd.randint(3, 14))]
        qs += [rnd.choice([3, 4, 5]) for _ in range(3)]  # ends on a multiplicative interval
        ef, interval, reps = _old_float_sm2(qs)
        exact = (Fraction(5, 2), 0, 0)
        for q in qs:
            exact = sm2_ref(*exact, q)
        at = [T0 + timedelta(days=3 * j, seconds=k) for j in range(len(qs))]
        for q, t in zip(qs, at):
            db.execute("INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, "
                       "content_id, is_correct, quality) VALUES (%s, %s, 'question_answered', %s, %s, "
                       "%s, %s)", (user, t, concept, item, q >= 3, q))
        due = at[-1] + timedelta(days=interval)
        kind = k % 4  # 0: pre-0007 row; 1: SM-2 chosen since; 2: FSRS chosen since; 3: history lost
        fsrs_due = at[-1] + timedelta(days=11)
        db.execute("INSERT INTO review_schedule (user_id, content_id, easiness, interval_days, "
                   "repetitions, next_review_at, last_quality, last_reviewed_at, sm2_due) "
                   "VALUES (%s, %s, round(round((%s::float8 * 50)::numeric) / 50, 2), %s, %s, %s, %s, "
                   "%s, %s)", (user, item, ef, interval, reps, fsrs_due if kind == 2 else due, qs[-1],
                               at[-1], None if kind == 0 else due))
        if kind == 3:
            db.execute("DELETE FROM learning_events WHERE content_id = %s AND occurred_at = %s",
                       (item, at[0]))
        pairs.append((item, kind, interval, exact[1], due, fsrs_due))
    with open("sql/migrations/0010_sm2_interval_repair.sql", encoding="utf-8") as f:
        db.execute(f.read())
    got = {i: r for i, *r in db.execute("SELECT content_id, interval_days, next_review_at, sm2_due "
                                        "FROM review_schedule WHERE user_id = %s", (user,))}
    drifted = 0
    for item, kind, stored, exact, due, fsrs_due in pairs:
        interval, nxt, sm2_due = got[item]
        if kind == 3:
            # the history's first answer is gone: repaired only when the rest reproduces
            # the stored state, and then to the full history's exact interval
            assert (interval, nxt) in ((stored, due), (exact, due + timedelta(days=exact - stored)))
            continue
        drifted += stored != exact
        shift = timedelta(days=exact - stored)
        assert interval == exact
        assert nxt == (fsrs_due if kind == 2 else due + shift)
        assert sm2_due == (None if kind == 0 else due + shift)
    assert drifted >= 10  # the generator does reach the float errors


def test_fsrs_through_record_answers_equals_py_fsrs(db):
    """The FSRS scheduler chosen: every answer's next_review_at and the stored card equal
    py-fsrs' replay with the documented rating (quality 0..2 Again, 3 Hard, 4 Good, 5 Easy)."""
    rnd = random.Random(1611)
    users, items = _learners(db, 5, "fsrs")
    answers = _answers(rnd, users, items, 1200, out_of_order=False)
    avg = dict(db.execute("SELECT content_id, average_response_time_ms FROM content").fetchall())
    rows = db.execute("SELECT next_review_at, quality FROM record_answers(%s) ORDER BY ordinal",
                      (json.dumps([as_json(a) for a in answers]),)).fetchall()
    scheduler, cards = Scheduler(enable_fuzzing=False), {}
    for a, (nxt, q) in zip(answers, rows):
        want_q = a["quality"] if a["quality"] is not None else quality_ref(
            a["is_correct"], a["hints_used"], a["response_time_ms"], avg[a["content_id"]])
        key = (a["user_id"], a["content_id"])
        rating = 1 if want_q < 3 else want_q - 1
        cards[key], _ = scheduler.review_card(cards.get(key, Card()), Rating(rating), a["answered_at"])
        assert (q, nxt) == (want_q, cards[key].due), a
    for u, i, st, sp, s, d in db.execute("SELECT user_id, content_id, fsrs_state, fsrs_step, "
                                         "fsrs_stability, fsrs_difficulty FROM review_schedule"):
        card = cards[(u, i)]
        assert (st, sp) == (card.state.value, card.step)
        assert abs(s - card.stability) <= 1e-9 and abs(d - card.difficulty) <= 1e-9


def test_batch_reads_json_strings_by_the_column_types_input(db):
    """As documented in record_answers.sql: "5" is quality 5, "yes" is true."""
    users, items = _learners(db, 2)
    base = {"content_id": items[0], "response_time_ms": 10, "answered_at": T0.isoformat()}
    rows = db.execute("SELECT quality, mastery FROM record_answers(%s) ORDER BY ordinal", (json.dumps(
        [dict(base, user_id=users[0], is_correct="yes", quality="5"),
         dict(base, user_id=users[1], is_correct=True, quality=5)]),)).fetchall()
    assert rows[0] == rows[1] and rows[0][0] == 5
