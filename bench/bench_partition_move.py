"""Creating a month whose rows wait in DEFAULT, while readers and writers use the table:
the longest waits, the code before #32 (from git) against the code of this checkout.

    python bench/bench_partition_move.py [--rows 1500000 5000000] [--before-ref REF]
    DATABASE_URL=... python bench/bench_partition_move.py     # a server of your own

For each row count and each code (before first, then now): a fresh database with the
shipped schema, N rows of one month (8 months ahead) in the DEFAULT partition and a few
of the current month; then `dmdb.partitions.run(create)` for that month while

  counters  2 connections counting the whole table (unprepared statements, as psql and
            clients behind PgBouncer send them): a count below the rows committed before
            it began is a short read (must be 0);
  probe     1 connection running a cheap statement over every partition (one learner's
            events, by primary key, unprepared): its latency is the time it waited;
  writers   2 connections inserting one row per statement, of the month being created
            and of the current month (the application's answers): latency = wait;
  watcher   pg_locks every 20 ms: the longest wait (now() - waitstart) of any other
            session on a lock, whatever it was.

"Before" runs the `dmdb` package of --before-ref (default: the parent of the commit
that brought the swap, found by its message; `git archive` into a temporary directory) in a subprocess;
"now" runs this checkout's. Without DATABASE_URL a throw-away embedded server is
started (durable settings; --fast turns fsync off for the load). Every figure comes
with the load average: on a shared machine compare before/now of the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CREATE_SCRIPT = """
import json, sys, time
import psycopg
from datetime import date
from dmdb import partitions
month = date.fromisoformat(sys.argv[2])
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    t0 = time.monotonic()
    r = partitions.run(conn, partitions.PlanRequest(action="create", start=month, ahead=0))
    print(json.dumps({"seconds": time.monotonic() - t0, "created": r.created,
                      "errors": r.errors, "module": partitions.__file__}))
"""


def before_code(ref: str | None) -> tuple[Path, str]:
    """The dmdb package (and sql/) of `ref`, extracted into a temporary directory."""
    if ref is None:
        # The oldest commit of the change (later ones mention it too).
        found = subprocess.run(
            ["git", "-C", str(REPO), "log", "--format=%H", "--fixed-strings", "--grep",
             "a month filling DEFAULT takes DEFAULT as its partition"],
            capture_output=True, text=True, check=True).stdout.split()
        found = found[-1] if found else ""
        if not found:
            raise SystemExit("bench: no commit of #32 item 3 in this history; pass --before-ref")
        ref = found + "~1"
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref],
                         capture_output=True, text=True, check=True).stdout.strip()
    out = Path(tempfile.mkdtemp(prefix="dmdb-bench-before-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "dmdb", "sql",
                              "templates", "pyproject.toml"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out, rev


def load(admin_url: str, rows: int) -> tuple[str, str, object, int, int]:
    """A fresh database: (name, url, month, the bench user's id, total rows)."""
    from dmdb import partitions, resources
    from dmdb.migrate.engine import Project, up

    name = f"dmdb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        up(conn, Project(resources.sql_dir()), lock_wait=30)
        month = partitions.add_months(partitions.month_of(conn.execute(
            "SELECT now()").fetchone()[0]), 8)
        lo = partitions.month_bounds(month)[0]
        uid = conn.execute("INSERT INTO users (email, display_name) VALUES "
                           "('bench@example.invalid', 'Bench') RETURNING user_id").fetchone()[0]
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, "
                     "content_id, is_correct, response_time_ms, hints_used, quality, "
                     "mastery_before, mastery_after, response_data) "
                     "SELECT %s, %s + (g %% 2000000) * interval '1 second', 'question_answered', "
                     "1, g %% 400, g %% 3 > 0, 500 + g %% 9000, 0, 4, 0.3, 0.5, "
                     "jsonb_build_object('predicted_correct', 0.4) "
                     "FROM generate_series(1, %s) g", (uid, lo, rows))
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "SELECT %s, now(), 'session_started' FROM generate_series(1, 10)", (uid,))
        conn.execute("VACUUM ANALYZE learning_events")
        total = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
    return name, url, month, uid, total


class Traffic:
    def __init__(self, url: str, month, uid: int, base: int):
        from dmdb import partitions

        self.url, self.uid, self.base = url, uid, base
        self.in_month = partitions.month_bounds(month)[0] + timedelta(days=2)
        self.committed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.phase = "before"
        self.counts: list[tuple[int, int]] = []
        self.lat: dict[str, dict[str, list[float]]] = {}
        self.max_lock_wait = 0.0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.counter) for _ in range(2)]
        self.threads += [threading.Thread(target=self.probe), threading.Thread(target=self.watch)]
        self.threads += [threading.Thread(target=self.writer, args=(when, label))
                         for when, label in ((self.in_month, "writer (month)"),
                                             (None, "writer (now)"))]

    def record(self, what: str, seconds: float) -> None:
        self.lat.setdefault(self.phase, {}).setdefault(what, []).append(seconds)

    def counter(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                floor, t0 = self.base + self.committed, time.monotonic()
                n = conn.execute("SELECT count(*) FROM learning_events",
                                 prepare=False).fetchone()[0]
                self.record("counter", time.monotonic() - t0)
                self.counts.append((floor, n))

    def probe(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                t0 = time.monotonic()
                conn.execute("SELECT count(*) FROM learning_events WHERE user_id = %s",
                             (self.uid + 1,), prepare=False).fetchone()
                self.record("probe (reader)", time.monotonic() - t0)
                time.sleep(0.01)

    def writer(self, when, label: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                                 "VALUES (%s, coalesce(%s, now()), 'session_started')",
                                 (self.uid, when))
                except psycopg.Error as exc:
                    self.errors.append(f"{label}: {exc.sqlstate} {str(exc).splitlines()[0]}")
                    continue
                self.record(label, time.monotonic() - t0)
                with self.lock:
                    self.committed += 1
                time.sleep(0.01)

    def watch(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            me = conn.info.backend_pid
            while not self.stop.is_set():
                wait = conn.execute(
                    "SELECT coalesce(extract(epoch FROM max(now() - l.waitstart)), 0) "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.application_name <> 'dmdb' AND l.pid <> %s",
                    (me,)).fetchone()[0]
                if self.phase == "during":
                    self.max_lock_wait = max(self.max_lock_wait, float(wait))
                time.sleep(0.02)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    @property
    def short(self) -> int:
        return sum(1 for floor, n in self.counts if n < floor)


def one_run(admin_url: str, rows: int, code: str, before_dir: Path | None) -> dict:
    name, url, month, uid, total = load(admin_url, rows)
    try:
        traffic = Traffic(url, month, uid, total)
        traffic.start()
        time.sleep(2)
        traffic.phase = "during"
        env = dict(os.environ)
        code_dir = before_dir if before_dir is not None else REPO
        env["PYTHONPATH"] = str(code_dir)
        done = subprocess.run([sys.executable, "-c", CREATE_SCRIPT, url, month.isoformat()],
                              capture_output=True, text=True, env=env, check=False,
                              cwd=code_dir)
        traffic.phase = "after"
        time.sleep(2)
        traffic.finish()
        if done.returncode != 0:
            raise SystemExit(f"bench: the create failed: {done.stderr.strip()[-500:]}")
        import json

        out = json.loads(done.stdout.strip().splitlines()[-1])
        during = traffic.lat.get("during", {})
        before = traffic.lat.get("before", {})
        if not out["module"].startswith(str(code_dir)):
            raise SystemExit(f"bench: ran {out['module']}, not the code of {code_dir}")
        return {"rows": rows, "code": code, "seconds": out["seconds"],
                "created": out["created"], "errors": out["errors"],
                "max": {k: max(v) for k, v in during.items()},
                "median_before": {k: statistics.median(v) for k, v in before.items()},
                "lock_wait": traffic.max_lock_wait, "short": traffic.short,
                "counts": len(traffic.counts), "traffic_errors": traffic.errors[:3],
                "load": os.getloadavg()[0]}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_500_000, 5_000_000])
    parser.add_argument("--before-ref", help="git revision of the code before (default: "
                        "the parent of the #32 item 3 commit)")
    parser.add_argument("--only-now", action="store_true", help="skip the code before")
    parser.add_argument("--fast", action="store_true", help="embedded server without fsync")
    args = parser.parse_args()
    # A TERM stops the runs and still drops the scratch databases and the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from bench_record_answer import start_bench_server, stop_bench_server

    server = home = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        server, home, url = start_bench_server(args.fast)
        admin_url = url.replace("/dmdb_bench?", "/postgres?")
    before_dir, rev = (None, None) if args.only_now else before_code(args.before_ref)
    print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"before = {rev or '-'}, now = this checkout")
    results = []
    try:
        for rows in args.rows:
            for code in (["now"] if args.only_now else ["before", "now"]):
                r = one_run(admin_url, rows, code, before_dir if code == "before" else None)
                results.append(r)
                c = r["created"][0] if r["created"] else {}
                print(f"  {rows:>9,} rows, {code:6s}: create {r['seconds']:6.2f} s "
                      f"(swapped {c.get('swapped', False)}, {c.get('moved_rows')} rows), "
                      f"load {r['load']:.2f}", flush=True)
    finally:
        stop_bench_server(server, home)
        if before_dir is not None:
            import shutil

            shutil.rmtree(before_dir, ignore_errors=True)
    head = ["rows", "code", "create (s)", "probe reader max wait (s)", "writer (month) max (s)",
            "writer (now) max (s)", "counter max (s) [median before]", "longest lock wait (s)",
            "short reads", "load"]
    lines = [head]
    for r in results:
        m, b = r["max"], r["median_before"]
        lines.append([f"{r['rows']:,}", r["code"], f"{r['seconds']:.2f}",
                      f"{m.get('probe (reader)', 0):.3f}", f"{m.get('writer (month)', 0):.3f}",
                      f"{m.get('writer (now)', 0):.3f}",
                      f"{m.get('counter', 0):.2f} [{b.get('counter', 0):.2f}]",
                      f"{r['lock_wait']:.3f}", f"{r['short']} of {r['counts']}",
                      f"{r['load']:.2f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in results:
        if r["errors"] or r["traffic_errors"]:
            print(f"  {r['rows']:,} {r['code']}: errors {r['errors']} {r['traffic_errors']}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
