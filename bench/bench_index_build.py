"""How long `dmdb indexes build` takes on a partitioned table, and what writers feel.

Creates a scratch database on the server of DATABASE_URL (its role needs CREATEDB), loads
N rows into a 4-way hash-partitioned table, then builds two declared indexes with
`dmdb.indexes.build` while one connection inserts in a loop, and prints the build time
and the insert latencies (p50 / p99 / max). Drops the scratch database at the end.

    DATABASE_URL=postgresql://postgres@localhost/postgres python bench/bench_index_build.py --rows 2000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from dmdb import indexes
from dmdb.migrate.engine import Project, up

SCHEMA = """
CREATE TABLE big (id bigint NOT NULL, k int NOT NULL, payload text NOT NULL)
    PARTITION BY HASH (id);
CREATE TABLE big_p0 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE big_p1 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE big_p2 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE big_p3 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 3);
CREATE INDEX big_payload_idx ON big (payload);
CREATE INDEX big_k_payload_idx ON big (k, payload);
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        raise SystemExit("set DATABASE_URL to a server where this role may CREATE DATABASE")

    name = f"dmdb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp)
            for sub in ("migrations", "rollbacks"):
                (tree / sub).mkdir()
            (tree / "migrations" / "0001_big.sql").write_text(SCHEMA)
            (tree / "rollbacks" / "0001_big.sql").write_text("DROP TABLE big;\n")
            with psycopg.connect(url, autocommit=True) as conn:
                up(conn, Project(tree), lock_wait=30)
                conn.execute("DROP INDEX big_payload_idx")
                conn.execute("DROP INDEX big_k_payload_idx")
                t0 = time.perf_counter()
                conn.execute("INSERT INTO big SELECT g, g %% 1000, md5(g::text) "
                             "FROM generate_series(1, %s) g", (args.rows,))
                conn.execute("VACUUM ANALYZE big")
                print(f"loaded {args.rows} rows in {time.perf_counter() - t0:.1f}s")
            declared = indexes.declared_indexes(tree)

            def writer(waits: list[float], stop: threading.Event, first_id: int) -> None:
                with psycopg.connect(url, autocommit=True) as conn:
                    n = first_id
                    while not stop.is_set():
                        n += 1
                        t = time.perf_counter()
                        conn.execute("INSERT INTO big VALUES (%s, %s, md5(%s::text))",
                                     (n, n % 1000, n))
                        waits.append(time.perf_counter() - t)
                        time.sleep(0.005)

            def insert_while(action, first_id: int) -> tuple[list[float], object, float]:
                waits: list[float] = []
                stop = threading.Event()
                thread = threading.Thread(target=writer, args=(waits, stop, first_id))
                thread.start()
                try:
                    t0 = time.perf_counter()
                    outcome = action()
                    duration = time.perf_counter() - t0
                finally:
                    stop.set()
                    thread.join()
                return sorted(w * 1000 for w in waits), outcome, duration

            def build():
                with psycopg.connect(url, autocommit=True) as conn:
                    return indexes.build(conn, declared)

            # Baseline, same run: the same writer for 3 s with no build going on.
            base, _, _ = insert_while(lambda: time.sleep(3), args.rows + 1_000_000)
            ms, result, duration = insert_while(build, args.rows + 2_000_000)

            def line(label: str, xs: list[float]) -> str:
                return (f"{label:<22} {len(xs):>5} inserts: p50 {statistics.median(xs):6.2f} ms, "
                        f"p99 {xs[int(len(xs) * 0.99) - 1]:6.2f} ms, max {xs[-1]:6.2f} ms")

            print(f"built {', '.join(result.built)} in {duration:.2f}s "
                  f"({len(result.steps)} steps, {result.retries} lock retries)")
            print(line("baseline (no build)", base))
            print(line("during the build", ms))
            print(f"ratio during / baseline: p50 {statistics.median(ms) / statistics.median(base):.2f}, "
                  f"max {ms[-1] / base[-1]:.2f}; longest wait = {ms[-1] / 1000 / duration:.1%} "
                  "of the build time")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    main()
