"""Benchmark record_answer / record_answers with the FSRS-6 scheduler against SM-2, same run.

    python bench/bench_scheduler.py [URL] [--seconds 3] [--rounds 3] [--fast] [--users 2000]

URL: a database with the dmdb schema applied (migrations are applied if it has none);
its algorithm_settings.scheduler is restored at the end. Without URL an embedded
PostgreSQL 18 is started in a temporary directory (--fast: fsync off) and removed
afterwards. The benchmark adds its own users/concepts/items ('bench-<run>-N@example.invalid').

Both schedulers' states are kept on every answer (the choice only picks which due goes
into next_review_at), so the two figures are expected to be equal; the phases alternate
(SM-2, FSRS, SM-2, FSRS, ...) so that load from elsewhere on the machine hits both alike.

Prints, per scheduler, the median over the rounds of:
  1. record_answer, 2 connections, one answer per transaction: answers/s
  2. record_answers, batches of 1,000 answers per call, 1 connection: answers/s
and the ratios FSRS / SM-2; then the cost of the arithmetic alone: µs per sm2_step and
per fsrs_step call (100,000 calls in one query).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
from bench_record_answer import (  # this script's directory
    seed as seed_catalogue,
)
from bench_record_answer import (
    start_bench_server,
    stop_bench_server,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def seed(url: str, n_users: int) -> tuple[list[int], list[int]]:
    """The same learners and catalogue as bench_record_answer's, item ids only."""
    users, items = seed_catalogue(url, n_users)
    return users, [content_id for content_id, _concept in items]


def run_threads(n: int, seconds: float, work) -> float:
    """work(thread_index, stop_event) -> count in n threads; the total count per second."""
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
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - started)


def bench_single(url, users, items, seconds, n_conn=2) -> float:
    def work(i, stop):
        rnd = random.Random(i)
        mine = users[i::n_conn]
        done = 0
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("SELECT mastery FROM record_answer(%s, %s, %s, %s, p_quality => %s)",
                             (rnd.choice(mine), rnd.choice(items), rnd.random() < 0.7,
                              rnd.randint(500, 9000), rnd.randint(0, 5)), prepare=True)
                done += 1
        return done

    return run_threads(n_conn, seconds, work)


def bench_batch(url, users, items, seconds, size=1000) -> float:
    def work(i, stop):
        rnd = random.Random(100 + i)
        done = 0
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                batch = [{"user_id": rnd.choice(users), "content_id": rnd.choice(items),
                          "is_correct": rnd.random() < 0.7, "response_time_ms": rnd.randint(500, 9000),
                          "quality": rnd.randint(0, 5)} for _ in range(size)]
                conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
                done += size
        return done

    return run_threads(1, seconds, work)


def step_cost_us(url) -> tuple[float, float]:
    """µs per call of sm2_step and of fsrs_step (a Review-state card), 100,000 calls each."""
    n = 100_000
    with psycopg.connect(url, autocommit=True) as conn:
        def timed(query):
            conn.execute(query, (1000,))
            started = time.perf_counter()
            conn.execute(query, (n,))
            return (time.perf_counter() - started) / n * 1e6

        sm2 = timed("SELECT count((sm2_step(2.5, 6 + g %% 30, 2, g %% 6)).interval_days) "
                    "FROM generate_series(1, %s) g")
        fsrs = timed("""SELECT count((fsrs_step(2::smallint, NULL, 10 + g %% 50, 5.0,
                                         '2025-01-01Z', 1 + g %% 4, '2025-01-20Z',
                                         s.fsrs_parameters, s.fsrs_desired_retention,
                                         s.fsrs_learning_steps, s.fsrs_relearning_steps,
                                         s.fsrs_maximum_interval)).due)
                          FROM generate_series(1, %s) g, algorithm_settings s""")
    return sm2, fsrs


def ensure_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        has = conn.execute("SELECT to_regclass('public.algorithm_settings') IS NOT NULL").fetchone()[0]
        if not has:
            from dmdb.migrate import engine

            engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)


def set_scheduler(url: str, scheduler: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT set_scheduler(%s, false)", (scheduler,))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (default: embedded server)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="SM-2/FSRS phase pairs")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--fast", action="store_true",
                        help="embedded server without fsync (throw-away cluster)")
    args = parser.parse_args()

    home = server = None
    url = args.url
    if url is None:
        server, home, url = start_bench_server(args.fast)
    original = None
    try:
        ensure_schema(url)
        with psycopg.connect(url) as conn:
            original = conn.execute("SELECT scheduler FROM algorithm_settings").fetchone()[0]
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')").fetchall())
        users, items = seed(url, args.users)
        print(f"server {settings.get('server_version')}, fsync={settings.get('fsync')}; "
              f"{len(users)} users, {len(items)} items, {args.rounds} rounds of "
              f"{args.seconds:g} s per scheduler and phase")
        bench_batch(url, users, items, 1.0)  # warm-up: plans cached, rows partly created
        bench_single(url, users, items, 1.0)
        figures: dict[str, dict[str, list[float]]] = {
            s: {"single": [], "batch": []} for s in ("sm2", "fsrs")}
        for _ in range(args.rounds):
            for scheduler in ("sm2", "fsrs"):
                set_scheduler(url, scheduler)
                figures[scheduler]["single"].append(bench_single(url, users, items, args.seconds))
                figures[scheduler]["batch"].append(bench_batch(url, users, items, args.seconds))
        med = {s: {k: statistics.median(v) for k, v in f.items()} for s, f in figures.items()}
        for label, key in (("record_answer  (2 conns, 1 answer/txn)", "single"),
                           ("record_answers (1 conn, 1,000/call)  ", "batch")):
            print(f"{label}  SM-2 {med['sm2'][key]:9,.0f}/s  FSRS {med['fsrs'][key]:9,.0f}/s  "
                  f"FSRS/SM-2 {med['fsrs'][key] / med['sm2'][key]:.2f}")
        sm2_us, fsrs_us = step_cost_us(url)
        print(f"arithmetic alone: sm2_step {sm2_us:.2f} µs, fsrs_step {fsrs_us:.2f} µs per call")
    finally:
        if original is not None and args.url is not None:
            set_scheduler(url, original)
        stop_bench_server(server, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
