"""Benchmark record_answer / record_answers against a bare INSERT of the same event row.

    python bench/bench_record_answer.py [URL] [--seconds 10] [--runs 3] [--users 2000]

URL: a database with the dmdb schema applied (migrations are applied if it has none).
Without URL an embedded PostgreSQL 18 is started in a temporary directory with the
settings `dmdb` runs it with (fsync and synchronous_commit on) and removed afterwards;
--fast turns fsync/synchronous_commit/full_page_writes off (CPU cost only). The
benchmark adds its own users/concepts/items (emails 'bench-<run>-N@example.invalid')
and the events it writes; on a URL it leaves them.

The single-answer figures come from pgbench (PostgreSQL's C client, shipped with the
embedded server: a Python client on a 2-core machine takes CPU from the server), in
alternating pairs, baseline first: `pgbench -M prepared -c 2 -j 2 -T <seconds>` of

  bare    INSERT INTO learning_events ... one question_answered row per transaction
  single  SELECT FROM record_answer(...)   one answer per transaction

The batch figures use psycopg (one call moves 1,000 answers, so the client's share is
small), each run against a bare multi-row INSERT of the same number of event rows:

  batch   record_answers, 1,000 answers per call, one transaction per call, on 1 and on
          2 connections (each connection its own users, as a pipeline partitioned by
          user_id delivers them)

Every row of the table: the runs, their median, the median of the same-run ratios to
the baseline, WAL bytes per answer (pg_current_wal_insert_lsn() around the run) and, on
the embedded server, the server's CPU time per answer (all its processes, from /proc:
unlike a rate, hardly moved by other load on the machine). The machine's load matters:
compare ratios, and read `uptime` before trusting a rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CONCEPTS = 40
ITEMS_PER_CONCEPT = 10
BATCH = 1000

BARE_SCRIPT = """\\set u random({umin}, {umax})
\\set i random({imin}, {imax})
\\set rt random(500, 9000)
INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id, \
session_id, is_correct, response_time_ms, hints_used, quality, mastery_before, mastery_after, \
response_data, context_data) VALUES (:u, now(), 'question_answered', {cmin}, :i, NULL, true, \
:rt, 0, 5, 0.3, 0.5, jsonb_build_object('predicted_correct', 0.4::double precision), '{{}}');
"""

SINGLE_SCRIPT = """\\set u random({umin}, {umax})
\\set i random({imin}, {imax})
\\set rt random(500, 9000)
\\set c random(0, 9)
SELECT mastery FROM record_answer(:u, :i, :c < 7, :rt);
"""

BARE_BATCH = """
INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id,
                             is_correct, response_time_ms, hints_used, quality,
                             mastery_before, mastery_after, response_data, context_data)
SELECT (e->>'user_id')::bigint, now(), 'question_answered', 1, (e->>'content_id')::bigint,
       (e->>'is_correct')::boolean, (e->>'response_time_ms')::integer, 0, 5, 0.3, 0.5,
       jsonb_build_object('predicted_correct', 0.4::double precision), '{}'
  FROM jsonb_array_elements(%s::jsonb) AS e
"""


@dataclass
class Row:
    label: str
    unit: str
    goal: str = ""
    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    wal: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


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


def contiguous(ids: list[int], what: str) -> tuple[int, int]:
    """pgbench draws ids from a range: the benchmark's own rows must form one."""
    low, high = min(ids), max(ids)
    if high - low + 1 != len(set(ids)):
        raise SystemExit(f"bench: the benchmark's {what} ids are not contiguous "
                         f"({low}..{high} for {len(ids)}); run it on a quiet database")
    return low, high


def server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds used so far by a local server: the postmaster, its live children, and
    (cutime/cstime) the children it has reaped."""
    if postmaster is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15])
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def wal_lsn(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint").fetchone()[0]


def pgbench(pgbench_bin: str, url: str, script: Path, seconds: float) -> tuple[float, int]:
    """(transactions per second, transactions) of one pgbench run."""
    done = subprocess.run(
        [pgbench_bin, "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", f"{seconds:g}",
         "-f", str(script), url],
        capture_output=True, text=True, check=False)
    tps = re.search(r"^tps = ([0-9.]+)", done.stdout, re.M)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or not tps or not count or (failed and int(failed[1])):
        raise SystemExit(f"bench: pgbench failed on {script.name}: "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return float(tps[1]), int(count[1])


def make_batch(rnd, users, items, size=BATCH):
    answers = []
    for _ in range(size):
        item, _ = rnd.choice(items)
        answers.append({"user_id": rnd.choice(users), "content_id": item,
                        "is_correct": rnd.random() < 0.7,
                        "response_time_ms": rnd.randint(500, 9000)})
    return json.dumps(answers)


def batch_run(url, users, items, seconds, n_conn, statement, seed_offset) -> tuple[float, int]:
    """(answers per second, answers) of n_conn connections calling `statement` with
    batches of 1,000 for `seconds`; with 2 connections each one gets its own users."""
    batches = []
    for i in range(n_conn):
        rnd = random.Random(seed_offset + i)
        batches.append([make_batch(rnd, users[i::n_conn], items) for _ in range(8)])
    conns = [psycopg.connect(url, autocommit=True) for _ in range(n_conn)]
    counts = [0] * n_conn
    errors: list[BaseException] = []

    def work(i, deadline):
        try:
            k = 0
            while time.perf_counter() < deadline:
                conns[i].execute(statement, (batches[i][k % 8],), prepare=True)
                k += 1
                counts[i] += BATCH
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(i, started + seconds))
                   for i in range(n_conn)]
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
    return sum(counts) / elapsed, sum(counts)


def start_bench_server(fast: bool) -> tuple[object, Path, str]:
    """A throw-away embedded server with an empty database dmdb_bench, for the bench
    scripts run without a URL: (server, its home, the database's URL). Durable settings
    unless `fast` (fsync, synchronous_commit and full_page_writes off)."""
    from dmdb.server.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="dmdb-bench-"))
    server = EmbeddedServer(home, fast=fast)
    info = server.start(dbname="postgres")
    with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE dmdb_bench")
    return server, home, f"postgresql://postgres@/dmdb_bench?host={info.socket_dir}&port={info.port}"


def stop_bench_server(server, home: Path | None) -> None:
    """Stop and delete a server start_bench_server made (nothing for None)."""
    if server is not None:
        server.destroy()
        shutil.rmtree(home, ignore_errors=True)


def ensure_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        has = conn.execute("SELECT to_regproc('public.record_answers') IS NOT NULL").fetchone()[0]
        if not has:
            from dmdb.migrate import engine

            engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)


def measured(url, row: Row, base: Row | None, run, postmaster: int | None) -> None:
    """One run of `run() -> (rate, answers)`: its WAL bytes and server CPU per answer, its
    ratio to the baseline's last run."""
    before, cpu = wal_lsn(url), server_cpu(postmaster)
    rate, answers = run()
    time.sleep(0.3)  # the run's backends exit and are reaped: their CPU moves to cutime
    row.wal.append((wal_lsn(url) - before) / max(answers, 1))
    if cpu is not None:
        row.cpu.append((server_cpu(postmaster) - cpu) / max(answers, 1) * 1e6)
    row.rates.append(rate)
    if base is not None:
        row.ratios.append(rate / base.rates[-1])


def table(rows: list[Row]) -> str:
    runs = max(len(r.rates) for r in rows)
    head = ["measure"] + [f"run {i + 1}" for i in range(runs)] + [
        "median", "ratio (median)", "WAL B/answer", "server CPU µs/answer", "goal"]
    lines = [head]
    for r in rows:
        lines.append([f"{r.label} ({r.unit})"] + [f"{x:,.0f}" for x in r.rates]
                     + [""] * (runs - len(r.rates))
                     + [f"{statistics.median(r.rates):,.0f}",
                        f"{statistics.median(r.ratios):.2f}" if r.ratios else "baseline",
                        f"{statistics.median(r.wal):,.0f}",
                        f"{statistics.median(r.cpu):,.0f}" if r.cpu else "-", r.goal])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (default: embedded server)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per measure")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--no-batches", action="store_true", help="pgbench pairs only")
    parser.add_argument("--fast", action="store_true",
                        help="embedded server without fsync (throw-away cluster)")
    args = parser.parse_args()

    from dmdb.server.embedded import pg_tool

    pgbench_bin = str(pg_tool("pgbench"))
    home = None
    server = None
    postmaster = None
    url = args.url
    if url is None:
        server, home, url = start_bench_server(args.fast)
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    scripts = Path(tempfile.mkdtemp(prefix="dmdb-bench-scripts-"))
    try:
        ensure_schema(url)
        users, items = seed(url, args.users)
        umin, umax = contiguous(users, "user")
        imin, imax = contiguous([i for i, _ in items], "content")
        ids = dict(umin=umin, umax=umax, imin=imin, imax=imax, cmin=min(c for _, c in items))
        bare_sql, single_sql = scripts / "bare.sql", scripts / "record_answer.sql"
        bare_sql.write_text(BARE_SCRIPT.format(**ids))
        single_sql.write_text(SINGLE_SCRIPT.format(**ids))

        with psycopg.connect(url) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')").fetchall())
        load = os.getloadavg()[0]
        print(f"server {settings.get('server_version')}, fsync={settings.get('fsync')}, "
              f"synchronous_commit={settings.get('synchronous_commit')}; {len(users)} users, "
              f"{len(items)} items; {args.runs} alternating runs of {args.seconds:g} s; "
              f"load average at start {load:.2f} on {os.cpu_count()} CPUs")
        # Warm-up: plans cached, knowledge_states/review_schedule rows partly created.
        pgbench(pgbench_bin, url, single_sql, 2)
        pgbench(pgbench_bin, url, bare_sql, 2)

        bare = Row("bare INSERT of the event row, pgbench, 2 conns", "rows/s")
        single = Row("record_answer, pgbench, 2 conns, 1 answer/txn", "answers/s",
                     ">= 0.70 x bare")
        rows = [bare, single]
        for _ in range(args.runs):
            measured(url, bare, None, partial(pgbench, pgbench_bin, url, bare_sql, args.seconds),
                     postmaster)
            measured(url, single, bare,
                     partial(pgbench, pgbench_bin, url, single_sql, args.seconds), postmaster)

        if not args.no_batches:
            call = "SELECT count(*) FROM record_answers(%s::jsonb)"
            for n_conn, goal in ((1, ">= 30,000/s"), (2, ">= 50,000/s")):
                base = Row(f"bare INSERT, 1,000 rows/statement, {n_conn} conn", "rows/s")
                row = Row(f"record_answers, 1,000/call, {n_conn} conn", "answers/s", goal)
                rows += [base, row]
                for k in range(args.runs):
                    measured(url, base, None, partial(
                        batch_run, url, users, items, args.seconds, n_conn, BARE_BATCH, 300 + k),
                        postmaster)
                    measured(url, row, base, partial(
                        batch_run, url, users, items, args.seconds, n_conn, call, 200 + k),
                        postmaster)
        print(table(rows))
        load_end = os.getloadavg()[0]
        print(f"load average at the end {load_end:.2f}: the machine was "
              f"{'shared, compare the ratios' if max(load, load_end) > 1.5 else 'quiet'}")
    finally:
        shutil.rmtree(scripts, ignore_errors=True)
        stop_bench_server(server, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
