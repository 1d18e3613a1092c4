"""Benchmark `dmdb models report` and `dmdb models fit` over ~1M answers.

Simulates BKT learners with known parameters (dmdb.learning.simulation, through record_answers) on
a temporary embedded server, then times the report and the fit. Baseline, measured in the
same run: one plain aggregate scan of the same events (count, sum of the outcome and of
the stored prediction) — the floor any in-database report pays; the ratios say what the
metrics cost on top of reading the rows. Also prints how far the fit landed from the
simulated truth. The machine may be shared: compare ratios, not seconds.

    python bench/bench_models.py                          # 10 concepts × 10,000 learners × 10 answers
    python bench/bench_models.py --url postgresql://...   # an existing database (e.g. seeded)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SCAN = ("SELECT count(*), sum(is_correct::int), sum((response_data->>'predicted_correct')::float8) "
        "FROM learning_events WHERE event_type = 'question_answered'")


def timed(fn, repeat: int) -> tuple[float, object]:
    runs, out = [], None
    for _ in range(repeat):
        started = time.monotonic()
        out = fn()
        runs.append(time.monotonic() - started)
    return statistics.median(runs), out


def simulate(conn, concepts: int, learners: int, answers: int):
    import random

    from dmdb.learning import seed, simulation

    ids, _ = seed.load_reference(conn, seed.load_catalogue())
    rng = random.Random(5)
    codes = sorted(ids)[:concepts]
    truth = {}
    for code in codes:
        truth[ids[code]] = simulation.Truth(round(rng.uniform(0.05, 0.5), 3),
                                            round(rng.uniform(0.05, 0.3), 3),
                                            round(rng.uniform(0.1, 0.3), 3),
                                            round(rng.uniform(0.03, 0.15), 3))
    now = datetime.now(timezone.utc)
    started = time.monotonic()
    step = 1000  # learners per call: bounded memory for the plan
    for first in range(0, learners, step):
        simulation.simulate(conn, truth, learners=min(step, learners - first), answers=answers,
                            start=now - timedelta(days=40), span=timedelta(days=30),
                            random_seed=first + 1)
    print(f"simulated {learners} learners × {concepts} concepts × {answers} answers "
          f"in {time.monotonic() - started:.1f}s")
    conn.execute("ANALYZE")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="benchmark this database instead of a simulated one")
    parser.add_argument("--concepts", type=int, default=10)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=10, help="answers per learner and concept")
    parser.add_argument("--repeat", type=int, default=3, help="report runs (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary server (prints its URL)")
    args = parser.parse_args()

    import psycopg

    from dmdb.learning import models
    from dmdb.migrate import engine

    server = None
    url = args.url
    if url is None:
        from dmdb.server.embedded import EmbeddedServer

        home = Path(tempfile.mkdtemp(prefix="dmdb-bench-models-"))
        server = EmbeddedServer(home, fast=True)
        info = server.start(dbname="bench")
        url = f"postgresql://postgres@/bench?host={info.socket_dir}&port={info.port}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)
            truth = simulate(conn, args.concepts, args.learners, args.answers) if server else None
            win = models.window(days=None, since=None, until=None)
            events = conn.execute(SCAN).fetchone()[0]
            scan_s, _ = timed(lambda: conn.execute(SCAN).fetchone(), args.repeat)
            report_s, rep = timed(lambda: models.report(conn, win, scheduler="sm2"), args.repeat)
            fsrs = conn.execute("SELECT to_regproc('fsrs_step') IS NOT NULL").fetchone()[0]
            if fsrs:
                fsrs_s, fsrs_rep = timed(lambda: models.report(conn, win, scheduler="fsrs"), 1)
            fit_s, result = timed(lambda: models.fit(conn, win), 1)
        print(f"events: {events} question_answered")
        print(f"baseline scan: {scan_s:.2f}s")
        print(f"models report: {report_s:.2f}s  ({report_s / scan_s:.1f}× the scan; "
              f"log loss {rep.overall.log_loss:.4f} vs baseline {rep.overall.baseline_log_loss:.4f}, "
              f"AUC {rep.overall.auc:.3f})")
        if fsrs:
            f = fsrs_rep.scheduler["fsrs"]
            print(f"models report --scheduler fsrs: {fsrs_s:.2f}s  ({fsrs_s / scan_s:.1f}× the scan; "
                  f"{f['reviews']} reviews scored, {f['same_day_reviews']} same-day)")
        iterations = max((c.iterations for c in result.concepts), default=0)
        print(f"models fit:    {fit_s:.2f}s  ({fit_s / scan_s:.1f}× the scan; {iterations} EM "
              f"iterations at most, {fit_s / max(iterations, 1):.2f}s each)")
        if truth:
            worst = {k: 0.0 for k in models.RANGES}
            for c in result.concepts:
                t = truth[c.concept_id]
                for name, want in zip(models.RANGES, (t.initial_knowledge, t.learning_rate,
                                                      t.guess, t.slip)):
                    if c.fitted[name] is not None:
                        worst[name] = max(worst[name], abs(c.fitted[name] - want))
            print("largest error vs the simulated truth: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))
            better = sum(1 for c in result.concepts if c.apply)
            print(f"held-out log loss improved (and may be applied) for {better}/{len(result.concepts)} "
                  "concepts")
    finally:
        if server is not None and args.keep:
            print(f"kept: {url}")
        elif server is not None:
            server.destroy()


if __name__ == "__main__":
    main()
