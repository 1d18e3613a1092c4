"""record_answer(s) against the anchors of #32: the same writes without dmdb's work,
and the application's own way, measured in the same run.

    python bench/bench_anchors.py [URL] [--seconds 6] [--runs 5] [--users 2000]

Single answers (pgbench -M prepared, 2 connections, one answer per transaction; each
round runs the four in a rotated order, so no variant always runs first):

  floor4         the same four writes as record_answer as plain SQL, values precomputed
                 (fixed plausible ones): BEGIN; UPDATE users; UPDATE knowledge_states;
                 UPDATE review_schedule; INSERT learning_events; COMMIT (6 round trips)
  floor4fn       the same four statements in one PL/pgSQL call (bench_floor4fn, made by
                 the bench, with record_answer's SET plan_cache_mode), no computation
  app            what a team would write instead: BEGIN; the learner FOR UPDATE; the
                 settings; the item; the knowledge state FOR UPDATE; the review state FOR
                 UPDATE; BKT, SM-2 (exact, in hundredths), FSRS-6 (the review-state
                 formulas with the settings' 21 weights) and the streak computed in the
                 client (pgbench's expressions, \\gset); the four writes; COMMIT (11 round
                 trips, 10 statements)
  record_answer  SELECT ... FROM record_answer(user, item, correct, response time)

Every answer goes to a (learner, item) pair that already has its knowledge_states and
review_schedule rows (the bench answers each of the 20 pool items, one per concept,
once per learner first, through record_answers), so every variant writes the same rows of the same tables
with the same indexes, constraints and foreign keys: an UPDATE of users, of
knowledge_states and of review_schedule, an INSERT of the event.

Batches (psycopg, 1,000 answers per transaction, on 1 and on 2 connections, each
connection its own learners):

  bulk floor     the same four tables written set-based from precomputed arrays: UPDATE
                 users / knowledge_states / review_schedule ... FROM unnest(arrays), one
                 row per learner / (learner, concept) / (learner, item), and INSERT the
                 1,000 events ... SELECT FROM unnest(arrays)
  record_answers SELECT count(*) FROM record_answers(the 1,000 answers as jsonb)

For each: answers/s per round and the median, the same-run ratios (record_answer to
each single-answer anchor, record_answers to the bulk floor; beside them the same ratio
from server CPU per answer, the anchor's over dmdb's: what the rate ratio tends to when
the server is CPU-bound, and far steadier than rates when other work on the machine
competes for the disk's fsyncs), WAL bytes and server CPU per answer (all the server's
processes, from /proc, embedded server only), and latency p50/p99 (pgbench's
per-transaction log; per call for batches). Without URL an embedded PostgreSQL 18 is
started with dmdb's settings (fsync and synchronous_commit on) and removed afterwards;
--fast turns them off (CPU cost only). Report `uptime` with every figure: on a shared
machine compare ratios and CPU per answer, not rates.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_record_answer import (  # noqa: E402 - this script's directory
    contiguous,
    ensure_schema,
    seed,
    server_cpu,
    start_bench_server,
    stop_bench_server,
    wal_lsn,
)

POOL_ITEMS = 20  # items of the pool: the first 20, of 20 concepts (seed lays items out so)
BATCH = 1000

HEAD = """\\set u random({umin}, {umax})
\\set i random({imin}, {imax})
\\set c {cmin} + (:i - {imin}) % 40
\\set rt random(500, 9000)
\\set cr random(0, 9)
"""

EVENT_COLUMNS = ("user_id, occurred_at, event_type, concept_id, content_id, session_id, "
                 "is_correct, response_time_ms, hints_used, quality, mastery_before, "
                 "mastery_after, response_data, context_data")

# Fixed plausible values, inside every CHECK: what a client would have computed.
FLOOR_STATEMENTS = [
    "UPDATE users SET xp = xp + 10, current_streak = 3, longest_streak = "
    "greatest(longest_streak, 3), last_active_date = CURRENT_DATE WHERE user_id = {u}",
    "UPDATE knowledge_states SET mastery_probability = 0.55, last_interaction = now(), "
    "attempts = attempts + 1, correct_attempts = correct_attempts + 1 "
    "WHERE user_id = {u} AND concept_id = {c}",
    "UPDATE review_schedule SET easiness = 2.36, interval_days = 6, repetitions = 2, "
    "next_review_at = now() + interval '6 days', last_quality = 4, last_reviewed_at = now(), "
    "sm2_due = now() + interval '6 days', fsrs_state = 2, fsrs_step = 0, "
    "fsrs_stability = 8.5, fsrs_difficulty = 5.2, fsrs_due = now() + interval '9 days' "
    "WHERE user_id = {u} AND content_id = {i}",
    f"INSERT INTO learning_events ({EVENT_COLUMNS}) VALUES ({{u}}, now(), "
    "'question_answered', {c}, {i}, NULL, true, {rt}, 0, 4, 0.31, 0.55, "
    "'{{\"predicted_correct\": 0.44}}'::jsonb, '{{}}'::jsonb)",
]

FLOOR4_SCRIPT = HEAD + "BEGIN;\n" + "".join(
    s.format(u=":u", c=":c", i=":i", rt=":rt") + ";\n" for s in FLOOR_STATEMENTS) + "END;\n"

FLOOR4FN = """CREATE OR REPLACE FUNCTION bench_floor4fn(
    p_u bigint, p_i bigint, p_c bigint, p_rt integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
""" + "".join("    " + s.format(u="p_u", c="p_c", i="p_i", rt="p_rt") + ";\n"
              for s in FLOOR_STATEMENTS) + "END $$"

FLOOR4FN_SCRIPT = HEAD + "SELECT bench_floor4fn(:u, :i, :c, :rt);\n"

SINGLE_SCRIPT = HEAD + "SELECT mastery FROM record_answer(:u, :i, :cr < 7, :rt);\n"

APP_SCRIPT = HEAD + (HERE / "anchors_app.sql").read_text()
# (the file's comment lines are SQL comments: pgbench skips them)

BULK_USERS = """UPDATE users u SET xp = u.xp + a.xp, current_streak = 3,
    longest_streak = greatest(u.longest_streak, 3), last_active_date = CURRENT_DATE
  FROM unnest(%s::bigint[], %s::integer[]) AS a(user_id, xp) WHERE u.user_id = a.user_id"""
BULK_KS = """UPDATE knowledge_states k SET mastery_probability = a.m, last_interaction = now(),
    attempts = k.attempts + a.n, correct_attempts = k.correct_attempts + a.nc
  FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::integer[], %s::integer[])
       AS a(user_id, concept_id, m, n, nc)
 WHERE k.user_id = a.user_id AND k.concept_id = a.concept_id"""
BULK_RS = """UPDATE review_schedule r SET easiness = 2.36, interval_days = 6, repetitions = 2,
    next_review_at = now() + interval '6 days', last_quality = a.q, last_reviewed_at = now(),
    sm2_due = now() + interval '6 days', fsrs_state = 2, fsrs_step = 0,
    fsrs_stability = a.s, fsrs_difficulty = 5.2, fsrs_due = now() + interval '9 days'
  FROM unnest(%s::bigint[], %s::bigint[], %s::smallint[], %s::float8[])
       AS a(user_id, content_id, q, s)
 WHERE r.user_id = a.user_id AND r.content_id = a.content_id"""
BULK_EVENTS = f"""INSERT INTO learning_events ({EVENT_COLUMNS})
SELECT a.u, now(), 'question_answered', a.c, a.i, NULL, a.ok, a.rt, 0, a.q, a.mb, a.ma,
       jsonb_build_object('predicted_correct', a.pc), '{{}}'
  FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::boolean[], %s::integer[],
              %s::smallint[], %s::float8[], %s::float8[], %s::float8[])
       AS a(u, c, i, ok, rt, q, mb, ma, pc)"""


@dataclass
class Measure:
    label: str
    unit: str = "answers/s"
    rates: list[float] = field(default_factory=list)
    wal: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)  # ms
    p99: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def pgbench(pgbench_bin: str, url: str, script: Path, seconds: float, logdir: Path
            ) -> tuple[float, int, list[float]]:
    """(transactions per second, transactions, latencies in ms) of one pgbench run."""
    for old in logdir.glob("log*"):
        old.unlink()
    done = subprocess.run(
        [pgbench_bin, "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", f"{seconds:g}",
         "-l", "--log-prefix", str(logdir / "log"), "-f", str(script), url],
        capture_output=True, text=True, check=False)
    import re

    tps = re.search(r"^tps = ([0-9.]+)", done.stdout, re.M)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or not tps or not count or (failed and int(failed[1])):
        raise SystemExit(f"bench: pgbench failed on {script.name}: "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-3:]}")
    latencies = []
    for log in logdir.glob("log*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                latencies.append(int(parts[2]) / 1000)
    return float(tps[1]), int(count[1]), latencies


def measured(url: str, row: Measure, run, postmaster: int | None) -> float:
    """One run of `run() -> (rate, answers, latencies)`; its rate."""
    before, cpu = wal_lsn(url), server_cpu(postmaster)
    rate, answers, latencies = run()
    time.sleep(0.3)  # the run's backends exit and are reaped: their CPU moves to cutime
    row.wal.append((wal_lsn(url) - before) / max(answers, 1))
    if cpu is not None:
        row.cpu.append((server_cpu(postmaster) - cpu) / max(answers, 1) * 1e6)
    row.rates.append(rate)
    row.p50.append(percentile(latencies, 0.50))
    row.p99.append(percentile(latencies, 0.99))
    return rate


# -- batches ---------------------------------------------------------------------


def make_answers(rnd: random.Random, users: list[int], items: list[int]) -> list[dict]:
    return [{"user_id": rnd.choice(users), "content_id": rnd.choice(items),
             "is_correct": rnd.random() < 0.7, "response_time_ms": rnd.randint(500, 9000)}
            for _ in range(BATCH)]


def bulk_arrays(answers: list[dict], concept_of: dict[int, int]) -> list[tuple]:
    """The four statements' parameters, precomputed: one row per learner, (learner,
    concept), (learner, item), and the 1,000 events."""
    xp: dict[int, int] = {}
    ks: dict[tuple[int, int], list[int]] = {}
    rs: dict[tuple[int, int], int] = {}
    for a in answers:
        u, i, ok = a["user_id"], a["content_id"], a["is_correct"]
        xp[u] = xp.get(u, 0) + (10 if ok else 2)
        k = ks.setdefault((u, concept_of[i]), [0, 0])
        k[0] += 1
        k[1] += int(ok)
        rs[(u, i)] = 4 if ok else 1
    users = (list(xp), list(xp.values()))
    kss = ([u for u, _ in ks], [c for _, c in ks], [0.55] * len(ks),
           [n for n, _ in ks.values()], [c for _, c in ks.values()])
    rss = ([u for u, _ in rs], [i for _, i in rs], list(rs.values()), [8.5] * len(rs))
    events = ([a["user_id"] for a in answers], [concept_of[a["content_id"]] for a in answers],
              [a["content_id"] for a in answers], [a["is_correct"] for a in answers],
              [a["response_time_ms"] for a in answers],
              [4 if a["is_correct"] else 1 for a in answers], [0.31] * len(answers),
              [0.55] * len(answers), [0.44] * len(answers))
    return [users, kss, rss, events]


def batch_run(url: str, work: list[list], seconds: float, bulk: bool) -> tuple[float, int, list]:
    """(answers/s, answers, per-call latencies in ms) of len(work) connections, each
    cycling through its own prepared batches for `seconds`."""
    n_conn = len(work)
    conns = [psycopg.connect(url, autocommit=True) for _ in range(n_conn)]
    counts = [0] * n_conn
    latencies: list[float] = []
    errors: list[BaseException] = []
    statements = [BULK_USERS, BULK_KS, BULK_RS, BULK_EVENTS]

    def one(conn, item) -> None:
        if bulk:
            with conn.transaction():
                for statement, params in zip(statements, item):
                    conn.execute(statement, params, prepare=True)
        else:
            conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (item,),
                         prepare=True)

    def loop(k: int, deadline: float) -> None:
        try:
            n = 0
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                one(conns[k], work[k][n % len(work[k])])
                latencies.append((time.perf_counter() - t0) * 1000)
                n += 1
                counts[k] += BATCH
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        started = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(k, started + seconds))
                   for k in range(n_conn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        for conn in conns:
            conn.close()
    if errors:
        raise errors[0]
    return sum(counts) / elapsed, sum(counts), latencies


# -- setup -------------------------------------------------------------------------


def prepare(url: str, n_users: int) -> dict:
    users, items = seed(url, n_users)
    umin, umax = contiguous(users, "user")
    imin = min(i for i, _ in items)
    pool = sorted(i for i, _ in items)[:POOL_ITEMS]
    concept_of = dict(items)
    cmin = concept_of[imin]
    if pool != list(range(imin, imin + POOL_ITEMS)) or any(
            concept_of[i] != cmin + (i - imin) % 40 for i in pool):
        raise SystemExit("bench: the pool's items and concepts are not laid out in order; "
                         "run it on a quiet database")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FLOOR4FN)
        # Every (learner, pool item) answered once: every variant then updates rows.
        answers = [{"user_id": u, "content_id": i, "is_correct": True,
                    "response_time_ms": 3000} for u in users for i in pool]
        for k in range(0, len(answers), BATCH):
            conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)",
                         (json.dumps(answers[k:k + BATCH]),))
        conn.execute("VACUUM ANALYZE users, knowledge_states, review_schedule, learning_events")
    return dict(users=users, pool=pool, concept_of=concept_of,
                ids=dict(umin=umin, umax=umax, imin=imin, imax=imin + POOL_ITEMS - 1, cmin=cmin))


def render(rows: list[Measure], ratios: dict[str, list[float]], goals: dict[str, str],
           cpu_ratios: dict[str, list[float]]) -> str:
    runs = max(len(r.rates) for r in rows)
    head = (["variant"] + [f"run {k + 1}" for k in range(runs)]
            + ["median", "WAL B/answer", "server CPU µs/answer", "p50 ms", "p99 ms"])
    lines = [head]
    for r in rows:
        lines.append([f"{r.label} ({r.unit})"] + [f"{x:,.0f}" for x in r.rates]
                     + [""] * (runs - len(r.rates))
                     + [f"{statistics.median(r.rates):,.0f}", f"{statistics.median(r.wal):,.0f}",
                        f"{statistics.median(r.cpu):,.0f}" if r.cpu else "-",
                        f"{statistics.median(r.p50):.2f}", f"{statistics.median(r.p99):.2f}"])
    out = _table(lines)
    rlines = [["same-run ratio (rates)"] + [f"run {k + 1}" for k in range(runs)]
              + ["median", "by server CPU per answer (median)", "goal"]]
    for label, values in ratios.items():
        cpu = cpu_ratios.get(label) or []
        rlines.append([label] + [f"{v:.2f}" for v in values] + [""] * (runs - len(values))
                      + [f"{statistics.median(values):.2f}",
                         f"{statistics.median(cpu):.2f}" if cpu else "-", goals.get(label, "")])
    return out + "\n\n" + _table(rlines)


def _table(lines: list[list[str]]) -> str:
    widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (default: embedded server)")
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each run")
    parser.add_argument("--runs", type=int, default=5, help="rounds")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--no-batches", action="store_true", help="single answers only")
    parser.add_argument("--fast", action="store_true",
                        help="embedded server without fsync (throw-away cluster)")
    args = parser.parse_args()

    from dmdb.server.embedded import pg_tool

    pgbench_bin = str(pg_tool("pgbench"))
    server = home = postmaster = None
    url = args.url
    if url is None:
        server, home, url = start_bench_server(args.fast)
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    scripts = Path(tempfile.mkdtemp(prefix="dmdb-bench-anchors-"))
    try:
        ensure_schema(url)
        setup = prepare(url, args.users)
        ids = setup["ids"]
        variants = {}
        for name, text in (("floor4", FLOOR4_SCRIPT), ("floor4fn", FLOOR4FN_SCRIPT),
                           ("app", APP_SCRIPT), ("record_answer", SINGLE_SCRIPT)):
            path = scripts / f"{name}.sql"
            for key, value in ids.items():
                text = text.replace("{" + key + "}", str(value))
            path.write_text(text)
            variants[name] = path
        with psycopg.connect(url) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')").fetchall())
            # The events feed (another branch) adds users.feed_tx; the floors here do
            # not write its columns.
            feed = conn.execute("SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = "
                                "'users'::regclass AND attname = 'feed_tx')").fetchone()[0]
        load = os.getloadavg()
        print(f"server {settings.get('server_version')}, fsync={settings.get('fsync')}, "
              f"synchronous_commit={settings.get('synchronous_commit')}; {len(setup['users'])} "
              f"learners x {POOL_ITEMS} items, every pair answered once first; events feed "
              f"{'present' if feed else 'absent'}; {args.runs} "
              f"rounds of {args.seconds:g} s; load average at start "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs", flush=True)
        logdir = scripts / "logs"
        logdir.mkdir()
        for path in variants.values():  # warm-up: plans cached, pages read
            pgbench(pgbench_bin, url, path, 2, logdir)

        rows = {name: Measure(name) for name in variants}
        ratios: dict[str, list[float]] = {
            "record_answer / floor4fn": [], "record_answer / floor4": [],
            "record_answer / app": []}
        goals = {"record_answer / floor4fn": ">= 0.80", "record_answer / app": ">= 2.00"}
        cpu_ratios: dict[str, list[float]] = {}
        order = list(variants)
        for k in range(args.runs):
            rates = {}
            for name in order[k % len(order):] + order[:k % len(order)]:
                rates[name] = measured(url, rows[name], lambda p=variants[name]: pgbench(
                    pgbench_bin, url, p, args.seconds, logdir), postmaster)
            for anchor in ("floor4fn", "floor4", "app"):
                key = f"record_answer / {anchor}"
                ratios[key].append(rates["record_answer"] / rates[anchor])
                if rows[anchor].cpu:  # the anchor's CPU per answer over record_answer's
                    cpu_ratios.setdefault(key, []).append(
                        rows[anchor].cpu[-1] / rows["record_answer"].cpu[-1])
            print(f"  round {k + 1}: " + ", ".join(f"{n} {r:,.0f}/s" for n, r in rates.items())
                  + f"; load {os.getloadavg()[0]:.2f}", flush=True)
        out_rows = [rows[n] for n in order]

        if not args.no_batches:
            users, pool, concept_of = setup["users"], setup["pool"], setup["concept_of"]
            for n_conn in (1, 2):
                floor = Measure(f"bulk floor, 1,000/txn, {n_conn} conn")
                batch = Measure(f"record_answers, 1,000/call, {n_conn} conn")
                key = f"record_answers / bulk floor, {n_conn} conn"
                ratios[key] = []
                goals[key] = ">= 0.90"
                answers = [[make_answers(random.Random(100 * n_conn + j + 8 * c),
                                         users[c::n_conn], pool) for j in range(8)]
                           for c in range(n_conn)]
                bulk_work = [[bulk_arrays(a, concept_of) for a in conn_answers]
                             for conn_answers in answers]
                json_work = [[json.dumps(a) for a in conn_answers] for conn_answers in answers]
                batch_run(url, bulk_work, 1, True)  # warm-up
                batch_run(url, json_work, 1, False)
                for k in range(args.runs):
                    pair = [(floor, bulk_work, True), (batch, json_work, False)]
                    if k % 2:
                        pair.reverse()
                    rates = {}
                    for row, work, bulk in pair:
                        rates[bulk] = measured(url, row, lambda w=work, b=bulk: batch_run(
                            url, w, args.seconds, b), postmaster)
                    ratios[key].append(rates[False] / rates[True])
                    if floor.cpu:
                        cpu_ratios.setdefault(key, []).append(floor.cpu[-1] / batch.cpu[-1])
                out_rows += [floor, batch]
                print(f"  batches on {n_conn} conn done; load {os.getloadavg()[0]:.2f}",
                      flush=True)
        print(render(out_rows, ratios, goals, cpu_ratios))
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        shutil.rmtree(scripts, ignore_errors=True)
        stop_bench_server(server, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
