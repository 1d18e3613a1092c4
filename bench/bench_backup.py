"""Benchmark physical backup and point-in-time restore against pg_dump + pg_restore (#25).

Seeds N learners x M answers (default 10,000 x 100: 1.1M events) through `dmdb seed` on
a throw-away embedded server with durable settings, then alternates, --runs times:

- `dmdb backup base` (pg_basebackup: tar, gzip level 1, manifest, WAL streamed in)
  vs `dmdb backup --out` (pg_dump -Fc, gzip level 6 as pg_dump's default);
- `dmdb restore --to latest --into-dir` (extract, recovery, promotion, started)
  vs `dmdb restore FILE --into DB` (pg_restore in one transaction, indexes rebuilt);

and once each, for the choice of the default: a base backup at gzip:6 and uncompressed.
Prints each run, the medians, the same-run ratios and the sizes (the database's, each
backup's), with the load average: on a shared machine compare ratios, not seconds.

    python bench/bench_backup.py                       # the issue's 1.1M events
    python bench/bench_backup.py --users 1000 --runs 1 # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    import psycopg

    from dmdb.backup import base, logical
    from dmdb.backup.repository import Repository
    from dmdb.backup.restore import RestoredServer, restore_to
    from dmdb.config import Settings
    from dmdb.learning.seed import seed
    from dmdb.migrate import engine
    from dmdb.render import human_bytes
    from dmdb.server.embedded import EmbeddedServer

    root = Path(tempfile.mkdtemp(prefix="dmdb-bench-backup-"))
    home = root / "home"
    server = EmbeddedServer(home)  # durable settings, as a user's embedded server
    info = server.start()
    settings = Settings(host=info.socket_dir, port=info.port, dbname="dmdb", user="postgres",
                        home=home)
    embedded = Settings(home=home)  # the same server, as dmdb finds it with nothing set
    repo = Repository.for_settings(embedded)
    load = os.getloadavg()[0]
    try:
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            engine.up(conn, engine.Project(REPO / "sql"))
        seeded = seed(settings, engine.Project(REPO / "sql"), users=args.users,
                      answers_per_user=args.answers, jobs=args.jobs, random_seed=1)
        with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            db_bytes = conn.execute("SELECT pg_database_size('dmdb')").fetchone()[0]
        print(f"seeded {seeded.events:,} events ({args.users:,} learners x {args.answers}) in "
              f"{seeded.seconds:.1f} s; database {human_bytes(db_bytes)}")

        rows: dict[str, list[float]] = {k: [] for k in (
            "base backup (s)", "pg_dump -Fc (s)", "ratio dump / base",
            "restore --to latest, started (s)", "pg_restore (s)", "ratio pg_restore / restore",
            "backup + restore (s)", "dump + pg_restore (s)", "ratio logical / physical")}
        sizes: dict[str, int] = {}
        for run in range(args.runs):
            taken = base.take(embedded)
            rows["base backup (s)"].append(taken.backup.seconds)
            sizes["base backup (gzip:1)"] = taken.backup.bytes
            dump = root / f"run{run}.dump"
            dumped = logical.backup(settings, dump)
            rows["pg_dump -Fc (s)"].append(dumped.seconds)
            sizes["pg_dump -Fc"] = dumped.bytes
            rows["ratio dump / base"].append(dumped.seconds / taken.backup.seconds)

            into = root / f"restore{run}"
            started = time.monotonic()
            result = restore_to(repo, "latest", into, live_home=home)
            physical = time.monotonic() - started
            with psycopg.connect(result.url) as conn:
                restored = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
            RestoredServer(into, 0).destroy()
            assert restored == seeded.events, (restored, seeded.events)
            target = f"bench_restore_{run}"
            started = time.monotonic()
            logical.restore(settings, dump, target)
            logical_s = time.monotonic() - started
            with psycopg.connect(**settings.conninfo(dbname=target)) as conn:
                assert conn.execute("SELECT count(*) FROM learning_events").fetchone()[0] \
                    == seeded.events
            with psycopg.connect(**settings.conninfo(dbname="postgres"), autocommit=True) as c:
                c.execute(f"DROP DATABASE {target}")
            dump.unlink()
            rows["restore --to latest, started (s)"].append(physical)
            rows["pg_restore (s)"].append(logical_s)
            rows["ratio pg_restore / restore"].append(logical_s / physical)
            rows["backup + restore (s)"].append(taken.backup.seconds + physical)
            rows["dump + pg_restore (s)"].append(dumped.seconds + logical_s)
            rows["ratio logical / physical"].append(
                (dumped.seconds + logical_s) / (taken.backup.seconds + physical))
            shutil.rmtree(repo.backup_dir(taken.backup.name), ignore_errors=True)
            with repo.updating() as catalog:
                catalog.backups = [b for b in catalog.backups if b.name != taken.backup.name]

        extra = []
        for level in ("gzip:6", "none"):
            taken = base.take(embedded, compression=level)
            sizes[f"base backup ({level})"] = taken.backup.bytes
            extra.append(f"base backup {level}: {taken.backup.seconds:.1f} s, "
                         f"{human_bytes(taken.backup.bytes)}")

        print(f"{args.runs} alternating runs; load average {load:.2f} at start, "
              f"{os.getloadavg()[0]:.2f} at the end, {os.cpu_count()} CPUs")
        head = ["measure"] + [f"run {i + 1}" for i in range(args.runs)] + ["median"]
        lines = [head]
        for name, values in rows.items():
            fmt = "{:,.2f}" if "ratio" in name else "{:,.1f}"
            lines.append([name] + [fmt.format(v) for v in values]
                         + [fmt.format(statistics.median(values))])
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        for n, line in enumerate(lines):
            print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
            if n == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        print("sizes: database " + human_bytes(db_bytes) + "; "
              + "; ".join(f"{k} {human_bytes(v)}" for k, v in sizes.items()))
        for line in extra:
            print(line)
    finally:
        real = repo.real
        server.destroy()
        shutil.rmtree(real, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
