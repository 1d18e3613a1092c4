"""The per-answer updates of knowledge_states and review_schedule are HOT (0008).

No index holds a column that an answer changes (mastery_probability, next_review_at,
...), so the second answer on the same (user, concept) and (user, item) updates both
rows in place on their page: no new index entries, fewer WAL records. Measured with the
transaction's own statistics counters (pg_stat_get_xact_*), which need no stats flush.
"""

from __future__ import annotations

import json

import psycopg
import pytest


@pytest.fixture
def db(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        yield conn


def learner_item(conn) -> tuple[int, int]:
    user = conn.execute(
        "INSERT INTO users (email, display_name) VALUES ('hot@example.test', 'hot') "
        "RETURNING user_id").fetchone()[0]
    concept = conn.execute(
        "INSERT INTO concepts (code, name, category) VALUES ('hot', 'Hot', 'road_rules') "
        "RETURNING concept_id").fetchone()[0]
    item = conn.execute(
        "INSERT INTO content (concept_id, category, question) VALUES (%s, 'road_rules', 'q') "
        "RETURNING content_id", (concept,)).fetchone()[0]
    return user, item


def updates(conn, user: int) -> dict[str, tuple[int, int]]:
    """{table: (updates, HOT updates)} in this transaction; knowledge_states as the user's
    partition (the counters are kept per partition)."""
    partition = conn.execute(
        "SELECT tableoid::regclass::text FROM knowledge_states WHERE user_id = %s",
        (user,)).fetchone()[0]
    counters = "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), " \
               "pg_stat_get_xact_tuples_hot_updated(%s::regclass)"
    return {name: conn.execute(counters, (table, table)).fetchone()
            for name, table in (("knowledge_states", partition),
                                ("review_schedule", "review_schedule"))}


def test_single_answers_update_in_place(db):
    user, item = learner_item(db)
    with db.transaction():
        for correct in (True, False, True):
            db.execute("SELECT record_answer(%s, %s, %s, 3000)", (user, item, correct))
        stats = updates(db, user)
    # The first answer inserts both rows; the two after it update them, HOT.
    assert stats["knowledge_states"] == (2, 2)
    assert stats["review_schedule"] == (2, 2)


def test_batch_updates_in_place(db):
    user, item = learner_item(db)
    db.execute("SELECT record_answer(%s, %s, true, 3000)", (user, item))
    batch = [{"user_id": user, "content_id": item, "is_correct": ok, "response_time_ms": 2000}
             for ok in (True, False, True)]
    with db.transaction():
        db.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
        stats = updates(db, user)
    # One UPDATE per row for the whole batch.
    assert stats["knowledge_states"] == (1, 1)
    assert stats["review_schedule"] == (1, 1)
