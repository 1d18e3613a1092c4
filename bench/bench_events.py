"""The event feed's cost budget (#26), with same-run baselines.

    python bench/bench_events.py [--fast] [--seconds 10] [--runs 3] [--answers 1000000]

Starts a throw-away embedded PostgreSQL 18 (durable settings; --fast: fsync,
synchronous_commit and full_page_writes off, shorter runs and 100,000 answers) with two
databases of the same size:

  off   the schema and functions as they were before the feed: the tree of the commit
        before the one that added sql/migrations/*_event_feed.sql (git archive), or
        --baseline-sql DIR
  on    this tree (0014/0015: feed_tx, the feed index, the learner's users.feed_tx)

and measures, in alternating rounds (off then on, each round), as bench_record_answer.py
does: pgbench -M prepared -c 2 -j 2 of one record_answer per transaction, and
record_answers batches of 1,000 on 1 and 2 connections; for each, answers per second, WAL
bytes and the server's CPU time per answer (all its processes, from /proc), and the
median of the same-round ratios on/off. Budget: at most 1.10 in server CPU per answer
for both.

Then the readers: `dmdb events consume` (the CLI, a subprocess, to /dev/null) reading
every event of `on` from the beginning, in events per second (goal: >= 50,000); and the
exactly-once run: --answers answers through record_answers (2 writers, batches of 1,000,
learners shared between them) while `dmdb events consume --follow` runs, its output
checked: every acknowledged answer exactly once (by event id), no event twice, each
learner's events in event-id order (their commit order), the feed in position order.

The machine's load matters: the load average is printed at the start and the end; compare
ratios, and take figures when it is low.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_record_answer import (  # noqa: E402
    BATCH,
    SINGLE_SCRIPT,
    Row,
    batch_run,
    contiguous,
    measured,
    pgbench,
    seed,
    start_bench_server,
    stop_bench_server,
    table,
)

BUDGET = 1.10
READ_GOAL = 50_000


def baseline_tree(ref: str | None, out: Path) -> tuple[Path, str]:
    """The sql/ tree without the feed: of `ref`, else of the parent of the first commit that
    added the feed's migration. (tree, the commit it came from)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    if ref is None:
        added = git("log", "--diff-filter=A", "--format=%H", "--",
                    "sql/migrations/*_event_feed.sql").split()
        if not added:
            raise SystemExit("bench: no commit adds sql/migrations/*_event_feed.sql; "
                             "give --baseline-ref or --baseline-sql")
        ref = added[-1] + "^"
    commit = git("rev-parse", "--short", ref)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "sql"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    if list((out / "sql" / "migrations").glob("*_event_feed.sql")):
        raise SystemExit(f"bench: the baseline {commit} already has the feed")
    return out / "sql", commit


def make_db(admin_url: str, name: str, tree: Path) -> str:
    from dmdb.migrate import engine

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin_url.replace("/dmdb_bench?", f"/{name}?")
    with psycopg.connect(url, autocommit=True) as conn:
        engine.up(conn, engine.Project(tree), lock_wait=30)
    return url


def dmdb(args: list[str], url: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "DMDB_"))}
    env.update({"DATABASE_URL": url, "PYTHONPATH": str(REPO)})
    return subprocess.Popen([sys.executable, "-m", "dmdb", *args], env=env, cwd=REPO, **kwargs)


def read_rate(url: str) -> tuple[int, float]:
    """(events, seconds) of `dmdb events consume` reading the whole feed to /dev/null."""
    name = f"bench-read-{os.getpid()}"
    started = time.perf_counter()
    proc = dmdb(["events", "consume", "--consumer", name, "--from", "beginning",
                 "--batch-size", "5000", "--quiet"], url, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: dmdb events consume failed: {err.decode().strip()}")
    with psycopg.connect(url, autocommit=True) as conn:
        n = conn.execute("SELECT events_handled FROM event_consumers WHERE name = %s",
                         (name,)).fetchone()[0]
        conn.execute("DELETE FROM event_consumers WHERE name = %s", (name,))
    return n, elapsed


def exactly_once(url: str, users: list[int], items, answers: int, work: Path) -> dict:
    """`answers` answers through record_answers from 2 writers while a CLI consumer
    follows; its output checked."""
    out = work / "consumed.jsonl"
    name = f"bench-once-{os.getpid()}"
    with open(out, "wb") as sink:
        consumer = dmdb(["events", "consume", "--consumer", name, "--from", "now", "--follow",
                         "--poll", "0.05", "--batch-size", "5000", "--quiet"], url, stdout=sink,
                        stderr=subprocess.PIPE)
        for _ in range(600):
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT 1 FROM event_consumers WHERE name = %s",
                                (name,)).fetchone():
                    break
            if consumer.poll() is not None:
                raise SystemExit(f"bench: the consumer did not start: "
                                 f"{consumer.stderr.read().decode().strip()}")
            time.sleep(0.05)
        acknowledged: list[list[int]] = [[], []]
        errors: list[BaseException] = []
        per_writer = answers // 2 // BATCH

        def writer(i: int) -> None:
            rnd = random.Random(1000 + i)
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    for _ in range(per_writer):
                        batch = json.dumps([
                            {"user_id": rnd.choice(users), "content_id": rnd.choice(items)[0],
                             "is_correct": rnd.random() < 0.7,
                             "response_time_ms": rnd.randint(500, 9000)} for _ in range(BATCH)])
                        rows = conn.execute("SELECT event_id FROM record_answers(%s::jsonb)",
                                            (batch,)).fetchall()
                        acknowledged[i].extend(r[0] for r in rows)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        write_seconds = time.perf_counter() - started
        if errors:
            consumer.kill()
            raise errors[0]
        from dmdb.events import lag

        with psycopg.connect(url, autocommit=True) as conn:
            behind_at_end = lag(conn, name)[0].behind
            while True:
                (state,) = lag(conn, name)
                if state.behind == 0:
                    break
                if consumer.poll() is not None:
                    raise SystemExit(f"bench: the consumer exited ({consumer.returncode}): "
                                     f"{consumer.stderr.read().decode().strip()}")
                time.sleep(0.1)
        drain_seconds = time.perf_counter() - started - write_seconds
        consumer.send_signal(signal.SIGINT)
        consumer.wait(timeout=60)
    ids, seen, dup, order_bad = [], set(), 0, 0
    last_by_learner: dict[int, int] = defaultdict(int)
    positions_sorted = True
    previous = (-1, -1)
    answered = set()
    with open(out) as handle:
        for line in handle:
            e = json.loads(line)
            eid = e["event_id"]
            if eid in seen:
                dup += 1
            seen.add(eid)
            ids.append(eid)
            if e["type"] == "question_answered":
                answered.add(eid)
            if eid < last_by_learner[e["user_id"]]:
                order_bad += 1
            last_by_learner[e["user_id"]] = eid
            pos = tuple(map(int, e["position"].split(":")))
            positions_sorted &= pos > previous
            previous = pos
    acked = set(acknowledged[0]) | set(acknowledged[1])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM event_consumers WHERE name = %s", (name,))
    out.unlink()
    return {"answers": len(acknowledged[0]) + len(acknowledged[1]), "events": len(ids),
            "missing": len(acked - answered), "duplicates": dup,
            "learner_order_violations": order_bad, "positions_in_order": positions_sorted,
            "write_rate": (len(acked)) / write_seconds, "behind_when_writers_done": behind_at_end,
            "drain_seconds": drain_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="embedded server without fsync, 3 s x 2 runs, 100,000 answers")
    parser.add_argument("--seconds", type=float, default=None, help="duration of each run")
    parser.add_argument("--runs", type=int, default=None, help="alternating rounds")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--answers", type=int, default=None,
                        help="answers in the exactly-once run (default 1,000,000; 0: skip it)")
    parser.add_argument("--baseline-ref", default=None, help="git ref of the tree without the feed")
    parser.add_argument("--baseline-sql", type=Path, default=None,
                        help="an sql/ tree without the feed (instead of git)")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.fast else 10.0)
    runs = args.runs or (2 if args.fast else 3)
    answers = args.answers if args.answers is not None else (100_000 if args.fast else 1_000_000)

    from dmdb.server.embedded import pg_tool

    pgbench_bin = str(pg_tool("pgbench"))
    work = Path(tempfile.mkdtemp(prefix="dmdb-bench-events-"))
    server = home = None
    try:
        if args.baseline_sql:
            off_tree, commit = args.baseline_sql, str(args.baseline_sql)
        else:
            off_tree, commit = baseline_tree(args.baseline_ref, work)
        server, home, admin_url = start_bench_server(args.fast)
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        urls = {"off": make_db(admin_url, "events_off", off_tree),
                "on": make_db(admin_url, "events_on", REPO / "sql")}
        seeded, scripts = {}, {}
        for label, url in urls.items():
            users, items = seed(url, args.users)
            umin, umax = contiguous(users, "user")
            imin, imax = contiguous([i for i, _ in items], "content")
            script = work / f"single_{label}.sql"
            script.write_text(SINGLE_SCRIPT.format(umin=umin, umax=umax, imin=imin, imax=imax,
                                                   cmin=min(c for _, c in items)))
            seeded[label], scripts[label] = (users, items), script
            pgbench(pgbench_bin, url, script, 2)  # warm-up: plans, first rows
        with psycopg.connect(urls["on"]) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')").fetchall())
        load = os.getloadavg()
        print(f"server {settings.get('server_version')}, fsync={settings.get('fsync')}, "
              f"synchronous_commit={settings.get('synchronous_commit')}; events off = {commit}; "
              f"{args.users} users per database; {runs} alternating rounds of {seconds:g} s; "
              f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min) "
              f"on {os.cpu_count()} CPUs")

        rows: list[Row] = []
        pairs = []
        single_off = Row("record_answer, events off, pgbench 2 conns", "answers/s")
        single_on = Row("record_answer, events on, pgbench 2 conns", "answers/s",
                        f"CPU <= {BUDGET:.2f} x off")
        rows += [single_off, single_on]
        pairs.append((single_off, single_on))
        batch_rows = []
        for n_conn in (1, 2):
            off = Row(f"record_answers 1,000/call, events off, {n_conn} conn", "answers/s")
            on = Row(f"record_answers 1,000/call, events on, {n_conn} conn", "answers/s",
                     f"CPU <= {BUDGET:.2f} x off")
            batch_rows.append((n_conn, off, on))
            rows += [off, on]
            pairs.append((off, on))
        call = "SELECT count(*) FROM record_answers(%s::jsonb)"
        for k in range(runs):
            measured(urls["off"], single_off, None,
                     partial(pgbench, pgbench_bin, urls["off"], scripts["off"], seconds), postmaster)
            measured(urls["on"], single_on, single_off,
                     partial(pgbench, pgbench_bin, urls["on"], scripts["on"], seconds), postmaster)
            for n_conn, off, on in batch_rows:
                for label, row, base in (("off", off, None), ("on", on, off)):
                    users, items = seeded[label]
                    measured(urls[label], row, base, partial(
                        batch_run, urls[label], users, items, seconds, n_conn, call, 500 + k),
                        postmaster)
        print(table(rows))
        verdicts = []
        for off, on in pairs:
            cpu = statistics.median(b / a for a, b in zip(off.cpu, on.cpu))
            wal = statistics.median(b / a for a, b in zip(off.wal, on.wal))
            ok = cpu <= BUDGET
            verdicts.append(ok)
            print(f"{on.label}: server CPU per answer {statistics.median(on.cpu):.1f} µs vs "
                  f"{statistics.median(off.cpu):.1f} µs off = {cpu:.3f} x (median of same-round "
                  f"ratios; budget {BUDGET:.2f}: {'within' if ok else 'OVER'}), "
                  f"WAL per answer {wal:.3f} x")

        n, elapsed = read_rate(urls["on"])
        rate = n / elapsed
        verdicts.append(rate >= READ_GOAL)
        print(f"dmdb events consume (CLI, to /dev/null, batches of 5,000): {n:,} events in "
              f"{elapsed:.2f} s = {rate:,.0f} events/s (goal >= {READ_GOAL:,}: "
              f"{'met' if rate >= READ_GOAL else 'MISSED'}; includes the process start)")

        if answers:
            users, items = seeded["on"]
            r = exactly_once(urls["on"], users, items, answers, work)
            ok = (r["missing"] == 0 and r["duplicates"] == 0 and r["learner_order_violations"] == 0
                  and r["positions_in_order"] and r["answers"] == answers // 2 // BATCH * 2 * BATCH)
            verdicts.append(ok)
            print(f"exactly-once run: {r['answers']:,} answers through record_answers (2 writers, "
                  f"{r['write_rate']:,.0f} answers/s) with `dmdb events consume --follow` running: "
                  f"{r['events']:,} events handled, {r['missing']} acknowledged answers missing, "
                  f"{r['duplicates']} duplicates, {r['learner_order_violations']} learner-order "
                  f"violations, positions in order: {r['positions_in_order']}; the consumer was "
                  f"{r['behind_when_writers_done']:,} events behind when the writers finished and "
                  f"caught up {r['drain_seconds']:.1f} s later: {'OK' if ok else 'FAILED'}")
        end = os.getloadavg()
        print(f"load average at the end {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}: the machine "
              f"was {'shared, compare the ratios' if max(load[0], end[0]) > 1.5 else 'quiet'}")
        return 0 if all(verdicts) else 1
    finally:
        stop_bench_server(server, home)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
