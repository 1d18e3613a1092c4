"""Benchmark `dmdb optimize indexes`: its advice, then the written migration applied.

    python bench/bench_optimize.py [--users 2000] [--answers 100] [--calls 300]

Seeds an embedded PostgreSQL 18 (durable settings, pg_stat_statements preloaded) with
`dmdb seed`, then runs a workload of two query patterns, `--calls` times each:

- missing: an event by its id (the feed, a privacy export) within the retained months —
  learning_events has only a BRIN index on event_id, lossy;
- served: a learner's due reviews, which review_schedule's primary key serves.

Then, in the same run: `advise_indexes` (the trial on a scratch copy: plans and times
before and after each candidate), the suggested migration written into a copy of the SQL
tree and applied with `dmdb up`'s engine, and the workload run again. Prints the advice
with its evidence and both patterns' client round trip (p50 / p95 / mean, ms) before and
after the migration. The server and its data are removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PATTERNS = {
    "missing": ("SELECT user_id, event_type, occurred_at FROM learning_events WHERE event_id = %s "
                "AND occurred_at >= now() - interval '400 days'"),
    "served": ("SELECT content_id, next_review_at FROM review_schedule WHERE user_id = %s "
               "AND next_review_at <= now() ORDER BY next_review_at"),
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(conn, calls: int, events: list[int], users: list[int]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in PATTERNS}
    for i in range(calls):
        for name, query in PATTERNS.items():
            value = events[i * 7919 % len(events)] if name == "missing" else users[i * 13 % len(users)]
            started = time.perf_counter()
            conn.execute(query, (value,)).fetchall()
            out[name].append((time.perf_counter() - started) * 1000)
    return out


def line(label: str, ms: list[float]) -> str:
    return (f"| {label} | {len(ms)} | {pct(ms, 50):.3f} | {pct(ms, 95):.3f} | "
            f"{statistics.fmean(ms):.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    import psycopg

    from dmdb.config import Settings
    from dmdb.learning.seed import seed
    from dmdb.migrate import engine
    from dmdb.optimize import advise_indexes
    from dmdb.server.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="dmdb-bench-optimize-"))
    server = EmbeddedServer(home)
    info = server.start(dbname="bench")
    settings = Settings(host=info.socket_dir, port=info.port, dbname="bench", user="postgres",
                        home=home)
    project = engine.Project(REPO / "sql")
    tree = home / "sql"
    shutil.copytree(REPO / "sql", tree)
    try:
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            engine.up(conn, project)
        result = seed(settings, project, users=args.users, answers_per_user=args.answers,
                      random_seed=1)
        print(f"seeded {result.users} learners, {result.events:,} events in {result.seconds} s")
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            events = [r[0] for r in conn.execute("SELECT event_id FROM learning_events ORDER BY 1")]
            users = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY 1")]
            conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                         "WHERE datname = current_database()), 0)")
            run(conn, 20, events, users)  # warm the pages
            before = run(conn, args.calls, events, users)

        started = time.perf_counter()
        advice = advise_indexes(settings, sql_dir=tree, write_migration=True)
        took = time.perf_counter() - started
        print(f"\nadvise_indexes: {took:.1f} s, {len(advice.considered)} statement(s) considered, "
              f"{len(advice.decisions)} candidate(s) tried on {advice.scratch} "
              f"({sum(c.rows for c in advice.copied):,} rows copied)")
        for d in advice.decisions:
            mark = "KEPT   " if d.kept else "dropped"
            where = f" WHERE {d.where}" if d.where else ""
            print(f"  {mark} {d.table} ({', '.join(d.columns)}){where}: {d.reason}")
            for e in d.evidence:
                if e.uses_index or d.kept:
                    print(f"           {e.calls} calls, cost {e.cost_before} -> {e.cost_after}, "
                          f"trial {e.ms_before} -> {e.ms_after} ms ({e.saving_from}): "
                          f"{e.query[:80]}")
        served = [d for d in advice.suggestions if d.table == "public.review_schedule"]
        print(f"suggestions: {len(advice.suggestions)} (for the served pattern: {len(served)})")
        if advice.migration is None:
            print("no migration written: nothing to apply")
            return 1
        print(f"wrote {advice.migration.migration}")

        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            started = time.perf_counter()
            engine.up(conn, engine.Project(tree))
            print(f"applied {advice.migration.id} in {time.perf_counter() - started:.2f} s")
            run(conn, 20, events, users)
            after = run(conn, args.calls, events, users)

        print("\nclient round trip, ms (same run, same values)")
        print("| pattern | calls | p50 | p95 | mean |")
        print("|---|---|---|---|---|")
        for name in PATTERNS:
            print(line(f"{name}, before", before[name]))
            print(line(f"{name}, after", after[name]))
        ratio = statistics.fmean(before["missing"]) / statistics.fmean(after["missing"])
        print(f"\nmissing pattern: {ratio:.1f}x faster on the mean after the migration")
    finally:
        server.destroy()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
