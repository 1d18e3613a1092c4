"""Creating a month whose rows wait in DEFAULT, while readers count the table.

Creates a scratch database on the server of DATABASE_URL (its role needs CREATEDB),
applies the shipped schema, puts N rows of a future month into the DEFAULT partition
(plus a few in the current month), then runs `dmdb.partitions.run(create)` for that
month while R connections count learning_events in a loop with unprepared statements.
Prints the move's time and rate, the readers' statement latencies before (the
same-run baseline) and during the create, and how many counts were short (must be 0).
Drops the scratch database at the end.

    DATABASE_URL="$(dmdb server url)" python bench/bench_partition_move.py --rows 2000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

import psycopg
from psycopg import sql

from dmdb import partitions, resources
from dmdb.migrate.engine import Project, up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=3)
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        raise SystemExit("set DATABASE_URL to a server where this role may CREATE DATABASE")

    name = f"dmdb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            up(conn, Project(resources.sql_dir()), lock_wait=30)
            today = conn.execute("SELECT now()").fetchone()[0]
            month = partitions.add_months(partitions.month_of(today), 8)
            lo = partitions.month_bounds(month)[0]
            uid = conn.execute("INSERT INTO users (email, display_name) VALUES "
                               "('bench@example.com', 'Bench') RETURNING user_id").fetchone()[0]
            t0 = time.monotonic()
            conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                         "SELECT %s, %s + (g %% 2000000) * interval '1 second', "
                         "'question_answered' FROM generate_series(1, %s) g",
                         (uid, lo, args.rows))
            conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                         "SELECT %s, now(), 'session_started' FROM generate_series(1, 10)",
                         (uid,))
            conn.execute("VACUUM ANALYZE learning_events")
            total = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
            print(f"loaded {args.rows:,} rows of {month:%Y-%m} into DEFAULT in "
                  f"{time.monotonic() - t0:.1f} s")

        phase = ["before"]
        latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        short: list[int] = []
        stop = threading.Event()

        def reader() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                while not stop.is_set():
                    started, when = time.monotonic(), phase[0]
                    n = conn.execute("SELECT count(*) FROM learning_events",
                                     prepare=False).fetchone()[0]
                    latencies[when].append(time.monotonic() - started)
                    if n < total:
                        short.append(n)

        threads = [threading.Thread(target=reader) for _ in range(args.readers)]
        for t in threads:
            t.start()
        time.sleep(3)
        phase[0] = "during"
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.monotonic()
            result = partitions.run(conn, partitions.PlanRequest(action="create", start=month,
                                                                     ahead=0))
            seconds = time.monotonic() - t0
        phase[0] = "after"
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        moved = result.moved_rows
        print(f"create {result.created[0]['name']}: {moved:,} rows moved in {seconds:.1f} s "
              f"({moved / seconds:,.0f} rows/s), errors {result.errors}")
        for when, values in latencies.items():
            if values:
                print(f"  readers {when:6s}: {len(values):5d} counts, median "
                      f"{statistics.median(values) * 1000:8.1f} ms, max {max(values) * 1000:8.1f} ms")
        print(f"  short counts: {len(short)} (of {sum(map(len, latencies.values()))})")
        print("  (the machine may be shared: compare during/after with before, same run)")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    main()
