"""`dmdb indexes build`: executes a plan, one advisory-locked run at a time, with
progress from pg_stat_progress_create_index and retries on lock timeout.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import DmdbError, first_line
from dmdb.indexes.catalog import read_catalog, resolve_table
from dmdb.indexes.declared import DeclaredIndex
from dmdb.indexes.plan import IndexPlan, Step, plan_build

if TYPE_CHECKING:
    import psycopg

# Session advisory lock serialising `dmdb indexes build` runs: "dmdb" in ASCII, then 6.
BUILD_LOCK_KEY = 0x646D6462_00000006
DDL_LOCK_TIMEOUT = "1s"
DDL_ATTEMPTS = 8


@dataclass
class BuildProgress:
    """Reported while a build runs: which step, and pg_stat_progress_create_index's view."""

    step_number: int  # 1-based
    steps_total: int
    step: Step
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    finished: bool = False


@dataclass
class BuildResult:
    dry_run: bool
    indexes: list[IndexPlan]
    built: list[str] = field(default_factory=list)  # declared indexes now valid
    failed: list[dict] = field(default_factory=list)  # {"index", "step", "error"}
    retries: int = 0  # lock-timeout retries of ON ONLY / ATTACH steps
    seconds: float = 0.0

    @property
    def steps(self) -> list[Step]:
        return [s for p in self.indexes for s in p.steps]

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "indexes": [p.to_dict() for p in self.indexes],
            "built": self.built,
            "failed": self.failed,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }


class _Poller:
    """Polls pg_stat_progress_create_index for one backend from a second connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection], pid: int, interval: float):
        self._connect = connect
        self._pid = pid
        self._interval = interval
        self._conn = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, report: Callable[[dict], None]) -> None:
        self._stop.clear()

        def run():
            import psycopg

            try:
                if self._conn is None:
                    self._conn = self._connect()
                query = resources.query("indexes_progress")
                while not self._stop.wait(self._interval):
                    row = self._conn.execute(query, {"pid": self._pid}).fetchone()
                    if row is not None:
                        names = ("phase", "blocks_total", "blocks_done", "tuples_total",
                                 "tuples_done", "lockers_total", "lockers_done",
                                 "partitions_total", "partitions_done")
                        report(dict(zip(names, row)))
            except (psycopg.Error, DmdbError):  # progress is cosmetic: never fail the build
                return

        self._thread = threading.Thread(target=run, name="dmdb-index-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._conn is not None:
            import psycopg

            with contextlib.suppress(psycopg.Error):
                self._conn.close()


def _progress_numbers(row: dict) -> tuple[int | None, int | None]:
    """Done/total of the phase in progress (blocks while scanning, else tuples/lockers)."""
    for done, total in (("blocks_done", "blocks_total"), ("tuples_done", "tuples_total"),
                        ("lockers_done", "lockers_total")):
        if row.get(total):
            return row[done], row[total]
    return None, None


def build(
    conn: psycopg.Connection,
    declared: list[DeclaredIndex],
    *,
    table: str | None = None,
    dry_run: bool = False,
    lock_timeout: str = DDL_LOCK_TIMEOUT,
    attempts: int = DDL_ATTEMPTS,
    progress: Callable[[BuildProgress], None] | None = None,
    monitor: Callable[[], psycopg.Connection] | None = None,
    poll_interval: float = 0.5,
) -> BuildResult:
    """Make the database's indexes match `declared`, without blocking writers.

    `conn` must be in autocommit (CONCURRENTLY cannot run in a transaction block). Runs
    serialise on a session advisory lock. A step that fails leaves its index INVALID (or
    unattached) and the build goes on with the next declared index; the failures are in
    the result, and the next run resumes. `monitor` opens a second connection, from
    which pg_stat_progress_create_index is polled for `progress` while an index builds.
    """
    import psycopg

    from dmdb.config import check_lock_timeout
    from dmdb.db import advisory_unlock, die_with_client, retry_on_lock_timeout, try_advisory_lock

    if not conn.autocommit:
        raise DmdbError("indexes build needs an autocommit connection (CONCURRENTLY cannot "
                        "run inside a transaction block)")
    die_with_client(conn)  # a killed build stops on the server and frees its lock
    lock_timeout = check_lock_timeout(lock_timeout, "--lock-timeout")
    started = time.monotonic()
    target = resolve_table(conn, table) if table else None
    if dry_run:
        plans = plan_build(declared, read_catalog(conn), target)
        return BuildResult(True, plans, seconds=time.monotonic() - started)
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))

    if not try_advisory_lock(conn, BUILD_LOCK_KEY):
        raise DmdbError("another `dmdb indexes build` is running against this database; "
                        "wait for it to finish, then run this one again")
    poller = None
    try:
        conn.execute("SET application_name = 'dmdb'")
        plans = plan_build(declared, read_catalog(conn), target)
        result = BuildResult(False, plans)
        total = len(result.steps)
        number = 0
        if monitor is not None and progress is not None:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            poller = _Poller(monitor, pid, poll_interval)
        for plan in plans:
            if not plan.steps:
                continue
            failed = False
            for step in plan.steps:
                number += 1
                if failed:
                    continue
                if progress is not None:
                    progress(BuildProgress(number, total, step))
                try:
                    if step.concurrent:
                        conn.execute("SET lock_timeout = 0")
                        if poller is not None:
                            def report(row, number=number, step=step):
                                done, of = _progress_numbers(row)
                                progress(BuildProgress(number, total, step, row.get("phase"),
                                                       done, of))
                            poller.start(report)
                        try:
                            conn.execute(step._statement)
                        finally:
                            if poller is not None:
                                poller.stop()
                            conn.execute("SELECT set_config('lock_timeout', %s, false)",
                                         (lock_timeout,))
                    else:
                        def on_retry(attempt, delay, exc):
                            result.retries += 1

                        retry_on_lock_timeout(lambda s=step: conn.execute(s._statement),
                                              attempts=attempts, on_retry=on_retry)
                except psycopg.Error as exc:
                    failed = True
                    first = first_line(exc)
                    result.failed.append({"index": plan.index, "step": step.action,
                                          "on": step.index, "error": first})
                    continue
                if progress is not None:
                    progress(BuildProgress(number, total, step, finished=True))
            if not failed:
                result.built.append(plan.index)
        # An index whose every partition is attached turns valid; say so if one did not.
        if result.built:
            after = read_catalog(conn)
            for name in list(result.built):
                schema, _, rel = name.partition(".")
                row = after.index_by_name.get((schema, rel))
                if row is None or not row.valid:
                    result.built.remove(name)
                    result.failed.append({"index": name, "step": "validate", "on": name,
                                          "error": "index is still not valid after the build"})
        result.seconds = time.monotonic() - started
        return result
    finally:
        if poller is not None:
            poller.close()
        try:
            advisory_unlock(conn, BUILD_LOCK_KEY)
        except psycopg.Error:
            pass
