"""Benchmark `dmdb seed`: N learners × M answers through record_answers on the embedded server.

Prints the seed's own figures and, as a baseline measured in the same run, how fast the
same number of bare learning_events rows goes in with one multi-row INSERT per 1,000 rows
over the same number of connections: the ratio says what the learning state costs.

    python bench/bench_seed.py --users 10000 --answers 100      # the issue's 1M events
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary server")
    args = parser.parse_args()

    import psycopg

    from dmdb import migrations
    from dmdb.config import Settings
    from dmdb.embedded import EmbeddedServer
    from dmdb.seed import seed

    home = Path(tempfile.mkdtemp(prefix="dmdb-bench-seed-"))
    server = EmbeddedServer(home)  # durable settings, as a user's embedded server
    info = server.start(dbname="bench")
    settings = Settings(host=info.socket_dir, port=info.port, dbname="bench", user="postgres",
                        home=home)
    try:
        project = migrations.Project(REPO / "sql")
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            migrations.up(conn, project)
        result = seed(settings, project, users=args.users, answers_per_user=args.answers,
                      jobs=args.jobs, random_seed=1)
        total = result.events

        # Baseline: the same number of bare event rows, same connections, 1,000 per INSERT.
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            users = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY 1")]
            conn.execute("CREATE TABLE bench_events (LIKE learning_events INCLUDING ALL)")
        rows_per_job = total // args.jobs

        def insert(job: int) -> None:
            with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")
                done = 0
                while done < rows_per_job:
                    n = min(1000, rows_per_job - done)
                    batch = json.dumps([{"user_id": users[(job + i) % len(users)]} for i in range(n)])
                    conn.execute(
                        "INSERT INTO bench_events (user_id, occurred_at, event_type, is_correct, "
                        "response_time_ms) SELECT (e->>'user_id')::bigint, now() - random() * "
                        "interval '90 days', 'question_answered', true, 4000 "
                        "FROM jsonb_array_elements(%s::jsonb) e", (batch,))
                    done += n

        started = time.monotonic()
        threads = [threading.Thread(target=insert, args=(j,)) for j in range(args.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        baseline_seconds = time.monotonic() - started
        baseline_rate = rows_per_job * args.jobs / baseline_seconds

        print(f"seed: {args.users} learners x {args.answers} answers, {args.jobs} jobs")
        print(f"  events written         {total:>12,}")
        print(f"  partitions touched     {len(result.partitions_touched):>12}")
        print(f"  seconds (whole seed)   {result.seconds:>12.1f}")
        print(f"  events per second      {result.events_per_second:>12,.0f}")
        print(f"baseline: bare INSERT of {rows_per_job * args.jobs:,} event rows, 1,000 per statement")
        print(f"  rows per second        {baseline_rate:>12,.0f}")
        print(f"ratio seed / bare insert {result.events_per_second / baseline_rate:>12.2f}")
        print(f"goal: 1,000,000 events in < 90 s -> {'met' if result.seconds < 90 else 'NOT met'}"
              if total >= 1_000_000 else "")
    finally:
        if not args.keep:
            server.destroy()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
