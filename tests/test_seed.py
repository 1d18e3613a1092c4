"""dmdb seed: determinism, integrity, the simulation's signal, reset, refusal on an
out-of-date schema."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timezone

import psycopg
import pytest

from conftest import REPO, row_counts

SMALL = ["--users", "40", "--answers", "30", "--days", "100", "--quiet",
         "--now", "2026-11-20T12:00:00Z"]


def _seed(cli, url, *extra):
    result = cli(["seed", *SMALL, *extra], url=url)
    assert result.exit_code == 0, result.stderr
    return result


def _snapshot(url: str) -> dict:
    """The seeded data in a canonical order, without event ids (drawn in commit order)."""
    queries = {
        "users": "SELECT email, display_name, ability_hint, xp, current_streak, longest_streak, "
                 "last_active_date, cognitive_patterns::text FROM users ORDER BY email",
        "knowledge": "SELECT u.email, c.code, round(k.mastery_probability::numeric, 9), k.attempts, "
                     "k.correct_attempts, k.last_interaction FROM knowledge_states k "
                     "JOIN users u USING (user_id) JOIN concepts c USING (concept_id) ORDER BY 1, 2",
        "reviews": "SELECT u.email, r.content_id, round(r.easiness::numeric, 9), r.interval_days, "
                   "r.repetitions, r.next_review_at, r.last_quality FROM review_schedule r "
                   "JOIN users u USING (user_id) ORDER BY 1, 2",
        "events": "SELECT u.email, e.occurred_at, e.event_type, e.content_id, e.is_correct, "
                  "e.response_time_ms, e.quality, round(e.mastery_after::numeric, 9) "
                  "FROM learning_events e JOIN users u USING (user_id) ORDER BY 1, 2, 3, 4",
        "content": "SELECT content_id, total_attempts, correct_attempts FROM content ORDER BY 1",
        "arms": "SELECT content_id, pulls, round(reward_sum::numeric, 6) FROM bandit_arms ORDER BY 1",
    }
    with psycopg.connect(url) as conn:
        return {k: conn.execute(q).fetchall() for k, q in queries.items()}


def test_same_seed_same_data_other_seed_other_data(cli, make_database):
    first, second, third = make_database(), make_database(), make_database()
    _seed(cli, first, "--random-seed", "7")
    _seed(cli, second, "--random-seed", "7", "--jobs", "1")
    _seed(cli, third, "--random-seed", "8")
    a, b, c = _snapshot(first), _snapshot(second), _snapshot(third)
    # One job or two: the same rows (event ids aside, which the snapshot leaves out).
    assert a == b
    assert a["events"] and a["knowledge"] and a["reviews"]
    assert a["users"] != c["users"]


def test_counts_integrity_and_partitions(cli, schema_url):
    result = cli(["seed", *SMALL, "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["users"] == 40 and summary["answers"] == 40 * 30
    assert summary["concepts"] >= 60 and summary["items"] >= 300
    with psycopg.connect(schema_url) as conn:
        answered = conn.execute(
            "SELECT count(*) FROM learning_events WHERE event_type = 'question_answered'").fetchone()[0]
        assert answered == 40 * 30
        assert summary["events"] == conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
        # referential integrity of the columns that carry no foreign key
        orphans = conn.execute(
            "SELECT count(*) FROM learning_events e WHERE (e.content_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM content c WHERE c.content_id = e.content_id)) OR (e.concept_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM concepts c WHERE c.concept_id = e.concept_id))").fetchone()[0]
        assert orphans == 0
        # the history spans several months, each in its own partition, none in DEFAULT
        default_rows = conn.execute("SELECT count(*) FROM learning_events_default").fetchone()[0]
        assert default_rows == 0
        assert len(summary["partitions_touched"]) >= 3
        # the partitions reported are those that hold rows (the seed finds them without a
        # scan of the whole table)
        holding = [r[0] for r in conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM learning_events ORDER BY 1")]
        assert summary["partitions_touched"] == holding
        # the data tables were vacuumed and analysed (on two connections), the users rows
        # the batches updated are cleaned up
        stats = {r[0]: r[1:] for r in conn.execute(
            "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL, n_dead_tup "
            "FROM pg_stat_user_tables WHERE relname IN ('users', 'review_schedule', "
            "'knowledge_states_p0', 'content', 'bandit_arms') OR relname = %s",
            (holding[0].split(".")[-1],))}
        assert len(stats) == 6, stats
        assert all(vacuumed and analysed for vacuumed, analysed, _ in stats.values()), stats
        assert stats["users"][2] == 0
        # rollup ran: content counters equal the events
        mismatch = conn.execute(
            "SELECT count(*) FROM content c WHERE c.total_attempts <> (SELECT count(*) FROM "
            "learning_events e WHERE e.content_id = c.content_id AND e.event_type = "
            "'question_answered')").fetchone()[0]
        assert mismatch == 0
        variants = conn.execute(
            "SELECT count(*) FROM content WHERE parent_content_id IS NOT NULL").fetchone()[0]
        assert variants > 0
        categories = conn.execute("SELECT count(DISTINCT category) FROM concepts").fetchone()[0]
        assert categories == 8


def test_higher_ability_reaches_higher_mastery(cli, schema_url):
    result = cli(["seed", "--users", "120", "--answers", "40", "--quiet"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    with psycopg.connect(schema_url) as conn:
        rows = conn.execute(
            "SELECT u.ability_hint, avg(k.mastery_probability) FROM users u "
            "JOIN knowledge_states k USING (user_id) GROUP BY u.user_id, u.ability_hint").fetchall()
    rows.sort()
    third = len(rows) // 3
    low = sum(m for _, m in rows[:third]) / third
    high = sum(m for _, m in rows[-third:]) / third
    assert high > low + 0.05, (low, high)


def test_reset_gives_the_same_counts_as_a_fresh_seed(cli, make_database):
    fresh, reseeded = make_database(), make_database()
    _seed(cli, fresh)
    cli(["seed", "--users", "5", "--answers", "5", "--quiet", "--random-seed", "3"],
        url=reseeded)
    again = cli(["reset", *SMALL, "--yes"], url=reseeded)
    assert again.exit_code == 0, again.stderr
    assert row_counts(fresh) == row_counts(reseeded)
    assert _snapshot(fresh)["users"] == _snapshot(reseeded)["users"]  # ids restarted too
    # `dmdb seed --reset` is the same reset
    cli(["seed", "--reset", "--yes", "--users", "3", "--answers", "3", "--quiet"], url=reseeded)
    assert row_counts(reseeded)["users"] == 3
    again = cli(["seed", "--reset", "--yes", *SMALL], url=reseeded)
    assert again.exit_code == 0, again.stderr
    assert row_counts(fresh) == row_counts(reseeded)


def test_the_former_seed_seed_and_seed_reset_still_work(cli, schema_url):
    first = cli(["seed", "seed", "--users", "4", "--answers", "3", "--quiet"], url=schema_url)
    assert first.exit_code == 0, first.stderr
    assert row_counts(schema_url)["users"] == 4
    again = cli(["seed", "reset", "--yes", "--users", "6", "--answers", "3", "--quiet"],
                url=schema_url)
    assert again.exit_code == 0, again.stderr
    assert row_counts(schema_url)["users"] == 6
    stray = cli(["seed", "sed", "--users", "4"], url=schema_url)
    assert stray.exit_code == 2 and "'sed'" in stray.stderr
    assert row_counts(schema_url)["users"] == 6


def test_seed_users_50_with_defaults_otherwise(cli, schema_url):
    """The issue's `dmdb seed --users 50`: no subcommand, every other option defaulted."""
    result = cli(["seed", "--users", "50", "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["users"] == 50 and row_counts(schema_url)["users"] == 50
    assert summary["answers"] == 50 * 100  # --answers defaults to 100 per learner


def test_seeding_twice_and_reset_without_yes_are_refused(cli, schema_url):
    _seed(cli, schema_url)
    again = cli(["seed", *SMALL], url=schema_url)
    assert again.exit_code == 1 and "dmdb reset" in again.stderr
    for args in (["reset", *SMALL], ["seed", "--reset", *SMALL]):
        no_yes = cli(args, url=schema_url)
        assert no_yes.exit_code == 2 and "--yes" in no_yes.stderr
    assert row_counts(schema_url)["users"] == 40


def test_out_of_date_schema_is_a_clear_error(cli, empty_url):
    result = cli(["seed", *SMALL], url=empty_url)
    assert result.exit_code == 1
    assert "has no dmdb schema" in result.stderr and "dmdb up" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_catalogue_is_acyclic_and_simulation_is_pure():
    from dmdb.learning import seed

    catalogue = seed.load_catalogue()
    order = seed.learning_order(catalogue)
    position = {code: i for i, code in enumerate(order)}
    for concept in catalogue.concepts:
        for prerequisite in concept.prerequisites:
            assert position[prerequisite] < position[concept.code]
    items_by_concept = {}
    for i, item in enumerate(catalogue.items):
        items_by_concept.setdefault(item.concept_code, []).append(i)
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)

    def run(seed_value):
        return seed.simulate_learner(random.Random(seed_value), 0, 0.5, catalogue, order,
                                     items_by_concept, 50, 90, now)

    assert run(1) == run(1)
    assert run(1) != run(2)
    history = run(1)
    assert len(history) == 50
    assert all(a.answered_at <= now for a in history)
    assert [a.answered_at for a in history] == sorted(a.answered_at for a in history)


def test_p_correct_matches_3pl():
    from dmdb.learning.seed import Item, p_correct

    item = Item("r", "c", "q", {}, difficulty=0.5, discrimination=1.2, guess_parameter=0.2,
                version=1, variant_of=None, media={})
    assert p_correct(0.5, item) == pytest.approx(0.2 + 0.8 / 2)
    assert p_correct(-10, item) == pytest.approx(0.2, abs=1e-6)
    assert p_correct(10, item) == pytest.approx(1.0, abs=1e-6)


def test_data_files_ship_with_the_package():
    from dmdb import resources

    assert (resources.data_dir() / "concepts.csv").exists()
    assert (REPO / "dmdb" / "data" / "content.csv").exists()


def test_dry_run_plans_and_changes_nothing(cli, schema_url):
    result = cli(["seed", *SMALL, "--dry-run", "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["answers"] == 40 * 30 and plan["events"] == 0
    # 100 days before 2026-11-20 is in August: the months August to November the
    # migration did not create (it made the current month and three ahead)
    with psycopg.connect(schema_url) as conn:
        months = [f"learning_events_2026_{m:02d}" for m in (8, 9, 10, 11)]
        absent = [m for m in months
                  if conn.execute("SELECT to_regclass(%s) IS NULL", (m,)).fetchone()[0]]
    assert absent and plan["partitions_to_create"] == absent
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM concepts").fetchone()[0] == 0
        assert conn.execute(
            "SELECT to_regclass('learning_events_2026_08') IS NULL").fetchone()[0]
    _seed(cli, schema_url)
    reset_plan = cli(["reset", *SMALL, "--dry-run", "--json"], url=schema_url)
    assert reset_plan.exit_code == 0, reset_plan.stderr
    assert "learning_events" in json.loads(reset_plan.stdout)["tables_to_clear"]
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 40


def test_batches_made_ahead_keep_their_order_errors_and_stop():
    from dmdb.learning.seed import ahead

    assert list(ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("simulation failed")

    got = []
    with pytest.raises(ValueError, match="simulation failed"):
        for item in ahead(failing()):
            got.append(item)
    assert got == [1]
    # A consumer that stops early (a batch failed on the server) stops the maker too.
    made = []

    def endless():
        n = 0
        while True:
            made.append(n)
            yield n
            n += 1

    before = set(threading.enumerate())
    stream = ahead(endless(), depth=2)
    assert next(stream) == 0
    assert len(set(threading.enumerate()) - before) == 1  # the simulating thread
    stream.close()
    assert len(made) <= 4  # the one taken, up to depth queued, one being made
    # close() returns once the simulating thread has ended: nothing more is made
    assert set(threading.enumerate()) - before == set()
