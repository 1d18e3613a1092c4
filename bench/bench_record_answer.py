"""Benchmark record_answer / record_answers against a bare INSERT of the same event row.

    python bench/bench_record_answer.py [URL] [--seconds 5] [--fast] [--users 2000]

URL: a database with the dmdb schema applied (migrations are applied if it has none).
Without URL an embedded PostgreSQL 18 is started in a temporary directory (durable
settings, as `dmdb` runs it; --fast: fsync/synchronous_commit/full_page_writes off) and
removed afterwards. The benchmark adds its own users/concepts/items (emails
'bench-<run>-N@example.invalid') and the events it writes; on a URL it leaves them.

Prints:
  1. bare INSERT INTO learning_events, 2 connections, one row per transaction: rows/s
  2. record_answer, 2 connections, one answer per transaction: answers/s and the ratio
     to (1) (goal >= 0.7)
  3. record_answers, batches of 1,000 answers per call (one transaction each): answers/s
     with 1 connection, and with 2 connections whose batches hold disjoint users (as a
     pipeline partitioned by user_id delivers them; goal >= 20,000)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CONCEPTS = 40
ITEMS_PER_CONCEPT = 10

INSERT_EVENT = """
INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id,
                             session_id, is_correct, response_time_ms, hints_used, quality,
                             mastery_before, mastery_after, response_data, context_data)
VALUES (%s, now(), 'question_answered', %s, %s, NULL, %s, %s, 0, %s, %s, %s,
        jsonb_build_object('predicted_correct', %s::double precision), '{}')
"""


def seed(url: str, n_users: int) -> tuple[list[int], list[tuple[int, int]]]:
    run = uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        users = [r[0] for r in conn.execute(
            """INSERT INTO users (email, display_name)
               SELECT 'bench-' || %s || '-' || g || '@example.invalid', 'bench ' || g
                 FROM generate_series(1, %s) g
               RETURNING user_id""", (run, n_users))]
        concepts = [r[0] for r in conn.execute(
            """INSERT INTO concepts (code, name, category)
               SELECT 'bench-' || %s || '-' || g, 'bench concept ' || g, 'road_rules'
                 FROM generate_series(1, %s) g
               RETURNING concept_id""", (run, N_CONCEPTS))]
        items = [(r[0], r[1]) for r in conn.execute(
            """INSERT INTO content (concept_id, category, question)
               SELECT c, 'road_rules', 'bench question ' || c || '/' || g
                 FROM unnest(%s::bigint[]) c, generate_series(1, %s) g
               RETURNING content_id, concept_id""", (concepts, ITEMS_PER_CONCEPT))]
        conn.execute("ANALYZE users")
        conn.execute("ANALYZE content")
    return users, items


def run_threads(n: int, seconds: float, work) -> int:
    """Run work(thread_index, stop_event) -> count in n threads; return the total count."""
    stop = threading.Event()
    counts = [0] * n
    errors: list[BaseException] = []

    def body(i):
        try:
            counts[i] = work(i, stop)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts)


def bench_bare_insert(url, users, items, seconds, n_conn=2):
    def work(i, stop):
        rnd = random.Random(i)
        done = 0
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                item, concept = rnd.choice(items)
                conn.execute(INSERT_EVENT, (rnd.choice(users), concept, item, True,
                                            rnd.randint(500, 9000), 5, 0.3, 0.5, 0.4),
                             prepare=True)
                done += 1
        return done

    started = time.perf_counter()
    n = run_threads(n_conn, seconds, work)
    return n / (time.perf_counter() - started)


def bench_record_answer(url, users, items, seconds, n_conn=2):
    def work(i, stop):
        rnd = random.Random(100 + i)
        done = 0
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                item, _ = rnd.choice(items)
                conn.execute("SELECT mastery FROM record_answer(%s, %s, %s, %s)",
                             (rnd.choice(users), item, rnd.random() < 0.7,
                              rnd.randint(500, 9000)), prepare=True).fetchone()
                done += 1
        return done

    started = time.perf_counter()
    n = run_threads(n_conn, seconds, work)
    return n / (time.perf_counter() - started)


def make_batch(rnd, users, items, size=1000):
    answers = []
    for _ in range(size):
        item, _ = rnd.choice(items)
        answers.append({"user_id": rnd.choice(users), "content_id": item,
                        "is_correct": rnd.random() < 0.7,
                        "response_time_ms": rnd.randint(500, 9000)})
    return json.dumps(answers)


def bench_record_answers(url, users, items, seconds, n_conn):
    # Batches are built before timing; with 2 connections each one gets its own users.
    shares = [users[i::n_conn] for i in range(n_conn)]

    def work(i, stop):
        rnd = random.Random(200 + i)
        batches = [make_batch(rnd, shares[i], items) for _ in range(8)]
        done = 0
        with psycopg.connect(url, autocommit=True) as conn:
            k = 0
            while not stop.is_set():
                conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)",
                             (batches[k % len(batches)],), prepare=True).fetchone()
                k += 1
                done += 1000
        return done

    started = time.perf_counter()
    n = run_threads(n_conn, seconds, work)
    return n / (time.perf_counter() - started)


def ensure_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        has = conn.execute("SELECT to_regproc('public.record_answers') IS NOT NULL").fetchone()[0]
        if not has:
            from dmdb import migrations

            migrations.up(conn, migrations.Project(REPO / "sql"), lock_wait=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (default: embedded server)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--fast", action="store_true",
                        help="embedded server without fsync (throw-away cluster)")
    args = parser.parse_args()

    home = None
    server = None
    url = args.url
    if url is None:
        from dmdb.embedded import EmbeddedServer

        home = Path(tempfile.mkdtemp(prefix="dmdb-bench-"))
        server = EmbeddedServer(home, fast=args.fast)
        info = server.start(dbname="postgres")
        with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE dmdb_bench")
        url = f"postgresql://postgres@/dmdb_bench?host={info.socket_dir}&port={info.port}"
    try:
        ensure_schema(url)
        users, items = seed(url, args.users)
        with psycopg.connect(url) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')").fetchall())
        print(f"server {settings.get('server_version')}, fsync={settings.get('fsync')}, "
              f"synchronous_commit={settings.get('synchronous_commit')}; "
              f"{len(users)} users, {len(items)} items, {args.seconds:g} s per phase")
        # Warm-up: plans cached, knowledge_states/review_schedule rows partly created.
        bench_record_answers(url, users, items, 1.0, 1)
        bench_record_answer(url, users, items, 1.0)

        bare = bench_bare_insert(url, users, items, args.seconds)
        print(f"bare INSERT learning_events  (2 conns, 1 row/txn):    {bare:10,.0f} rows/s")
        single = bench_record_answer(url, users, items, args.seconds)
        print(f"record_answer                (2 conns, 1 answer/txn): {single:10,.0f} answers/s"
              f"   ratio {single / bare:.2f} (goal >= 0.7)")
        batch1 = bench_record_answers(url, users, items, args.seconds, 1)
        print(f"record_answers, 1,000/call   (1 conn):                {batch1:10,.0f} answers/s"
              f"   (goal >= 20,000)")
        batch2 = bench_record_answers(url, users, items, args.seconds, 2)
        print(f"record_answers, 1,000/call   (2 conns, users split):  {batch2:10,.0f} answers/s")
    finally:
        if server is not None:
            server.destroy()
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
