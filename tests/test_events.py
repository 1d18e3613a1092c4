"""The event feed (#26): commit order per learner, at-least-once, resumable, never skipped.

Real PostgreSQL: writers that commit out of order, a consumer killed between handling a
batch and advancing, tens of thousands of answers through record_answers with a consumer
following them, the wake-up, pruning and its retention limit, the CLI.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import defaultdict
from datetime import datetime

import psycopg
import pytest

from conftest import REPO, popen_dmdb, run_dmdb, start_pgbouncer
from dmdb.events import (
    BEGINNING,
    Position,
    consume,
    create_consumer,
    get_consumer,
    lag,
    parse_target,
    prune,
    read_page,
)
from dmdb.events.consumers import ConsumerMoved, advance


def _catalogue(conn, users: int = 20, items: int = 10) -> tuple[list[int], list[int]]:
    user_ids = [r[0] for r in conn.execute(
        "INSERT INTO users (email, display_name) SELECT 'ev-' || g || '@example.test', 'L' || g "
        "FROM generate_series(1, %s) g RETURNING user_id", (users,))]
    concepts = [r[0] for r in conn.execute(
        "INSERT INTO concepts (code, name, category) SELECT 'evc' || g, 'C' || g, 'road_rules' "
        "FROM generate_series(1, 4) g RETURNING concept_id")]
    item_ids = [r[0] for r in conn.execute(
        "INSERT INTO content (concept_id, category, question) "
        "SELECT c, 'road_rules', 'Q' || c || '/' || g FROM unnest(%s::bigint[]) c, "
        "generate_series(1, %s) g RETURNING content_id", (concepts, max(1, items // 4)))]
    return user_ids, item_ids


@pytest.fixture
def feed(schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        users, items = _catalogue(conn)
    return schema_url, users, items


def _answer(conn, user, item, correct=True):
    return conn.execute("SELECT event_id FROM record_answer(%s, %s, %s, 3000)",
                        (user, item, correct)).fetchone()[0]


def _all_feed(conn, after=BEGINNING, limit=7):
    """Every event after `after`, in small pages (the page boundaries are part of the test)."""
    out = []
    while True:
        page = read_page(conn, after, limit)
        out += page.events
        after = page.last
        if page.caught_up:
            return out


def test_a_transaction_held_open_is_neither_skipped_nor_duplicated(feed):
    url, users, items = feed
    with psycopg.connect(url, autocommit=True) as reader, psycopg.connect(url) as slow, \
            psycopg.connect(url, autocommit=True) as fast:
        before = _answer(fast, users[0], items[0])
        consumer, _ = create_consumer(reader, "c1", parse_target("beginning"))
        # The slow writer draws its event id first and stays open; later ones commit.
        slow_id = _answer(slow, users[1], items[1])
        later = [_answer(fast, users[2 + i % 5], items[i % len(items)]) for i in range(12)]
        assert slow_id < min(later)

        seen: list = []
        consume(reader, "c1", lambda page: seen.extend(page.events), batch_size=5)
        # Only what committed below the open transaction's id: the later answers wait behind
        # it (read by event id they would be handed now, and the open one skipped for good).
        assert [e.position.id for e in seen] == [before]

        slow.commit()
        consume(reader, "c1", lambda page: seen.extend(page.events), batch_size=5)
    ids = [e.position.id for e in seen]
    assert sorted(ids) == sorted([before, slow_id, *later])
    assert len(ids) == len(set(ids))
    assert [e.position for e in seen] == sorted(e.position for e in seen)
    assert seen[1].position.id == slow_id  # its transaction id is the smallest of the rest


def test_a_learner_s_events_stay_in_commit_order_when_a_writer_got_its_id_before_the_lock(feed):
    """Transaction A gets its transaction id first (it wrote something else), then waits for
    the learner's lock held by B; B commits first. By transaction id alone A's answer would
    come first in the feed, before the answer it was computed on."""
    url, users, items = feed
    learner = users[0]
    with psycopg.connect(url) as a, psycopg.connect(url) as b, \
            psycopg.connect(url, autocommit=True) as reader:
        a.execute("INSERT INTO users (email, display_name) VALUES ('early@example.test', 'E')")
        b_event = _answer(b, learner, items[0])
        done = {}

        def answer_in_a():
            done["a"] = _answer(a, learner, items[1])
            a.commit()

        t = threading.Thread(target=answer_in_a)
        t.start()
        for _ in range(200):  # A waits for B's row lock
            waiting = reader.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s",
                (a.info.backend_pid,)).fetchone()[0]
            if waiting:
                break
            time.sleep(0.01)
        assert waiting, "A never waited for the learner's lock"
        b.commit()
        t.join(timeout=30)
        a_xid, b_xid = (reader.execute(
            "SELECT min(xmin::text::bigint) FROM learning_events WHERE event_id = %s",
            (eid,)).fetchone()[0] for eid in (done["a"], b_event))
        assert a_xid < b_xid  # the case itself: A's transaction id is the older one
        order = [e.position.id for e in _all_feed(reader)
                 if json.loads(e.line)["user_id"] == learner]
    assert order == [b_event, done["a"]]


def test_the_feed_carries_each_event_type(feed):
    url, users, items = feed
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE algorithm_settings SET scheduler = 'fsrs'")
        session_id, session_event = conn.execute(
            "SELECT * FROM start_session(%s, now(), 'ios', '{\"app\": \"7.1\"}')",
            (users[0],)).fetchone()
        answers = [conn.execute(
            "SELECT event_id, mastery, mastery_before, quality, next_review_at, newly_mastered, "
            "concept_id FROM record_answer(%s, %s, true, 2000, 0, 5, now(), %s, '{\"k\": 1}')",
            (users[0], items[0], session_id)).fetchone() for _ in range(12)]
        mastered = [a for a in answers if a[5]]
        assert len(mastered) == 1
        erased = conn.execute("SELECT emit_learner_erased(%s, now(), 'req-42')",
                              (users[0],)).fetchone()[0]
        conn.execute("DELETE FROM users WHERE user_id = %s", (users[0],))
        events = [json.loads(e.line) for e in _all_feed(conn)]
    # The erased learner's events left with them; the tombstone stays and says who.
    assert [e["type"] for e in events] == ["learner_erased"]
    assert events[0] == {**events[0], "event_id": erased, "user_id": users[0],
                         "request_ref": "req-42"}

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE algorithm_settings SET scheduler = 'sm2'")
        session_id, session_event = conn.execute("SELECT * FROM start_session(%s, now(), 'ios')",
                                                 (users[1],)).fetchone()
        correct = [i != 3 for i in range(12)]
        answers = [conn.execute(
            "SELECT event_id, mastery, mastery_before, quality, next_review_at, newly_mastered, "
            "concept_id FROM record_answer(%s, %s, %s, 2000, 0, NULL, now(), %s)",
            (users[1], items[i % 2], correct[i], session_id)).fetchone() for i in range(12)]
        events = [json.loads(e.line) for e in _all_feed(conn)][1:]
    by_id = {e["event_id"]: e for e in events}
    assert by_id[session_event]["type"] == "session_started"
    assert by_id[session_event]["session_id"] == session_id
    assert by_id[session_event]["device"] == "ios"
    for i, (event_id, mastery, before, quality, next_review, _, concept) in enumerate(answers):
        e = by_id[event_id]
        assert e["type"] == "question_answered" and e["user_id"] == users[1]
        assert (e["mastery_after"], e["mastery_before"], e["quality"]) == (mastery, before, quality)
        assert (e["is_correct"], e["content_id"]) == (correct[i], items[i % 2])
        assert datetime.fromisoformat(e["next_review_at"]) == next_review
        assert e["scheduler"] == "sm2" and e["concept_id"] == concept
        assert e["session_id"] == session_id
    kinds = [e["type"] for e in events]
    assert kinds.count("concept_mastered") == sum(a[5] for a in answers) >= 1
    # In feed order a learner's mastery event follows the answer that caused it.
    for i, e in enumerate(events):
        if e["type"] == "concept_mastered":
            assert events[i - 1]["type"] == "question_answered"
            assert events[i - 1]["mastery_after"] == e["mastery_after"]


def test_a_second_process_on_the_same_consumer_is_refused_at_its_advance(feed):
    url, users, items = feed
    with psycopg.connect(url, autocommit=True) as conn:
        create_consumer(conn, "twice", parse_target("beginning"))
        _answer(conn, users[0], items[0])
        page = read_page(conn, BEGINNING)
        advance(conn, "twice", BEGINNING, page.last, 1, None)
        with pytest.raises(ConsumerMoved):
            advance(conn, "twice", BEGINNING, page.last, 1, None)
        assert get_consumer(conn, "twice").position == page.last
        assert get_consumer(conn, "twice").events_handled == 1


def test_a_consumer_killed_after_handling_a_batch_gets_it_again_once(feed, tmp_path):
    url, users, items = feed
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [_answer(conn, users[i % 5], items[i % len(items)]) for i in range(12)]
    out = tmp_path / "handled.jsonl"
    env = {"DATABASE_URL": url}
    base = ["events", "consume", "--consumer", "k", "--batch-size", "5"]
    # The command takes the batch, then kills its dmdb before it can advance.
    done = run_dmdb([*base, "--from", "beginning", "--command",
                     f"cat >> {out}; kill -9 $PPID"], env, cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with psycopg.connect(url) as conn:
        assert get_consumer(conn, "k").position == BEGINNING
    done = run_dmdb([*base, "--command", f"cat >> {out}"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    handled = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    with psycopg.connect(url) as conn:
        feed_order = [r[0] for r in conn.execute(
            "SELECT event_id FROM learning_events WHERE feed_tx IS NOT NULL "
            "ORDER BY feed_tx, event_id")]
        consumer = get_consumer(conn, "k")
    assert set(ids) <= set(feed_order) and len(feed_order) > 5
    assert handled[:5] == feed_order[:5]  # the batch the killed run handled ...
    assert handled[5:] == feed_order      # ... comes again, once, then the rest once
    assert consumer.position.id == feed_order[-1]
    assert consumer.events_handled == len(feed_order)


def test_a_failing_command_leaves_the_position_and_says_so(feed, tmp_path):
    url, users, items = feed
    with psycopg.connect(url, autocommit=True) as conn:
        _answer(conn, users[0], items[0])
    env = {"DATABASE_URL": url}
    done = run_dmdb(["events", "consume", "--consumer", "f", "--from", "beginning",
                     "--command", "cat > /dev/null; exit 3"], env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "exited with 3" in done.stderr and "handed again" in done.stderr
    with psycopg.connect(url) as conn:
        assert get_consumer(conn, "f").position == BEGINNING
    done = run_dmdb(["events", "consume", "--consumer", "nobody"], env, cwd=tmp_path)
    assert done.returncode == 1 and "--from" in done.stderr


def test_many_answers_with_a_consumer_following_arrive_exactly_once_in_order(feed, tmp_path):
    """20,000 answers through record_answers from four writers over shared learners (the
    1M run is bench/bench_events.py --answers 1000000), a consumer following with the CLI."""
    url, _, items = feed
    with psycopg.connect(url, autocommit=True) as conn:
        learners, _ = _catalogue_more(conn, 300)
    env = {"DATABASE_URL": url}
    consumer = popen_dmdb(["events", "consume", "--consumer", "ml", "--from", "now", "--follow",
                           "--poll", "0.05", "--batch-size", "700"], env, cwd=tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(consumer.stdout), daemon=True)
    reader.start()
    for _ in range(300):
        with psycopg.connect(url) as conn:
            if get_consumer(conn, "ml") is not None:
                break
        time.sleep(0.05)
    acknowledged: list[int] = []
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for _ in range(10):
                    batch = [{"user_id": rnd.choice(learners), "content_id": rnd.choice(items),
                              "is_correct": rnd.random() < 0.8,
                              "response_time_ms": rnd.randint(500, 9000)} for _ in range(500)]
                    rows = conn.execute("SELECT event_id FROM record_answers(%s::jsonb)",
                                        (json.dumps(batch),)).fetchall()
                    acknowledged.extend(r[0] for r in rows)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    assert not errors, errors
    with psycopg.connect(url, autocommit=True) as conn:
        last = max(e for e in acknowledged)
        for _ in range(1200):
            (state,) = lag(conn, "ml")
            if state.behind == 0 and state.consumer.position.id >= last:
                break
            time.sleep(0.05)
        assert state.behind == 0
        db = conn.execute("SELECT event_id, user_id, event_type FROM learning_events "
                          "WHERE feed_tx IS NOT NULL ORDER BY event_id").fetchall()
    consumer.send_signal(signal.SIGINT)
    consumer.wait(timeout=30)
    reader.join(timeout=30)
    events = [json.loads(line) for line in lines]
    got = [e["event_id"] for e in events]
    assert len(acknowledged) == 20_000
    assert len(got) == len(set(got)), "an event was handed twice"
    answered = [e["event_id"] for e in events if e["type"] == "question_answered"]
    assert sorted(answered) == sorted(acknowledged)
    assert sorted(got) == [r[0] for r in db]
    by_learner = defaultdict(list)
    for e in events:
        by_learner[e["user_id"]].append(e["event_id"])
    # A learner's events are serialised by their lock and drawn under it: event id order is
    # their commit order, and the feed keeps it.
    assert all(ids == sorted(ids) for ids in by_learner.values())
    assert [e["position"] for e in events] == sorted(
        (e["position"] for e in events), key=lambda p: tuple(map(int, p.split(":"))))


def _catalogue_more(conn, n: int):
    ids = [r[0] for r in conn.execute(
        "INSERT INTO users (email, display_name) SELECT 'many-' || g || '@example.test', 'M' "
        "FROM generate_series(1, %s) g RETURNING user_id", (n,))]
    return ids, None


def test_lag_reset_and_the_thresholds(feed, tmp_path):
    url, users, items = feed
    env = {"DATABASE_URL": url}
    with psycopg.connect(url, autocommit=True) as conn:
        create_consumer(conn, "slow", parse_target("now"))
        ids = [_answer(conn, users[i % 3], items[i % 3], correct=False) for i in range(8)]
        (state,) = lag(conn, "slow")
        assert state.behind == 8 and state.status == "OK" and state.seconds >= 0
    done = run_dmdb(["events", "thresholds", "--consumer", "slow", "--warn-events", "5",
                     "--critical-events", "50"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_dmdb(["events", "lag", "--json"], env, cwd=tmp_path)
    (row,) = json.loads(done.stdout)["consumers"]
    assert (row["behind"], row["status"]) == (8, "WARNING")
    done = run_dmdb(["events", "thresholds", "--consumer", "slow", "--warn-events", "500"],
                    env, cwd=tmp_path)
    assert done.returncode == 2 and "warn <= critical" in done.stderr
    # Reset to an event: it is the next one handed.
    done = run_dmdb(["events", "reset", "--consumer", "slow", "--to", str(ids[5])], env,
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_dmdb(["events", "consume", "--consumer", "slow"], env, cwd=tmp_path)
    assert [json.loads(x)["event_id"] for x in done.stdout.splitlines()] == ids[5:]
    done = run_dmdb(["events", "list", "--json"], env, cwd=tmp_path)
    (c,) = json.loads(done.stdout)["consumers"]
    assert c["name"] == "slow" and c["position"].endswith(f":{ids[-1]}")


def test_prune_takes_what_every_consumer_passed_and_marks_a_dead_one_lost(feed, tmp_path):
    url, users, items = feed
    env = {"DATABASE_URL": url}
    with psycopg.connect(url, autocommit=True) as conn:
        create_consumer(conn, "live", parse_target("beginning"))
        create_consumer(conn, "dead", parse_target("beginning"))
        first = conn.execute("SELECT emit_learner_erased(%s)", (users[0],)).fetchone()[0]
        consume(conn, "live", lambda page: None)
        result = prune(conn)
        assert (result.deleted, result.tombstones_left) == (0, 1)  # "dead" has not read it
        consume(conn, "dead", lambda page: None)
        conn.execute("SELECT emit_learner_erased(%s)", (users[1],))
        consume(conn, "live", lambda page: None)
        assert prune(conn).deleted == 1  # the first: both passed it
        assert conn.execute("SELECT array_agg(event_id) FROM event_tombstones").fetchone()[0] \
            != [first]
        conn.execute("UPDATE event_tombstones SET recorded_at = now() - interval '40 days'")
    done = run_dmdb(["events", "prune", "--dry-run", "--json"], env, cwd=tmp_path)
    plan = json.loads(done.stdout)
    assert (plan["deleted"], plan["tombstones"], plan["lost_consumers"]) == (0, 1, ["dead"])
    done = run_dmdb(["events", "prune", "--max-age", "30d"], env, cwd=tmp_path)
    assert done.returncode == 0 and "marked lost: dead" in done.stdout
    done = run_dmdb(["events", "consume", "--consumer", "dead"], env, cwd=tmp_path)
    assert done.returncode == 1 and "lost events" in done.stderr and "reset" in done.stderr
    done = run_dmdb(["events", "reset", "--consumer", "dead", "--to", "now"], env, cwd=tmp_path)
    assert done.returncode == 0
    done = run_dmdb(["events", "consume", "--consumer", "dead"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_wake_up_is_one_notify_per_transaction_and_off_by_default(feed):
    url, users, items = feed
    batch = json.dumps([{"user_id": users[i % 4], "content_id": items[0], "is_correct": True,
                         "response_time_ms": 1000} for i in range(50)])
    with psycopg.connect(url, autocommit=True) as listener, \
            psycopg.connect(url, autocommit=True) as conn:
        listener.execute("LISTEN dmdb_events")

        def writes() -> int:
            conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (batch,))
            _answer(conn, users[5], items[1])
            conn.execute("SELECT * FROM start_session(%s)", (users[6],))
            listener.execute("SELECT 1")  # what has arrived is read
            return sum(1 for _ in listener.notifies(timeout=0.2))

        assert writes() == 0
        conn.execute("UPDATE algorithm_settings SET events_notify = true")
        assert writes() == 3


def test_tail_wakes_up_at_a_notify(feed, tmp_path):
    url, users, items = feed
    env = {"DATABASE_URL": url}
    assert run_dmdb(["events", "notify", "on"], env, cwd=tmp_path).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        first = _answer(conn, users[0], items[0])
        # Polling every hour: only the wake-up can bring the second event in time.
        tail = popen_dmdb(["events", "tail", "--from", "beginning", "--wake", "--poll", "3600"],
                          env, cwd=tmp_path)
        try:
            assert json.loads(tail.stdout.readline())["event_id"] == first
            second = _answer(conn, users[1], items[1])
            assert json.loads(tail.stdout.readline())["event_id"] == second
        finally:
            tail.send_signal(signal.SIGINT)
            tail.wait(timeout=30)


def test_reading_needs_the_feed_index_built(make_database, tmp_path):
    """A database with events before the feed existed: 0015 leaves those partitions to
    `dmdb indexes build`, and dmdb events refuses to read until then."""
    from dmdb.migrate import engine

    url = make_database(schema=False)
    project = engine.Project(REPO / "sql")
    with psycopg.connect(url, autocommit=True) as conn:
        engine.up(conn, project, to="0013_app_role_rules", lock_wait=30)
        users, items = _catalogue(conn, 2, 4)
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, now(), 'session_started')", (users[0],))
        engine.up(conn, project, lock_wait=30)
        old = conn.execute("SELECT count(*) FROM learning_events WHERE feed_tx IS NULL"
                           ).fetchone()[0]
        new = _answer(conn, users[1], items[1])
    env = {"DATABASE_URL": url}
    done = run_dmdb(["events", "tail", "--from", "beginning", "--no-follow"], env, cwd=tmp_path)
    assert done.returncode == 1
    assert "dmdb indexes build --table learning_events" in done.stderr
    assert run_dmdb(["indexes", "build"], env, cwd=tmp_path).returncode == 0
    done = run_dmdb(["events", "tail", "--from", "beginning", "--no-follow"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # Events written before the feed existed are not in it; the new one is.
    assert old == 1
    assert [json.loads(x)["event_id"] for x in done.stdout.splitlines()] == [new]


def test_positions_parse():
    assert parse_target("beginning").position == BEGINNING
    assert parse_target("12:34").position == Position(12, 34)
    assert parse_target("77").event_id == 77 and parse_target("now").kind == "now"
    assert Position(3, 9) < Position(4, 1) < Position(4, 2)
    for bad in ("", "x", "1:", "-1:2", "1:2:3", "0"):
        with pytest.raises(Exception, match="position|where to start|out of range"):
            parse_target(bad)


def test_the_publication_lets_a_standard_consumer_attach(feed):
    url, _, _ = feed
    with psycopg.connect(url) as conn:
        pub = conn.execute("SELECT pubinsert, pubupdate, pubdelete, pubviaroot FROM pg_publication "
                           "WHERE pubname = 'dmdb_events'").fetchone()
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'dmdb_events'")}
    assert pub == (True, False, False, True)
    assert tables == {"learning_events", "event_tombstones"}


def test_dm_app_may_not_emit_tombstones(feed):
    url, users, _ = feed
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE dm_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT emit_learner_erased(%s)", (users[0],))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO event_tombstones (user_id, erased_at) VALUES (1, now())")
        # ... but answers and sessions, as before
        conn.execute("SELECT * FROM start_session(%s)", (users[0],))


def test_events_commands_through_a_transaction_pooler(pgbouncer, tmp_path):
    """Polling needs no session: consume and tail work through PgBouncer in transaction
    mode and leave nothing behind; the LISTEN wake-up needs one, and is refused there."""
    bouncer_url, direct_url = pgbouncer
    with psycopg.connect(direct_url, autocommit=True) as conn:
        users, items = _catalogue(conn, 3, 4)
        ids = [_answer(conn, users[i % 3], items[i % 4]) for i in range(6)]
    env = {"DATABASE_URL": bouncer_url}
    done = run_dmdb(["events", "consume", "--consumer", "pooled", "--from", "beginning",
                     "--batch-size", "4"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = [json.loads(x)["event_id"] for x in done.stdout.splitlines()]
    assert set(ids) <= set(got) and len(got) == len(set(got))
    for args in (["events", "tail", "--wake", "--no-follow"],
                 ["events", "consume", "--consumer", "pooled", "--wake"]):
        done = run_dmdb(args, env, cwd=tmp_path)
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1
        assert "transaction pooler" in done.stderr and "DMDB_DIRECT_URL" in done.stderr
    # (the port spelled out: a direct URL without one takes the pooled URL's port)
    direct = direct_url if "port=" in direct_url else direct_url + "&port=5432"
    done = run_dmdb(["events", "tail", "--wake", "--no-follow", "--from", "beginning"],
                    {**env, "DMDB_DIRECT_URL": direct}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The reads set TimeZone for their transactions only: the pool's connections keep theirs.
    with psycopg.connect(direct_url) as conn:
        zone = conn.execute("SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'"
                            ).fetchone()[0]
    clients = [psycopg.connect(bouncer_url, prepare_threshold=None) for _ in range(4)]
    try:
        assert {c.execute("SHOW TimeZone").fetchone()[0] for c in clients} == {zone}
    finally:
        for c in clients:
            c.close()


@pytest.fixture
def pgbouncer(schema_db, tmp_path, embedded_only):
    import socket

    name, url = schema_db
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "pgb"
    done = run_dmdb(["pgbouncer", "config", "--out-dir", out, "--listen-port", port, "--json",
                     "--auth-type", "trust"], {"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bouncer_url = f"postgresql://postgres@127.0.0.1:{port}/{name}"
    proc = start_pgbouncer(out, bouncer_url)
    yield bouncer_url, url
    proc.terminate()
    proc.wait(timeout=10)


def test_the_feed_as_a_non_superuser_owner_on_the_managed_lane(managed, tmp_path):
    """TLS, SCRAM, an owner without superuser, PgBouncer in transaction mode (tests/managed.py)."""
    env_direct = {"DATABASE_URL": managed.owner_url}
    done = run_dmdb(["up"], env_direct, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(managed.owner_url, autocommit=True) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                                ).fetchone()[0]
        users, items = _catalogue_named(conn)
        ids = [_answer(conn, users[i % 2], items[i % 2]) for i in range(5)]
        tomb = conn.execute("SELECT emit_learner_erased(%s)", (users[0],)).fetchone()[0]
    env = {"DATABASE_URL": managed.pooled_owner_url}
    name = f"lane-{os.getpid()}"
    done = run_dmdb(["events", "consume", "--consumer", name, "--from", str(ids[0])], env,
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = [json.loads(x)["event_id"] for x in done.stdout.splitlines()]
    assert set(ids) | {tomb} <= set(got)
    done = run_dmdb(["events", "tail", "--wake", "--no-follow"], env, cwd=tmp_path)
    assert done.returncode == 1 and "DMDB_DIRECT_URL" in done.stderr
    done = run_dmdb(["events", "tail", "--wake", "--no-follow"],
                    {**env, "DMDB_DIRECT_URL": managed.owner_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_dmdb(["events", "lag", "--consumer", name, "--json"], env, cwd=tmp_path)
    assert json.loads(done.stdout)["consumers"][0]["behind"] == 0
    assert run_dmdb(["events", "drop", "--consumer", name], env, cwd=tmp_path).returncode == 0


def _catalogue_named(conn):
    tag = os.urandom(4).hex()
    users = [r[0] for r in conn.execute(
        "INSERT INTO users (email, display_name) SELECT 'lane-' || %s || g || '@example.test', "
        "'L' FROM generate_series(1, 2) g RETURNING user_id", (tag,))]
    concept = conn.execute("INSERT INTO concepts (code, name, category) VALUES (%s, 'C', "
                           "'road_rules') RETURNING concept_id", (f"lane-{tag}",)).fetchone()[0]
    items = [r[0] for r in conn.execute(
        "INSERT INTO content (concept_id, category, question) SELECT %s, 'road_rules', 'Q' || g "
        "FROM generate_series(1, 2) g RETURNING content_id", (concept,))]
    return users, items


def test_the_monitor_judges_each_consumer_by_its_thresholds(feed, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    url, users, items = feed
    env = {"DATABASE_URL": url}
    only = ["monitor", "--only", "event_consumers,event_retention"]
    done = run_dmdb([*only, "--json"], env, cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["event_consumers"]["status"] == "OK"
    assert "no consumers" in checks["event_consumers"]["summary"]
    with psycopg.connect(url, autocommit=True) as conn:
        create_consumer(conn, "fine", parse_target("now"))
        create_consumer(conn, "late", parse_target("now"))
        conn.execute("UPDATE event_consumers SET warn_events = 3, critical_events = 6 "
                     "WHERE name = 'late'")
        for i in range(4):
            _answer(conn, users[i], items[i])
        consume(conn, "fine", lambda page: None)
        conn.execute("SELECT emit_learner_erased(%s)", (users[9],))
    done = run_dmdb([*only, "--json"], env, cwd=tmp_path)
    assert json.loads(done.stdout)["status"] == "WARNING"  # the worst verdict
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    rows = {r["consumer"]: r for r in checks["event_consumers"]["rows"]}
    assert (rows["late"]["status"], rows["late"]["behind_events"]) == ("WARNING", 5)
    assert (rows["fine"]["status"], rows["fine"]["behind_events"]) == ("OK", 1)
    assert checks["event_retention"]["metrics"]["tombstones"] == 1
    with psycopg.connect(url, autocommit=True) as conn:
        _answer(conn, users[5], items[0])
        conn.execute("UPDATE event_consumers SET lost_at = now(), lost_reason = 'test' "
                     "WHERE name = 'fine'")
    done = run_dmdb([*only, "--check"], env, cwd=tmp_path)
    assert done.returncode == 2 and "CRITICAL" in done.stdout
    # Bytes kept for consumers against the slot thresholds (MB): the tombstones alone here.
    done = run_dmdb([*only, "--slot-wal-warn", "0.001", "--slot-wal-critical", "100", "--json"],
                    env, cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["event_retention"]["status"] == "WARNING"
    done = run_dmdb([*only, "--format", "prometheus"], env, cwd=tmp_path)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(done.stdout) for s in fam.samples}
    assert samples[("dmdb_event_consumer_lag_events", (("consumer", "late"),))] == 6
    assert samples[("dmdb_event_consumer_lost", (("consumer", "fine"),))] == 1
    assert samples[("dmdb_event_consumers", ())] == 2
    assert samples[("dmdb_event_retained_bytes", (("kind", "tombstones"), ("slot", "")))] > 0


def test_the_monitor_says_when_the_feed_is_not_installed(make_database, tmp_path):
    from dmdb.migrate import engine

    url = make_database(schema=False)
    with psycopg.connect(url, autocommit=True) as conn:
        engine.up(conn, engine.Project(REPO / "sql"), to="0013_app_role_rules", lock_wait=30)
    done = run_dmdb(["monitor", "--only", "event_consumers,event_retention", "--json"],
                    {"DATABASE_URL": url}, cwd=tmp_path)
    checks = json.loads(done.stdout)["checks"]
    assert [c["status"] for c in checks] == ["OK", "OK"]
    assert all("not installed" in c["summary"] for c in checks)
