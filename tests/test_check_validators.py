"""Migration 0011: the CHECKs of knowledge_states and review_schedule as one row
validator per table, refusing what the 16 constraints they replace refused, with the
same error (SQLSTATE 23514, message, constraint name), checked against a real PostgreSQL.

The old constraints' definitions are read from 0011's rollback, which restores them
(tests/test_schema.py checks that the rollback is the exact inverse of 0011)."""

from __future__ import annotations

import re
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors, sql

from conftest import REPO

ROLLBACK = REPO / "sql" / "rollbacks" / "0011_check_validators.sql"

# (table, constraint) -> the old CHECK expression, as the rollback re-creates it
OLD = {
    (m["table"], m["name"]): m["expr"]
    for block in re.finditer(r"ALTER TABLE (?P<table>\w+)\n(?P<body>(?:    .*\n)+)",
                             ROLLBACK.read_text())
    for m in (dict(table=block["table"], **c.groupdict()) for c in re.finditer(
        r"ADD CONSTRAINT (?P<name>\w+) CHECK \((?P<expr>.*)\) NOT VALID", block["body"]))
}

# The validator's parameters after tableoid, in order, with a valid value for each.
COLUMNS = {
    "knowledge_states": [("initial_knowledge", "double precision", 0.1),
                         ("learning_rate", "double precision", 0.15),
                         ("guess_parameter", "double precision", 0.2),
                         ("slip_parameter", "double precision", 0.1),
                         ("mastery_probability", "double precision", 0.1),
                         ("temporal_decay", "double precision", 0.98),
                         ("personal_learning_velocity", "double precision", 1.0),
                         ("attempts", "integer", 0), ("correct_attempts", "integer", 0)],
    "review_schedule": [("easiness", "numeric", Decimal("2.5")), ("interval_days", "integer", 0),
                        ("repetitions", "integer", 0), ("last_quality", "smallint", None),
                        ("fsrs_state", "smallint", None), ("fsrs_step", "smallint", None),
                        ("fsrs_stability", "double precision", None),
                        ("fsrs_difficulty", "double precision", None)],
}

NAN, INF = float("nan"), float("inf")
# Edge values per column type: bounds, just past them, the specials, NULL.
EDGES = {
    "double precision": [None, NAN, INF, -INF, -0.01, 0.0, 1e-310, 0.001, 0.0009, 0.1, 0.5, 0.51,
                         0.89, 0.9, 1.0, 1.01, 3.5, 10.0, 10.5],
    "numeric": [None, Decimal("NaN"), Decimal("Infinity"), Decimal("1.29"), Decimal("1.3"),
                Decimal("2.5"), Decimal("2.555"), Decimal("4.2"), Decimal("-2.5")],
    "integer": [None, -1, 0, 1, 5],
    "smallint": [None, -1, 0, 1, 3, 4, 5, 6],
}

# One value each old constraint refuses, for the table-level tests.
BAD = {
    "knowledge_states_attempts_check": ("correct_attempts", 1),  # > attempts (0)
    "knowledge_states_guess_parameter_check": ("guess_parameter", 0.51),
    "knowledge_states_initial_knowledge_check": ("initial_knowledge", 1.01),
    "knowledge_states_learning_rate_check": ("learning_rate", -0.01),
    "knowledge_states_mastery_probability_check": ("mastery_probability", NAN),
    "knowledge_states_personal_learning_velocity_check": ("personal_learning_velocity", INF),
    "knowledge_states_slip_parameter_check": ("slip_parameter", 0.6),
    "knowledge_states_temporal_decay_check": ("temporal_decay", 0.89),
    "review_schedule_easiness_check": ("easiness", Decimal("2.555")),
    "review_schedule_fsrs_difficulty_check": ("fsrs_difficulty", 10.5),
    "review_schedule_fsrs_stability_check": ("fsrs_stability", 0.0009),
    "review_schedule_fsrs_state_check": ("fsrs_state", 4),
    "review_schedule_fsrs_step_check": ("fsrs_step", -1),
    "review_schedule_interval_days_check": ("interval_days", -1),
    "review_schedule_last_quality_check": ("last_quality", 6),
    "review_schedule_repetitions_check": ("repetitions", -1),
}


@pytest.fixture
def db(schema_url):
    """A learner with one knowledge_states and one review_schedule row; a second concept
    and item without rows, for INSERTs."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        ids = conn.execute(
            """WITH u AS (INSERT INTO users (email, display_name)
                          VALUES ('v@example.test', 'V') RETURNING user_id),
                    c AS (INSERT INTO concepts (code, name, category)
                          VALUES ('v1', 'V1', 'parking'), ('v2', 'V2', 'parking')
                          RETURNING concept_id),
                    i AS (INSERT INTO content (concept_id, question)
                          SELECT concept_id, 'Q' || concept_id FROM c RETURNING content_id)
               SELECT (SELECT user_id FROM u), (SELECT array_agg(concept_id ORDER BY concept_id) FROM c),
                      (SELECT array_agg(content_id ORDER BY content_id) FROM i)""").fetchone()
        user, concepts, items = ids
        conn.execute("INSERT INTO knowledge_states (user_id, concept_id) VALUES (%s, %s)",
                     (user, concepts[0]))
        conn.execute("INSERT INTO review_schedule (user_id, content_id) VALUES (%s, %s)",
                     (user, items[0]))
        conn.ids = dict(user=user, concepts=concepts, items=items)
        yield conn


def test_the_rollback_lists_every_replaced_constraint():
    assert set(name for _, name in OLD) == set(BAD)
    assert {t for t, _ in OLD} == set(COLUMNS)


def test_each_table_has_only_its_row_check(db):
    """The 16 constraints are gone; one validated CHECK per table (and per partition)."""
    rows = db.execute(
        """SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint
           WHERE contype = 'c'
             AND conrelid IN ('knowledge_states'::regclass, 'review_schedule'::regclass)""").fetchall()
    assert sorted(rows) == sorted((t, f"{t}_row_check", True) for t in COLUMNS)
    leftover = db.execute("SELECT count(*) FROM pg_constraint WHERE conname = ANY(%s)",
                          (list(BAD),)).fetchone()[0]
    assert leftover == 0


def _call(conn, table: str, values: dict) -> str | None:
    """The validator on `values` (the others valid): None if accepted, else the
    constraint it names."""
    args = [sql.SQL("{}::regclass::oid").format(sql.Literal(table))] + [
        sql.SQL("{}::{}").format(sql.Literal(values.get(c, default)), sql.SQL(ty))
        for c, ty, default in COLUMNS[table]]
    query = sql.SQL("SELECT {}({})").format(sql.Identifier(f"check_{table}_row"),
                                           sql.SQL(", ").join(args))
    try:
        assert conn.execute(query).fetchone()[0] is True
    except errors.CheckViolation as refused:
        return refused.diag.constraint_name
    return None


def _old_refuses(conn, table: str, name: str, values: dict) -> bool:
    """The old CHECK's verdict on the row: refused only when its expression is FALSE."""
    cols = sql.SQL(", ").join(
        sql.SQL("{}::{} AS {}").format(sql.Literal(values.get(c, default)), sql.SQL(ty),
                                       sql.Identifier(c))
        for c, ty, default in COLUMNS[table])
    query = sql.SQL("SELECT ({}) IS FALSE FROM (SELECT {}) AS row").format(
        sql.SQL(OLD[table, name]), cols)
    return conn.execute(query).fetchone()[0]


@pytest.mark.parametrize("table", sorted(COLUMNS))
def test_validator_refuses_exactly_what_the_old_checks_refused(db, table):
    """Every edge value of every column (and pairs for the two-column check): the
    validator refuses it iff one of the old CHECKs did, naming the first (by name)."""
    names = sorted(n for t, n in OLD if t == table)
    cases = [{c: v} for c, ty, _ in COLUMNS[table] for v in EDGES[ty]]
    if table == "knowledge_states":
        cases += [{"attempts": a, "correct_attempts": c}
                  for a in EDGES["integer"] for c in EDGES["integer"]]
    refused_some = 0
    for values in cases:
        expected = next((n for n in names if _old_refuses(db, table, n, values)), None)
        assert _call(db, table, values) == expected, values
        refused_some += expected is not None
    assert refused_some >= len(names)  # every constraint was exercised


def _relation_of(conn, table: str, where: str, params) -> str:
    return conn.execute(sql.SQL("SELECT tableoid::regclass::text FROM {} WHERE " + where).format(
        sql.Identifier(table)), params).fetchone()[0]


def _assert_refused_like_postgres(refused, relation: str, name: str, column: str | None):
    diag = refused.value.diag
    assert refused.value.sqlstate == "23514"
    assert diag.message_primary == (
        f'new row for relation "{relation}" violates check constraint "{name}"')
    assert diag.constraint_name == name
    assert diag.table_name == relation and diag.schema_name == "public"
    assert diag.column_name == column


KEYS = {"knowledge_states": "user_id = %(user)s AND concept_id = %(concept)s",
        "review_schedule": "user_id = %(user)s AND content_id = %(item)s"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_update_and_insert_refused_with_the_old_name(db, name):
    table = next(t for t, n in OLD if n == name)
    column, value = BAD[name]
    single = None if name == "knowledge_states_attempts_check" else column
    ids = db.ids
    key = dict(user=ids["user"], concept=ids["concepts"][0], item=ids["items"][0])
    relation = _relation_of(db, table, KEYS[table], key)
    select = sql.SQL("SELECT {} FROM {} WHERE " + KEYS[table]).format(
        sql.Identifier(column), sql.Identifier(table))
    before = db.execute(select, key).fetchone()[0]

    with pytest.raises(errors.CheckViolation) as refused:
        db.execute(sql.SQL("UPDATE {} SET {} = %(v)s WHERE " + KEYS[table]).format(
            sql.Identifier(table), sql.Identifier(column)), {**key, "v": value})
    _assert_refused_like_postgres(refused, relation, name, single)

    new = {"knowledge_states": {"user_id": ids["user"], "concept_id": ids["concepts"][1]},
           "review_schedule": {"user_id": ids["user"], "content_id": ids["items"][1]}}[table]
    row = {**new, column: value}
    with pytest.raises(errors.CheckViolation) as refused:
        db.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder(k) for k in row)), row)
    # the new row would go to the learner's partition (knowledge_states: by user_id)
    _assert_refused_like_postgres(refused, relation, name, single)
    assert db.execute(select, key).fetchone()[0] == before  # nothing was written


def test_several_violations_name_the_first_in_name_order(db):
    key = dict(user=db.ids["user"], concept=db.ids["concepts"][0])
    with pytest.raises(errors.CheckViolation) as refused:
        db.execute("UPDATE knowledge_states SET temporal_decay = 0.5, slip_parameter = 0.7, "
                   "guess_parameter = 0.9 WHERE " + KEYS["knowledge_states"], key)
    assert refused.value.diag.constraint_name == "knowledge_states_guess_parameter_check"


def test_nulls_pass_as_in_a_check(db):
    key = dict(user=db.ids["user"], item=db.ids["items"][0])
    db.execute("UPDATE review_schedule SET fsrs_state = 2, fsrs_step = 0, fsrs_stability = 3.5, "
               "fsrs_difficulty = 5, last_quality = 4 WHERE " + KEYS["review_schedule"], key)
    db.execute("UPDATE review_schedule SET fsrs_state = NULL, fsrs_step = NULL, "
               "fsrs_stability = NULL, fsrs_difficulty = NULL, last_quality = NULL WHERE "
               + KEYS["review_schedule"], key)
    assert db.execute("SELECT fsrs_state, last_quality FROM review_schedule WHERE "
                      + KEYS["review_schedule"], key).fetchone() == (None, None)
