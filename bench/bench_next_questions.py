"""Benchmark next_questions with and without migration 0008 (the learner-state indexes).

    python bench/bench_next_questions.py [--users 2000] [--answers 100] [--runs 3]

Seeds an embedded PostgreSQL 18 (durable settings) with `dmdb seed`, then alternates:
the schema as shipped (0008 applied: no index on knowledge_states.mastery_probability
nor on review_schedule.next_review_at, so the per-answer updates are HOT) and the
schema with 0008's two indexes back (its rollback's SQL, run by hand: the migrations
after 0008 stay applied). Each run calls
next_questions(user, 10, now()) once for every learner (prepared, one connection) and
reports p50/p99 of the client's round trip, then the plans of the query patterns the
indexes served, for the learner with the most review rows.
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
    "due reviews (next_questions)": (
        "SELECT rs.content_id, rs.next_review_at FROM review_schedule rs "
        "JOIN content c ON c.content_id = rs.content_id "
        "WHERE rs.user_id = %(u)s AND rs.next_review_at <= now() AND c.is_active "
        "ORDER BY rs.next_review_at, rs.content_id LIMIT 10"),
    "mastered concepts (next_questions)": (
        "SELECT ks.concept_id FROM knowledge_states ks "
        "WHERE ks.user_id = %(u)s AND ks.mastery_probability >= 0.8"),
    "user's mastered, latest first": (
        "SELECT * FROM knowledge_states WHERE user_id = %(u)s AND mastery_probability > 0.8 "
        "ORDER BY last_interaction DESC"),
}


def latencies(conn, users: list[int]) -> list[float]:
    out = []
    for u in users:
        started = time.perf_counter()
        conn.execute("SELECT count(*) FROM next_questions(%s, 10, now())", (u,),
                     prepare=True).fetchone()
        out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import psycopg

    from dmdb.config import Settings
    from dmdb.learning.seed import seed
    from dmdb.migrate import engine
    from dmdb.server.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="dmdb-bench-nq-"))
    server = EmbeddedServer(home)
    info = server.start(dbname="bench")
    settings = Settings(host=info.socket_dir, port=info.port, dbname="bench", user="postgres",
                        home=home)
    project = engine.Project(REPO / "sql")
    try:
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            engine.up(conn, project)
        # 0008 is toggled by running its two files' SQL (the migrations after it stay):
        # dropping and re-creating the two indexes is all it does.
        drop_sql = (REPO / "sql" / "migrations" / "0008_hot_learner_state.sql").read_text()
        create_sql = (REPO / "sql" / "rollbacks" / "0008_hot_learner_state.sql").read_text()
        result = seed(settings, project, users=args.users, answers_per_user=args.answers,
                      random_seed=1)
        print(f"seeded {result.users} learners, {result.events:,} events in {result.seconds} s")
        runs: dict[str, list[tuple[float, float]]] = {"0008 applied": [], "0008 rolled back": []}
        plans: dict[str, dict[str, str]] = {}
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            users = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY 1")]
            busiest = conn.execute(
                "SELECT user_id FROM review_schedule GROUP BY 1 ORDER BY count(*) DESC, 1 "
                "LIMIT 1").fetchone()[0]
            current = "0008 applied"
            for _ in range(args.runs):
                for state in runs:
                    if state != current:
                        conn.execute(drop_sql if state == "0008 applied" else create_sql)
                        current = state
                    conn.execute("ANALYZE knowledge_states")
                    conn.execute("ANALYZE review_schedule")
                    latencies(conn, users[:200])  # warm the plan cache and the pages
                    ms = latencies(conn, users)
                    runs[state].append((pct(ms, 50), pct(ms, 99)))
                    plans[state] = {
                        name: "\n".join(r[0] for r in conn.execute(
                            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + q,
                            {"u": busiest}))
                        for name, q in PATTERNS.items()}
            if current != "0008 applied":
                conn.execute(drop_sql)
        print(f"next_questions(user, 10, now()) for each of {len(users)} learners, "
              f"{args.runs} alternating runs (client round trip, ms)")
        print("| schema | p50 per run | p99 per run | p50 median | p99 median |")
        print("|---|---|---|---|---|")
        for state, values in runs.items():
            p50s = [v[0] for v in values]
            p99s = [v[1] for v in values]
            print(f"| {state} | {', '.join(f'{v:.2f}' for v in p50s)} | "
                  f"{', '.join(f'{v:.2f}' for v in p99s)} | {statistics.median(p50s):.2f} | "
                  f"{statistics.median(p99s):.2f} |")
        for state, by_name in plans.items():
            for name, plan in by_name.items():
                print(f"\n-- {name}, {state}, user {busiest}:\n{plan}")
    finally:
        server.destroy()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
