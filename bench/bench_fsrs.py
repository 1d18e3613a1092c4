"""Benchmark one FSRS-6 review: the PL/pgSQL fsrs_step call against the inlined scalars.

    python bench/bench_fsrs.py [URL] [--reviews 200000] [--txns 50000] [--runs 3]

URL: a database with the dmdb schema applied (migrations are applied if it has none);
the benchmark's functions go into a schema of their own (bench_fsrs), dropped at the
end. Without URL an embedded PostgreSQL 18 is started in a temporary directory (fsync
off: nothing is written) and removed afterwards.

Three PL/pgSQL variants do the same bookkeeping per review and differ only in how
they compute the card after it:

  none     no FSRS at all: the baseline, subtracted from the two others
  step     r := fsrs_step(...) then the five fields, as record_answer(s) did
  scalars  fsrs_next_stability/difficulty/state/step/due assigned one by one

measured two ways:

  loop     one call runs --reviews reviews in a loop (replaying cards; a new card
           every 16 reviews): record_answers' case, one transaction for many answers
  txn      --txns reviews, one per transaction (a procedure calls a function doing one
           review, then COMMITs): record_answer's case, where every PL/pgSQL expression
           is prepared again in each transaction (ExecInitExpr), which costs more than
           evaluating it

Each figure is the median of --runs alternating runs (none, step, scalars, none, ...),
in µs per review after subtracting the baseline, and the ratio scalars / step. The
time is the server backend's CPU time (/proc, when the server runs on this machine;
hardly moved by other load), else the wall-clock time of the call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from bench_record_answer import start_bench_server, stop_bench_server  # this script's directory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = ("none", "step", "scalars")

# The card after a review, three ways: the text replaces {review} in the functions below.
REVIEW = {
    "none": """
        v_state := coalesce(v_state, 1)::smallint;
        v_s := coalesce(v_s, 1.0);
        v_d := coalesce(v_d, 5.0);
        v_due := v_at + interval '1 day';""",
    "step": """
        r := fsrs_step(v_state, v_step, v_s, v_d, v_last, v_rating, v_at, v_set.fsrs_parameters,
                       v_set.fsrs_desired_retention, v_set.fsrs_learning_steps,
                       v_set.fsrs_relearning_steps, v_set.fsrs_maximum_interval);
        v_state := r.state;
        v_step := r.step;
        v_s := r.stability;
        v_d := r.difficulty;
        v_due := r.due;""",
    "scalars": """
        v_s2 := fsrs_next_stability(v_state, v_s, v_d, v_last, v_rating, v_at,
                                    v_set.fsrs_parameters);
        v_state2 := fsrs_next_state(v_state, v_step, v_rating, v_set.fsrs_learning_steps,
                                    v_set.fsrs_relearning_steps);
        v_due := fsrs_next_due(v_state, v_step, v_rating, v_at, v_state2, v_s2,
                               v_set.fsrs_parameters, v_set.fsrs_desired_retention,
                               v_set.fsrs_learning_steps, v_set.fsrs_relearning_steps,
                               v_set.fsrs_maximum_interval);
        v_d := fsrs_next_difficulty(v_state, v_s, v_d, v_rating, v_set.fsrs_parameters);
        v_s := v_s2;
        v_step := fsrs_next_step(v_state, v_step, v_rating, v_state2);
        v_state := v_state2;""",
}

DECLARE = """
    v_set algorithm_settings%ROWTYPE;
    r record;
    v_state smallint;
    v_step smallint;
    v_state2 smallint;
    v_s double precision;
    v_s2 double precision;
    v_d double precision;
    v_last timestamptz;
    v_at timestamptz;
    v_due timestamptz;
    v_rating integer;
"""

# record_answers' case: p_n reviews in one call. A card gets 16 reviews, each on its
# due or a few hours to days after the last one, with a rating from a fixed mix.
LOOP = """
CREATE FUNCTION bench_fsrs.loop_{variant}(p_n integer) RETURNS timestamptz
LANGUAGE plpgsql AS $f$
DECLARE {declare}
BEGIN
    SELECT * INTO v_set FROM algorithm_settings;
    FOR k IN 0 .. p_n - 1 LOOP
        IF k % 16 = 0 THEN
            v_state := NULL; v_step := NULL; v_s := NULL; v_d := NULL; v_last := NULL;
            v_at := timestamptz '2025-01-06 08:00Z' + (k % 1000) * interval '1 hour';
        ELSIF k % 3 = 0 THEN
            v_at := v_due;
        ELSE
            v_at := v_at + (k % 97) * interval '1 hour';
        END IF;
        v_rating := 1 + (k * 7 + k / 5) % 4;
        {review}
        v_last := greatest(v_last, v_at);
    END LOOP;
    RETURN v_due;
END $f$"""

# record_answer's case: one review per call, the card made from p_k.
ONE = """
CREATE FUNCTION bench_fsrs.one_{variant}(p_k integer) RETURNS timestamptz
LANGUAGE plpgsql AS $f$
DECLARE {declare}
BEGIN
    SELECT * INTO v_set FROM algorithm_settings;
    v_state := nullif(p_k % 4, 0)::smallint;
    v_step := CASE WHEN p_k % 4 IN (1, 3) THEN p_k / 4 % 2 END;
    v_s := CASE WHEN v_state IS NOT NULL THEN 0.5 + p_k % 60 END;
    v_d := CASE WHEN v_state IS NOT NULL THEN 1 + p_k % 9 END;
    v_last := CASE WHEN v_state IS NOT NULL THEN timestamptz '2025-01-06 08:00Z' END;
    v_at := timestamptz '2025-01-06 08:00Z' + (p_k % 40) * interval '13 hours';
    v_rating := 1 + p_k / 3 % 4;
    {review}
    RETURN v_due;
END $f$"""

# One review per transaction, server-side: a COMMIT after each call, so each review
# starts a new transaction as a record_answer call does.
TXN = """
CREATE PROCEDURE bench_fsrs.txn_{variant}(p_n integer)
LANGUAGE plpgsql AS $f$
BEGIN
    FOR k IN 0 .. p_n - 1 LOOP
        PERFORM bench_fsrs.one_{variant}(k);
        COMMIT;
    END LOOP;
END $f$"""


def install(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('public.algorithm_settings') IS NOT NULL").fetchone()[0]:
            from dmdb.migrate import engine

            engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)
        if conn.execute("SELECT to_regproc('fsrs_next_stability') IS NULL").fetchone()[0]:
            raise SystemExit("bench: this database has no fsrs_next_stability; run `dmdb up`")
        conn.execute("DROP SCHEMA IF EXISTS bench_fsrs CASCADE")
        conn.execute("CREATE SCHEMA bench_fsrs")
        for variant in VARIANTS:
            for template in (LOOP, ONE, TXN):
                conn.execute(template.format(variant=variant, declare=DECLARE,
                                             review=REVIEW[variant]))


def agree(url: str, n: int) -> None:
    """The two ways give the same cards (the last due of a long replay, and one review)."""
    with psycopg.connect(url, autocommit=True) as conn:
        a, b = conn.execute("SELECT bench_fsrs.loop_step(%s), bench_fsrs.loop_scalars(%s)",
                            (n, n)).fetchone()
        c = conn.execute("SELECT count(*) FROM generate_series(0, 9999) k "
                         "WHERE bench_fsrs.one_step(k) IS DISTINCT FROM bench_fsrs.one_scalars(k)"
                         ).fetchone()[0]
    if a != b or c:
        raise SystemExit(f"bench: fsrs_step and the scalars disagree ({a} vs {b}; {c} of 10,000)")


def backend_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a server process on this machine (None: not visible)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(url: str, statement: str, n: int) -> float:
    """Seconds of one run of statement (backend CPU when visible, else wall clock)."""
    with psycopg.connect(url, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute(statement, (min(n, 1000),))  # plans cached
        cpu, wall = backend_cpu(pid), time.perf_counter()
        conn.execute(statement, (n,))
        wall = time.perf_counter() - wall
        after = backend_cpu(pid)
        return after - cpu if cpu is not None and after is not None else wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (default: embedded server)")
    parser.add_argument("--reviews", type=int, default=200_000, help="reviews per loop call")
    parser.add_argument("--txns", type=int, default=50_000, help="transactions per txn run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per variant")
    args = parser.parse_args()

    home = server = None
    url = args.url
    if url is None:
        server, home, url = start_bench_server(True)
    try:
        install(url)
        agree(url, 20_000)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            cpu = backend_cpu(conn.execute("SELECT pg_backend_pid()").fetchone()[0]) is not None
        print(f"server {version}; {args.runs} alternating runs per variant: {args.reviews:,} "
              f"reviews in one call, {args.txns:,} one-review transactions; "
              f"{'backend CPU' if cpu else 'wall-clock'} time, load {os.getloadavg()[0]:.2f}")
        figures = {kind: {v: [] for v in VARIANTS} for kind in ("loop", "txn")}
        for _ in range(args.runs):
            for variant in VARIANTS:
                figures["loop"][variant].append(
                    timed(url, f"SELECT bench_fsrs.loop_{variant}(%s)", args.reviews)
                    / args.reviews * 1e6)
            for variant in VARIANTS:
                figures["txn"][variant].append(
                    timed(url, f"CALL bench_fsrs.txn_{variant}(%s)", args.txns) / args.txns * 1e6)
        others = VARIANTS[1:]
        print(f"{'µs per review':40} {'baseline':>9}" + "".join(f" {v:>10}" for v in others)
              + f" {'scalars/step':>13}")
        for kind, label in (("loop", "loop (1 call, many reviews)"),
                            ("txn", "1 review per transaction")):
            med = {v: statistics.median(figures[kind][v]) for v in VARIANTS}
            added = {v: med[v] - med["none"] for v in others}
            ratio = added["scalars"] / added["step"] if added["step"] > 0 else float("nan")
            print(f"{label:40} {med['none']:9.2f}" + "".join(f" {added[v]:10.2f}" for v in others)
                  + f" {ratio:13.2f}")
        print("baseline: the same PL/pgSQL without FSRS, µs per review (loop) or per transaction;"
              " the other columns: µs that FSRS adds to it")
    finally:
        if args.url is not None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS bench_fsrs CASCADE")
        stop_bench_server(server, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
