"""Where record_answer's CPU goes beyond its anchors: perf profiles of the two backends
serving pgbench, for floor4fn, record_answer and app (bench_anchors.py's scripts).

    python bench/profile_anchors.py [--seconds 10]     # needs perf (Debian: linux-perf)

An embedded server with dmdb's settings (fsync on) is started and removed; the pool is
prepared as bench_anchors.py does. For each variant pgbench runs 2 connections while
`perf record -F 1999 -p <the two backends>` samples them; each symbol's samples are
turned into µs per answer (samples / 1999 Hz / answers), and the differences
record_answer - floor4fn, app - record_answer and (1 connection, 1,000 answers per
call) record_answers - bulk floor are printed by symbol (the kernel's
and plpgsql.so's summed). Self time only: PostgreSQL is built without frame pointers,
so call graphs do not unwind.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_anchors as anchors  # noqa: E402 - this script's directory
from bench_record_answer import (  # noqa: E402
    ensure_schema,
    start_bench_server,
    stop_bench_server,
)

HZ = 1999


def profile(pgbench_bin: str, url: str, script: Path, seconds: float, out: Path) -> float:
    """Answers per second of the run; the samples in `out`."""
    subprocess.run([pgbench_bin, "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", "3",
                    "-f", str(script), url], capture_output=True, check=True)
    run = subprocess.Popen([pgbench_bin, "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T",
                            f"{seconds + 4:g}", "-f", str(script), url],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'")]
    subprocess.run(["perf", "record", "-F", str(HZ), "-o", str(out), "-p",
                    ",".join(map(str, pids)), "--", "sleep", f"{seconds:g}"],
                   capture_output=True, check=True)
    tps = re.search(r"^tps = ([0-9.]+)", run.communicate()[0], re.M)
    return float(tps[1])


def per_answer(data: Path, answers: float) -> collections.Counter:
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort",
                          "dso,symbol", "-n", "--stdio"], capture_output=True, text=True,
                         check=True).stdout
    found: collections.Counter = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+(\S+)\s+\[.\]\s+(\S+)", line)
        if m:
            dso, symbol = m[2], m[3]
            key = ("kernel" if dso.startswith("[kernel") else
                   "plpgsql.so" if dso == "plpgsql.so" else symbol)
            found[key] += int(m[1]) / HZ / answers * 1e6
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-batches", action="store_true",
                        help="single answers only (batches: 1 connection, 1,000 per call)")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("profile_anchors: perf is not installed (Debian: apt-get install "
                         "linux-perf)")
    from dmdb.server.embedded import pg_tool

    pgbench_bin = str(pg_tool("pgbench"))
    work = Path(tempfile.mkdtemp(prefix="dmdb-profile-"))
    server, home, url = start_bench_server(False)
    try:
        ensure_schema(url)
        setup = anchors.prepare(url, args.users)
        ids = setup["ids"]
        costs = {}
        for name, text in (("floor4fn", anchors.FLOOR4FN_SCRIPT),
                           ("record_answer", anchors.SINGLE_SCRIPT), ("app", anchors.APP_SCRIPT)):
            for key, value in ids.items():
                text = text.replace("{" + key + "}", str(value))
            script = work / f"{name}.sql"
            script.write_text(text)
            tps = profile(pgbench_bin, url, script, args.seconds, work / f"{name}.data")
            costs[name] = per_answer(work / f"{name}.data", tps * args.seconds)
            print(f"{name}: {tps:,.0f} answers/s, {sum(costs[name].values()):.0f} µs of "
                  "backend CPU per answer (kernel included)", flush=True)
        if not args.no_batches:
            users, pool, concept_of = setup["users"], setup["pool"], setup["concept_of"]
            answers = [anchors.make_answers(random.Random(j), users, pool) for j in range(8)]
            for name, batches, bulk in (
                    ("bulk floor", [[anchors.bulk_arrays(a, concept_of) for a in answers]], True),
                    ("record_answers", [[json.dumps(a) for a in answers]], False)):
                anchors.batch_run(url, batches, 2, bulk)  # warm-up
                result: dict = {}
                runner = threading.Thread(target=lambda b=batches, k=bulk, out=result: out.update(
                    r=anchors.batch_run(url, b, args.seconds + 3, k)))
                runner.start()
                time.sleep(1.5)
                with psycopg.connect(url, autocommit=True) as conn:
                    pids = [r[0] for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                        "AND pid <> pg_backend_pid() AND datname = current_database()")]
                data = work / f"{name.replace(' ', '_')}.data"
                subprocess.run(["perf", "record", "-F", str(HZ), "-o", str(data), "-p",
                                ",".join(map(str, pids)), "--", "sleep", f"{args.seconds:g}"],
                               capture_output=True, check=True)
                runner.join()
                rate = result["r"][0]
                costs[name] = per_answer(data, rate * args.seconds)
                print(f"{name} (1 conn): {rate:,.0f} answers/s, "
                      f"{sum(costs[name].values()):.1f} µs of backend CPU per answer", flush=True)
        pairs = [("record_answer", "floor4fn"), ("app", "record_answer")]
        if not args.no_batches:
            pairs.append(("record_answers", "bulk floor"))
        for a, b in pairs:
            keys = set(costs[a]) | set(costs[b])
            diff = sorted(((costs[a][k] - costs[b][k], k) for k in keys), reverse=True)
            print(f"\n{a} - {b}: {sum(costs[a].values()) - sum(costs[b].values()):.0f} "
                  "µs per answer; the symbols that differ most (µs per answer):")
            for d, k in diff[:args.top]:
                print(f"  {d:7.1f}  {k}  ({costs[a][k]:.1f} vs {costs[b][k]:.1f})")
    finally:
        stop_bench_server(server, home)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
