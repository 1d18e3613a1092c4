"""`dmdb maintenance refresh`: `REFRESH MATERIALIZED VIEW CONCURRENTLY` for each
materialized view of the schema (plain REFRESH when it was never populated or has no
unique index that allows CONCURRENTLY), then the incremental rollup of content counters
and bandit arms (`rollup_learning_events()`, sql/functions/rollup.sql) when the database
has it.

Planning is pure (`plan_refresh`); `refresh` executes a plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import DmdbError, first_line
from dmdb.maintenance.tables import SCHEMA

if TYPE_CHECKING:
    import psycopg


ROLLUP_FUNCTION = "rollup_learning_events"
ROLLUP_SIGNATURE = "public.rollup_learning_events(interval)"


@dataclass
class RefreshTarget:
    view: str  # schema-qualified
    mode: str  # concurrently | plain
    reason: str  # why plain, or "populated, unique index"
    command: str
    seconds: float | None = None
    error: str | None = None
    _statement: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("_statement", None)
        return data


@dataclass
class RefreshResult:
    dry_run: bool
    views: list[RefreshTarget]
    rollup: dict  # {"function", "present", "command", "called", "result", "error", "seconds"}
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(v.error for v in self.views) or bool(self.rollup.get("error"))

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "views": [v.to_dict() for v in self.views],
                "rollup": self.rollup, "seconds": round(self.seconds, 3)}


def plan_refresh(matviews: list[dict]) -> list[RefreshTarget]:
    """CONCURRENTLY when the view is populated and has a usable unique index (pure)."""
    from psycopg import sql

    out = []
    for m in matviews:
        name = sql.Identifier(m["schema"], m["name"])
        if not m["populated"]:
            mode, reason = "plain", "never populated (CONCURRENTLY needs a populated view)"
        elif not m["has_unique_index"]:
            mode, reason = "plain", "no unique index on plain columns (CONCURRENTLY needs one)"
        else:
            mode, reason = "concurrently", "populated, with a unique index"
        stmt = sql.SQL("REFRESH MATERIALIZED VIEW {conc}{name}").format(
            conc=sql.SQL("CONCURRENTLY " if mode == "concurrently" else ""), name=name)
        out.append(RefreshTarget(f"{m['schema']}.{m['name']}", mode, reason, stmt.as_string(),
                                 _statement=stmt))
    return out


def run_rollup(conn: psycopg.Connection) -> dict | None:
    """Bring content counters and bandit arms up to date from learning_events.

    `conn` in autocommit: the call is its own READ COMMITTED transaction, as the function
    requires."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM public.rollup_learning_events()").fetchone()
    return dict(row) if row else None


def refresh(
    conn: psycopg.Connection,
    *,
    dry_run: bool = False,
    schema: str = SCHEMA,
    rollup: bool = True,
    progress: Callable[[int, int, str, bool], None] | None = None,
) -> RefreshResult:
    """Refresh every materialized view of `schema`, one at a time, then run the rollup.
    Each REFRESH runs in its own transaction under the session's lock_timeout, retried
    with backoff; a failure is recorded and the run goes on."""
    import psycopg
    from psycopg.rows import dict_row

    from dmdb.db import die_with_client, retry_on_lock_timeout

    if not conn.autocommit:
        raise DmdbError("maintenance refresh needs an autocommit connection")
    die_with_client(conn)  # a killed run's REFRESH stops on the server, its locks freed
    started = time.monotonic()
    with conn.cursor(row_factory=dict_row) as cur:
        matviews = cur.execute(resources.query("maintenance_matviews"),
                               {"schema": schema}).fetchall()
    views = plan_refresh(matviews)
    present = bool(conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                                (ROLLUP_SIGNATURE,)).fetchone()[0])
    roll = {"function": ROLLUP_FUNCTION, "present": present,
            "command": f"SELECT * FROM {ROLLUP_FUNCTION}()",  # a constant name, for --dry-run
            "called": False, "result": None, "error": None, "seconds": None}
    result = RefreshResult(dry_run, views, roll)
    if not views and not present and schema == SCHEMA and conn.execute(
            "SELECT to_regclass('_yoyo_migration') IS NULL").fetchone()[0]:
        from dmdb.errors import schema_missing

        raise schema_missing(conn.info.dbname, "dmdb maintenance refresh (its views and rollup)")
    if dry_run:
        result.seconds = time.monotonic() - started
        return result
    total = len(views) + (1 if rollup and present else 0)
    for number, view in enumerate(views, 1):
        if progress is not None:
            progress(number, total, view.view, False)
        t0 = time.monotonic()
        try:
            retry_on_lock_timeout(lambda v=view: conn.execute(v._statement))
        except psycopg.Error as exc:
            view.error = first_line(exc)
        view.seconds = round(time.monotonic() - t0, 3)
        if progress is not None:
            progress(number, total, view.view, True)
    if rollup and present:
        if progress is not None:
            progress(total, total, ROLLUP_FUNCTION, False)
        t0 = time.monotonic()
        try:
            roll["result"] = run_rollup(conn)
            roll["called"] = True
        except psycopg.Error as exc:
            roll["error"] = first_line(exc)
        roll["seconds"] = round(time.monotonic() - t0, 3)
        if progress is not None:
            progress(total, total, ROLLUP_FUNCTION, True)
    result.seconds = time.monotonic() - started
    return result
