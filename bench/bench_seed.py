"""Benchmark `dmdb seed`: N learners x M answers through record_answers on the embedded server.

Each run seeds the database again (`seed reset`) and is followed by its baseline: the
same number of bare learning_events rows, one multi-row INSERT per 1,000 rows, over the
same number of connections (the learning state's cost is the ratio). Prints a table of
the runs and their medians: the whole seed and its two phases (the answers through
record_answers; the rollup and VACUUM (ANALYZE) after them), the server's CPU time per
event (all its processes, from /proc: unlike a rate, hardly moved by other load on the
machine), WAL bytes per event and the CPU seconds the seed's own Python process spent
(it shares the machine's cores with the server it feeds).

    python bench/bench_seed.py --users 10000 --answers 100      # the issue's 1.1M events
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

GOAL_SECONDS = 15.0


def bare_insert(conninfo: dict, users: list[int], total: int, jobs: int) -> float:
    """Seconds to INSERT `total` bare event rows, 1,000 per statement, over `jobs` connections."""
    import psycopg

    per_job = total // jobs

    def insert(job: int) -> None:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")  # as the seed's sessions
            done = 0
            while done < per_job:
                n = min(1000, per_job - done)
                conn.execute(
                    "INSERT INTO bench_events (user_id, occurred_at, event_type, is_correct, "
                    "response_time_ms) SELECT u, now() - random() * interval '90 days', "
                    "'question_answered', true, 4000 FROM unnest(%s::bigint[]) AS u",
                    ([users[(job + done + i) % len(users)] for i in range(n)],), prepare=True)
                done += n

    started = time.monotonic()
    threads = [threading.Thread(target=insert, args=(j,)) for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary server")
    args = parser.parse_args()

    import psycopg
    from bench_record_answer import server_cpu

    from dmdb.config import Settings
    from dmdb.learning.seed import clear, seed, tables_to_empty
    from dmdb.migrate import engine
    from dmdb.server.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="dmdb-bench-seed-"))
    server = EmbeddedServer(home)  # durable settings, as a user's embedded server
    info = server.start(dbname="bench")
    settings = Settings(host=info.socket_dir, port=info.port, dbname="bench", user="postgres",
                        home=home)
    conninfo = settings.conninfo()
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    load = os.getloadavg()[0]
    rows: dict[str, list[float]] = {
        "seed, whole (s)": [], "  answers written (s)": [], "  rollup, VACUUM (ANALYZE) (s)": [],
        "seed, events/s": [], "bare INSERT of as many rows (s)": [],
        "ratio seed / bare rate": [], "seed's Python CPU (s)": [],
        "server CPU per event (µs)": [], "WAL bytes per event": []}
    try:
        project = engine.Project(REPO / "sql")
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            engine.up(conn, project)
            conn.execute("CREATE TABLE bench_events (LIKE learning_events INCLUDING ALL)")
        lsn = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
        events = 0
        for run in range(args.runs):
            with psycopg.connect(**conninfo, autocommit=True) as conn:
                if run > 0:  # the seed itself is measured (a reset writes on one connection)
                    clear(conn, tables_to_empty(conn))
                wal_before = conn.execute(lsn).fetchone()[0]
            cpu, server_before = time.process_time(), server_cpu(postmaster)
            started, loaded = time.monotonic(), [0.0]

            def progress(done: int, total: int, loaded=loaded) -> None:
                if done == total:
                    loaded[0] = time.monotonic()

            result = seed(settings, project, users=args.users, answers_per_user=args.answers,
                          jobs=args.jobs, random_seed=1, progress=progress)
            cpu = time.process_time() - cpu
            time.sleep(0.3)  # the seed's backends exit and are reaped: their CPU moves to cutime
            server_used = server_cpu(postmaster) - server_before
            with psycopg.connect(**conninfo, autocommit=True) as conn:
                wal = conn.execute(lsn).fetchone()[0] - wal_before
                users = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY 1")]
                conn.execute("TRUNCATE bench_events")
            events = result.events
            bare = bare_insert(conninfo, users, events, args.jobs)
            rows["seed, whole (s)"].append(result.seconds)
            rows["  answers written (s)"].append(loaded[0] - started)
            rows["  rollup, VACUUM (ANALYZE) (s)"].append(started + result.seconds - loaded[0])
            rows["seed, events/s"].append(result.events_per_second)
            rows["bare INSERT of as many rows (s)"].append(bare)
            rows["ratio seed / bare rate"].append(bare / result.seconds)
            rows["seed's Python CPU (s)"].append(cpu)
            rows["server CPU per event (µs)"].append(server_used / events * 1e6)
            rows["WAL bytes per event"].append(wal / events)

        print(f"seed: {args.users:,} learners x {args.answers} answers = {events:,} events, "
              f"{args.jobs} jobs, {args.runs} runs (each followed by its baseline); "
              f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at the end, "
              f"{os.cpu_count()} CPUs")
        head = ["measure"] + [f"run {i + 1}" for i in range(args.runs)] + ["median"]
        lines = [head]
        for name, values in rows.items():
            fmt = "{:,.2f}" if "ratio" in name else ("{:,.1f}" if "(s)" in name else "{:,.0f}")
            lines.append([name] + [fmt.format(v) for v in values]
                         + [fmt.format(statistics.median(values))])
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        for n, line in enumerate(lines):
            print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
            if n == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        median = statistics.median(rows["seed, whole (s)"])
        print(f"goal: {events:,} events in < {GOAL_SECONDS:g} s -> "
              f"{'met' if median < GOAL_SECONDS else 'NOT met'} (median {median:.1f} s)")
    finally:
        if not args.keep:
            server.destroy()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
