"""record_answer updates the review_schedule row it read by its ctid: a row changed since
the read (a writer outside the users-row protocol) is never silently skipped nor
overwritten; the answer is refused with 40001 and writes nothing."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors


@pytest.fixture
def db(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        yield conn


def test_answer_refused_when_its_row_changed_after_the_read(db):
    user = db.execute("INSERT INTO users (email, display_name) VALUES ('t@example.test', 't') "
                      "RETURNING user_id").fetchone()[0]
    concept = db.execute("INSERT INTO concepts (code, name, category) VALUES ('t', 't', 'parking') "
                         "RETURNING concept_id").fetchone()[0]
    item = db.execute("INSERT INTO content (concept_id, question) VALUES (%s, 'q') "
                      "RETURNING content_id", (concept,)).fetchone()[0]
    db.execute("SELECT record_answer(%s, %s, true, 1000)", (user, item))
    # record_answer computes the quality between its read and its writes; a function
    # of that name earlier on the search_path stands in for an outside writer there.
    db.execute("CREATE SCHEMA meddle")
    db.execute("""
        CREATE FUNCTION meddle.answer_quality(p_c boolean, p_h integer, p_rt double precision,
                                              p_avg double precision) RETURNS smallint
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE public.review_schedule SET last_quality = last_quality;  -- a new row version
            RETURN public.answer_quality(p_c, p_h, p_rt, p_avg);
        END $$""")
    before = db.execute("SELECT count(*), (SELECT repetitions FROM review_schedule) "
                        "FROM learning_events").fetchone()
    db.execute("SET search_path = meddle, public")
    with pytest.raises(errors.SerializationFailure) as refused:
        db.execute("SELECT record_answer(%s, %s, true, 1000)", (user, item))
    assert "review_schedule" in str(refused.value)
    db.execute("RESET search_path")
    assert db.execute("SELECT count(*), (SELECT repetitions FROM review_schedule) "
                      "FROM learning_events").fetchone() == before
    # without the outside writer the same answer goes through
    db.execute("SELECT record_answer(%s, %s, true, 1000)", (user, item))
    assert db.execute("SELECT repetitions FROM review_schedule").fetchone()[0] == before[1] + 1
