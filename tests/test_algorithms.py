"""The pure SQL functions (sql/functions/bkt.sql, sm2.sql, quality.sql, irt.sql) against the
independent Python implementations in tests/reference_algorithms.py.

Each hypothesis example is a list of inputs evaluated by ONE query (unnest of arrays), so
thousands of inputs cost a few hundred round trips.
"""

from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_algorithms as ref

TOL = 1e-9
EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Probabilities: the edges, and floats away from the float-underflow zone (PostgreSQL
# raises on underflow; the schema's CHECKs never let such values in anyway).
prob = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(1e-9, 1.0))
half = st.one_of(st.sampled_from([0.0, 0.5]), st.floats(1e-9, 0.5))
decay = st.one_of(st.sampled_from([0.9, 1.0]), st.floats(0.9, 1.0))
delta = st.one_of(st.sampled_from([0.0, -1.0, 1.0, 1 / 86400e6]),
                  st.floats(-10, 5000, allow_subnormal=False))  # real Δ: µs multiples
velocity = st.floats(1e-3, 10)

bkt_input = st.tuples(prob, decay, delta, st.booleans(), half, half, prob, velocity)


@pytest.fixture(scope="module")
def conn(make_database):
    with psycopg.connect(make_database(), autocommit=True) as c:
        yield c


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL


@EXAMPLES
@given(rows=st.lists(bkt_input, min_size=1, max_size=60))
def test_bkt_update_matches_reference(conn, rows):
    cols = list(zip(*rows))
    got = conn.execute(
        """SELECT bkt_update(m, d, dd, c, g, s, lr, v),
                  bkt_predict_correct(m, d, dd, g, s),
                  bkt_forget(m, d, dd)
             FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::boolean[],
                         %s::float8[], %s::float8[], %s::float8[], %s::float8[])
                  WITH ORDINALITY AS t(m, d, dd, c, g, s, lr, v, i)
            ORDER BY i""", [list(c) for c in cols]).fetchall()
    for (m, d, dd, c, g, s, lr, v), (upd, pred, p0) in zip(rows, got):
        assert _close(p0, ref.bkt_forget(m, d, dd)), (m, d, dd)
        assert _close(pred, ref.bkt_predict_correct(m, d, dd, g, s)), (m, d, dd, g, s)
        assert _close(upd, ref.bkt_update(m, d, dd, c, g, s, lr, v)), (m, d, dd, c, g, s, lr, v)
        assert 0.0 <= upd <= 1.0


sm2_input = st.tuples(st.one_of(st.just(1.3), st.floats(1.3, 5.0)), st.integers(0, 2000),
                      st.integers(0, 50), st.integers(0, 5))


@EXAMPLES
@given(rows=st.lists(sm2_input, min_size=1, max_size=60))
def test_sm2_step_matches_reference(conn, rows):
    cols = [list(c) for c in zip(*rows)]
    got = conn.execute(
        """SELECT s.easiness, s.interval_days, s.repetitions
             FROM unnest(%s::float8[], %s::int[], %s::int[], %s::int[])
                  WITH ORDINALITY AS t(ef, iv, reps, q, i)
             CROSS JOIN LATERAL sm2_step(t.ef, t.iv, t.reps, t.q) AS s
            ORDER BY t.i""", cols).fetchall()
    for (ef, iv, reps, q), (g_ef, g_iv, g_reps) in zip(rows, got):
        w_ef, w_iv, w_reps = ref.sm2_step(ef, iv, reps, q)
        assert (g_iv, g_reps) == (w_iv, w_reps), (ef, iv, reps, q)
        assert _close(g_ef, w_ef), (ef, iv, reps, q)
        assert g_ef >= 1.3


quality_input = st.tuples(st.booleans(), st.one_of(st.none(), st.integers(0, 5)),
                          st.one_of(st.none(), st.integers(0, 20000)),
                          st.one_of(st.none(), st.floats(0, 20000)))


@EXAMPLES
@given(rows=st.lists(quality_input, min_size=1, max_size=60))
def test_answer_quality_matches_reference(conn, rows):
    cols = [list(c) for c in zip(*rows)]
    got = conn.execute(
        """SELECT answer_quality(c, h, rt, avg)
             FROM unnest(%s::boolean[], %s::int[], %s::float8[], %s::float8[])
                  WITH ORDINALITY AS t(c, h, rt, avg, i)
            ORDER BY i""", cols).fetchall()
    for (c, h, rt, avg), (q,) in zip(rows, got):
        assert q == ref.answer_quality(c, h, rt, avg), (c, h, rt, avg)


irt_input = st.tuples(st.one_of(st.floats(-6, 6), st.sampled_from([-1e6, 1e6])),
                      st.floats(-3, 3), st.floats(0.5, 2.5), half)


@EXAMPLES
@given(rows=st.lists(irt_input, min_size=1, max_size=60))
def test_irt_probability_matches_reference(conn, rows):
    cols = [list(c) for c in zip(*rows)]
    got = conn.execute(
        """SELECT irt_probability(th, b, a, c)
             FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[])
                  WITH ORDINALITY AS t(th, b, a, c, i)
            ORDER BY i""", cols).fetchall()
    for (th, b, a, c), (p,) in zip(rows, got):
        assert _close(p, ref.irt_probability(th, b, a, c)), (th, b, a, c)
        assert c - TOL <= p <= 1 + TOL


def test_irt_known_points(conn):
    # At θ = b the logistic term is 1/2: P = c + (1 - c)/2.
    assert conn.execute("SELECT irt_probability(0.7, 0.7, 1.3, 0.2)").fetchone()[0] == \
        pytest.approx(0.6, abs=1e-12)
    # θ - b = 1, a = 1: P = 0.25 + 0.75 / (1 + e^-1.7).
    assert conn.execute("SELECT irt_probability(1, 0, 1, 0.25)").fetchone()[0] == \
        pytest.approx(0.25 + 0.75 / (1 + math.exp(-1.7)), abs=1e-12)


def test_bkt_update_by_hand(conn):
    # Defaults: p = 0.1, guess 0.2, slip 0.1, learning_rate 0.15, velocity 1, decay 0.98.
    # correct, Δ = 0: p0 = 0.1; p1 = 0.1·0.9 / (0.09 + 0.9·0.2) = 0.09/0.27 = 1/3;
    #                  p = 1/3 + (2/3)·0.15 = 13/30.
    got = conn.execute("SELECT bkt_update(0.1, 0.98, 0, true, 0.2, 0.1, 0.15, 1)").fetchone()[0]
    assert got == pytest.approx(13 / 30, abs=1e-15)
    # wrong, Δ = 1 day from 13/30: p0 = 13/30·0.98 = 637/1500;
    #   p1 = p0·0.1 / (p0·0.1 + (1 − p0)·0.8) = 637/7541; p = p1 + (1 − p1)·0.15 = 8363/37705.
    got = conn.execute(
        "SELECT bkt_update(13/30.0, 0.98, 1, false, 0.2, 0.1, 0.15, 1)").fetchone()[0]
    assert got == pytest.approx(8363 / 37705, abs=1e-12)
    # learning_rate × velocity >= 1 → mastery 1 after any answer.
    assert conn.execute(
        "SELECT bkt_update(0.3, 0.98, 2, false, 0.2, 0.1, 0.5, 2)").fetchone()[0] == 1.0


def test_sm2_step_refuses_bad_quality(conn):
    for q in (-1, 6):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="quality"):
            conn.execute("SELECT * FROM sm2_step(2.5, 0, 0, %s)", (q,))


def test_pure_functions_are_immutable_and_parallel_safe(conn):
    rows = conn.execute(
        """SELECT p.proname, p.provolatile, p.proparallel
             FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace
              AND p.proname IN ('bkt_forget', 'bkt_posterior', 'bkt_update', 'bkt_predict_correct',
                                'sm2_step', 'sm2_next_interval', 'sm2_next_repetitions',
                                'sm2_next_easiness', 'answer_quality', 'irt_probability')""").fetchall()
    assert len(rows) == 10
    assert all(v == "i" and par == "s" for _, v, par in rows), rows
