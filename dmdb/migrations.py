"""The migration engine: yoyo-migrations' file format and ledger, with what yoyo lacks.

yoyo (9.x) reads the SQL files (statements split by sqlparse, `-- transactional:` and
`-- depends:` directives) and keys its ledger `_yoyo_migration` by the SHA-256 of the
migration id. dmdb keeps that format, so `yoyo list` still reads the database, and adds:

- rollbacks in `sql/rollbacks/<same name>.sql`, required before a migration is applied;
- each migration applied *and recorded* in one transaction (yoyo records it in a second
  transaction: a crash in between would apply it twice);
- a session advisory lock for the whole run instead of yoyo's lock row, which a killed
  process leaves behind; PostgreSQL frees an advisory lock when its session ends;
- SHA-256 of every applied file's content (`_dmdb_checksum`): edits are detected;
- `sql/functions/*.sql` as repeatable files, re-applied when their checksum changes.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import ConfigError, LockNotAvailable, MigrationError

if TYPE_CHECKING:
    import psycopg

# Session advisory lock key for migration runs: "dmdb" in ASCII, then 1.
MIGRATION_LOCK_KEY = 0x646D6462_00000001
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)$")


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line of the file where the statement's SQL starts
    text_line: int = 0  # the line where `sql` (with its leading comments) starts


@dataclass(frozen=True)
class SqlFile:
    id: str
    path: Path
    sha256: str
    statements: tuple[Statement, ...]
    transactional: bool = True
    description: str = ""


@dataclass(frozen=True)
class Migration:
    id: str
    forward: SqlFile
    rollback: SqlFile | None

    @property
    def hash(self) -> str:
        from yoyo.migrations import get_migration_hash

        return get_migration_hash(self.id)


@dataclass
class MigrationState:
    id: str
    state: str  # applied | pending
    applied_at: str | None = None
    edited: bool = False
    rollback_edited: bool = False
    missing_rollback: bool = False
    missing_file: bool = False
    transactional: bool = True
    description: str = ""


@dataclass
class FunctionState:
    id: str
    state: str  # applied | pending | changed
    applied_at: str | None = None


@dataclass
class Status:
    migrations: list[MigrationState]
    functions: list[FunctionState]

    @property
    def problems(self) -> list[str]:
        out = []
        for m in self.migrations:
            if m.edited:
                out.append(f"{m.id}: applied migration edited since it was applied")
            if m.rollback_edited:
                out.append(f"{m.id}: rollback edited since the migration was applied")
            if m.missing_rollback:
                out.append(f"{m.id}: no rollback file")
            if m.missing_file:
                out.append(f"{m.id}: applied but its file is missing")
        return out

    def to_dict(self) -> dict:
        applied = sum(m.state == "applied" for m in self.migrations)
        return {
            "migrations": [asdict(m) for m in self.migrations],
            "functions": [asdict(f) for f in self.functions],
            "summary": {
                "applied": applied,
                "pending": sum(m.state == "pending" for m in self.migrations),
                "edited": sum(m.edited or m.rollback_edited for m in self.migrations),
                "missing_rollback": sum(m.missing_rollback for m in self.migrations),
                "functions_pending": sum(f.state != "applied" for f in self.functions),
                "up_to_date": not self.problems
                and all(m.state == "applied" for m in self.migrations)
                and all(f.state == "applied" for f in self.functions),
            },
        }


@dataclass
class RunResult:
    """What `up` / `rollback` did (or, with dry_run, would do)."""

    action: str
    migrations: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    dry_run: bool = False
    waited_for_lock: float = 0.0
    sql: list[tuple[str, str]] = field(default_factory=list)  # (file id, SQL) for --dry-run

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sql"] = [{"file": f, "sql": s} for f, s in self.sql]
        return data


# -- reading files -------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_blank(sql: str) -> bool:
    import sqlparse

    return not sqlparse.format(sql, strip_comments=True).strip()


def _leading_comment_lines(raw: str) -> int:
    """Lines of blank space and `--` comments before a statement's first SQL line."""
    count = 0
    for line in raw.split("\n"):
        if line.strip() and not line.strip().startswith("--"):
            break
        count += 1
    return count


def read_sql_file(path: Path) -> SqlFile:
    """Parse a SQL file as yoyo does (sqlparse split, leading directives), keeping line numbers."""
    import sqlparse
    from yoyo.migrations import parse_metadata_from_sql_comments

    text = path.read_text(encoding="utf-8")
    directives, description, _ = parse_metadata_from_sql_comments(text)
    transactional_raw = directives.get("transactional", "true").strip().lower()
    if transactional_raw not in ("true", "false"):
        raise MigrationError(
            f"{path}: '-- transactional: {transactional_raw}' must be true or false"
        )
    statements = []
    offset = 0
    for raw in sqlparse.split(text):
        start = text.find(raw, offset)
        if start < 0:  # sqlparse normalised something: fall back to the running offset
            start = offset
        offset = start + len(raw)
        if _is_blank(raw):
            continue
        text_line = text.count("\n", 0, start) + 1
        statements.append(Statement(raw.strip(), text_line + _leading_comment_lines(raw), text_line))
    return SqlFile(
        id=path.stem,
        path=path,
        sha256=_sha256(text),
        statements=tuple(statements),
        transactional=transactional_raw == "true",
        description=description.strip().splitlines()[0] if description.strip() else "",
    )


class Project:
    """The SQL files of one project: sql_dir/{migrations,rollbacks,functions}.

    The files are read and parsed once, when the project is made; a run works on that
    snapshot (make a new Project to see edits)."""

    def __init__(self, sql_dir: Path | None = None):
        self.sql_dir = Path(sql_dir) if sql_dir else resources.sql_dir()
        if not (self.sql_dir / "migrations").is_dir():
            raise ConfigError(
                f"{self.sql_dir}/migrations is not a directory; "
                "pass --sql-dir (or DMDB_SQL_DIR) pointing at a tree with migrations/"
            )
        # Misnamed or duplicate files are usage errors, found up front.
        self._migrations = self._read_migrations()
        self._functions: list[SqlFile] | None = None

    def migrations(self) -> list[Migration]:
        return self._migrations

    def functions(self) -> list[SqlFile]:
        if self._functions is None:
            folder = self.sql_dir / "functions"
            self._functions = ([read_sql_file(p) for p in sorted(folder.glob("*.sql"))]
                               if folder.is_dir() else [])
        return self._functions

    def _read_migrations(self) -> list[Migration]:
        out = []
        for path in sorted((self.sql_dir / "migrations").glob("*.sql")):
            if not MIGRATION_NAME.match(path.stem):
                raise ConfigError(
                    f"{path.name}: migration files are named NNNN_lower_snake.sql; rename it"
                )
            rollback_path = self.sql_dir / "rollbacks" / path.name
            rollback = read_sql_file(rollback_path) if rollback_path.is_file() else None
            out.append(Migration(path.stem, read_sql_file(path), rollback))
        numbers = [m.id[:4] for m in out]
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        if dupes:
            raise ConfigError(f"two migrations share the number {dupes[0]}; renumber one of them")
        return out


# -- the ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    file_id: str
    sha256: str
    rollback_sha256: str | None
    applied_at: datetime


def ledger_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT to_regclass('_yoyo_migration') IS NOT NULL AND to_regclass('_dmdb_checksum') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def ensure_ledger(conn: psycopg.Connection) -> None:
    if ledger_exists(conn):
        return
    with conn.transaction():
        conn.execute(resources.query("ledger"))


def read_ledger(conn: psycopg.Connection) -> tuple[dict[str, LedgerRow], dict[str, LedgerRow]]:
    """Applied migrations and functions, keyed by file id."""
    if not ledger_exists(conn):
        return {}, {}
    migrations: dict[str, LedgerRow] = {}
    rows = conn.execute(resources.query("ledger_applied")).fetchall()
    for file_id, sha, rsha, at in rows:
        migrations[file_id] = LedgerRow(file_id, sha, rsha, at)
    functions = {
        r[0]: LedgerRow(r[0], r[1], None, r[2])
        for r in conn.execute(
            "SELECT file_id, sha256, applied_at FROM _dmdb_checksum WHERE kind = 'function'"
        ).fetchall()
    }
    return migrations, functions


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")


def status(conn: psycopg.Connection, project: Project) -> Status:
    applied, applied_functions = read_ledger(conn)
    states: list[MigrationState] = []
    files = project.migrations()
    for m in files:
        row = applied.get(m.id)
        state = MigrationState(
            id=m.id,
            state="applied" if row else "pending",
            applied_at=_iso(row.applied_at) if row else None,
            missing_rollback=m.rollback is None,
            transactional=m.forward.transactional,
            description=m.forward.description,
        )
        if row and row.sha256:
            state.edited = row.sha256 != m.forward.sha256
            if m.rollback is not None and row.rollback_sha256:
                state.rollback_edited = row.rollback_sha256 != m.rollback.sha256
        states.append(state)
    known = {m.id for m in files}
    for file_id, row in applied.items():
        if file_id not in known:
            states.append(
                MigrationState(file_id, "applied", _iso(row.applied_at), missing_file=True)
            )
    states.sort(key=lambda s: s.id)
    functions = []
    for f in project.functions():
        row = applied_functions.get(f.id)
        if row is None:
            functions.append(FunctionState(f.id, "pending"))
        else:
            functions.append(
                FunctionState(
                    f.id, "applied" if row.sha256 == f.sha256 else "changed", _iso(row.applied_at)
                )
            )
    return Status(states, functions)


# -- the lock ------------------------------------------------------------------


def acquire_lock(conn: psycopg.Connection, wait_seconds: float, key: int = MIGRATION_LOCK_KEY) -> float:
    """Take the session advisory lock, waiting up to wait_seconds. Returns seconds waited."""
    from dmdb.db import try_advisory_lock

    started = time.monotonic()
    if try_advisory_lock(conn, key, wait_seconds):
        return time.monotonic() - started
    waited = time.monotonic() - started
    holder = conn.execute(resources.query("ledger_lock_holder"), (key,)).fetchone()
    who = f" (held by backend pid {holder[0]}, {holder[1] or 'no name'})" if holder else ""
    raise LockNotAvailable(
        f"another dmdb run holds the migration lock{who}; waited {waited:.0f}s — "
        "retry later or raise --lock-timeout"
    )


def release_lock(conn: psycopg.Connection, key: int = MIGRATION_LOCK_KEY) -> None:
    from dmdb.db import advisory_unlock

    advisory_unlock(conn, key)


# -- executing -----------------------------------------------------------------


def _execute_file(conn: psycopg.Connection, sql_file: SqlFile) -> None:
    """Run every statement; on error raise MigrationError naming file, line and message."""
    import psycopg

    for stmt in sql_file.statements:
        try:
            conn.execute(stmt.sql)
        except psycopg.Error as exc:
            raise MigrationError(_describe_failure(sql_file, stmt, exc)) from exc


def _describe_failure(sql_file: SqlFile, stmt: Statement, exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    line = stmt.line
    position = getattr(diag, "statement_position", None) if diag else None
    if position:
        try:
            line = stmt.text_line + stmt.sql.count("\n", 0, int(position) - 1)
        except ValueError:
            pass
    primary = (getattr(diag, "message_primary", None) if diag else None) or str(exc).strip()
    primary = primary.splitlines()[0] if primary else type(exc).__name__
    code = getattr(diag, "sqlstate", None) if diag else None
    code_text = f" [{code}]" if code else ""
    return f"{sql_file.path}:{line}: {primary}{code_text}"


def _log_row(conn: psycopg.Connection, migration: Migration, operation: str) -> None:
    conn.execute(
        resources.query("ledger_log"),
        (str(uuid.uuid4()), migration.hash, migration.id, operation, _username(),
         socket.gethostname()),
    )


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _record_applied(conn: psycopg.Connection, migration: Migration) -> None:
    conn.execute(
        resources.query("ledger_mark"),
        (migration.hash, migration.id),
    )
    conn.execute(
        resources.query("ledger_checksum_migration"),
        (migration.id, migration.forward.sha256,
         migration.rollback.sha256 if migration.rollback else None),
    )
    _log_row(conn, migration, "apply")


def _record_rolled_back(conn: psycopg.Connection, migration: Migration) -> None:
    conn.execute("DELETE FROM _yoyo_migration WHERE migration_hash = %s", (migration.hash,))
    conn.execute(
        "DELETE FROM _dmdb_checksum WHERE kind = 'migration' AND file_id = %s", (migration.id,)
    )
    _log_row(conn, migration, "rollback")


def _execute_each(conn: psycopg.Connection, sql_file: SqlFile, note: str) -> None:
    """Autocommit, statement by statement (for `-- transactional: false` files)."""
    import psycopg

    for stmt in sql_file.statements:
        try:
            conn.execute(stmt.sql)
        except psycopg.Error as exc:
            raise MigrationError(_describe_failure(sql_file, stmt, exc) + note) from exc


def apply_migration(conn: psycopg.Connection, migration: Migration, *, record: bool = True) -> None:
    """Apply one migration. Transactional ones run and are recorded in a single transaction."""
    if migration.forward.transactional:
        with conn.transaction():
            _execute_file(conn, migration.forward)
            if record:
                _record_applied(conn, migration)
        return
    # Non-transactional (e.g. CREATE INDEX CONCURRENTLY): each statement on its own,
    # recorded only once every statement succeeded. Such files must be re-runnable.
    _execute_each(conn, migration.forward, " (non-transactional: statements before this one "
                  "stay applied; fix it and run `dmdb up` again)")
    if record:
        with conn.transaction():
            _record_applied(conn, migration)


def rollback_migration(conn: psycopg.Connection, migration: Migration, *, record: bool = True) -> None:
    assert migration.rollback is not None
    if migration.rollback.transactional:
        with conn.transaction():
            _execute_file(conn, migration.rollback)
            if record:
                _record_rolled_back(conn, migration)
        return
    _execute_each(conn, migration.rollback, " (non-transactional: statements before this one "
                  "stay rolled back; fix it and run `dmdb rollback` again)")
    if record:
        with conn.transaction():
            _record_rolled_back(conn, migration)


def apply_function_file(conn: psycopg.Connection, sql_file: SqlFile) -> None:
    with conn.transaction():
        _execute_file(conn, sql_file)
        conn.execute(
            resources.query("ledger_checksum_function"),
            (sql_file.id, sql_file.sha256),
        )


def prepare_session(conn: psycopg.Connection, lock_timeout: str) -> None:
    """Session settings for a run that changes the schema."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
    conn.execute("SET application_name = 'dmdb'")
    # A killed client is noticed within a second, so its transaction and lock are freed.
    conn.execute("SET client_connection_check_interval = '1s'")


def _refuse_problems(state: Status) -> None:
    edited = [m for m in state.migrations if m.edited or m.rollback_edited]
    if edited:
        which = "migration" if edited[0].edited else "rollback"
        raise MigrationError(
            f"{edited[0].id}: the {which} file was edited after the migration was applied "
            "(checksum differs); restore the file, or accept the edit with "
            f"`dmdb repair {edited[0].id}`"
        )


def _pending(project: Project, state: Status, to: str | None) -> list[Migration]:
    files = project.migrations()
    ids = [m.id for m in files]
    if to is not None and to not in ids:
        raise ConfigError(f"--to {to}: no such migration; `dmdb status` lists the ids")
    applied = {m.id for m in state.migrations if m.state == "applied"}
    pending = []
    for m in files:
        if m.id not in applied:
            pending.append(m)
        if to is not None and m.id == to:
            break
    missing = [m for m in pending if m.rollback is None]
    if missing:
        raise MigrationError(
            f"{missing[0].id}: no rollback file {project.sql_dir / 'rollbacks' / missing[0].id}.sql; "
            "write its rollback before applying it"
        )
    return pending


Progress = Callable[[str, str], None]  # (event, file id)


def up(
    conn: psycopg.Connection,
    project: Project,
    *,
    to: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 60.0,
    lock_timeout: str = "5s",
    functions: bool = True,
    progress: Progress | None = None,
) -> RunResult:
    """Apply pending migrations (through `to`), then changed function files.

    `conn` must be in autocommit mode; transactions are opened here.
    """
    result = RunResult("up", dry_run=dry_run)
    if dry_run:
        state = status(conn, project)
        _refuse_problems(state)
        for m in _pending(project, state, to):
            result.migrations.append(m.id)
            result.sql.append((m.id, _joined(m.forward)))
        if functions and to is None:
            by_id = {f.id: f for f in project.functions()}
            for f in state.functions:
                if f.state != "applied":
                    result.functions.append(f.id)
                    result.sql.append((f.id, _joined(by_id[f.id])))
        return result

    # Refuse bad input (unknown --to, edited files, missing rollbacks) before changing
    # anything, the ledger tables included.
    preflight = status(conn, project)
    _refuse_problems(preflight)
    _pending(project, preflight, to)

    prepare_session(conn, lock_timeout)
    result.waited_for_lock = acquire_lock(conn, lock_wait)
    try:
        ensure_ledger(conn)
        # Read the ledger only now: a concurrent run may have applied everything meanwhile.
        state = status(conn, project)
        _refuse_problems(state)
        for m in _pending(project, state, to):
            if progress:
                progress("apply", m.id)
            try:
                apply_migration(conn, m)
            except MigrationError as exc:
                done = ", ".join(result.migrations)
                note = f" (applied before it: {done})" if done else ""
                raise MigrationError(
                    f"{exc}; {m.id} was rolled back{note} — fix it and run `dmdb up` again"
                    if m.forward.transactional else f"{exc}{note}"
                ) from exc
            result.migrations.append(m.id)
        if functions and to is None:
            by_id = {f.id: f for f in project.functions()}
            for f in status(conn, project).functions:
                if f.state != "applied":
                    if progress:
                        progress("function", f.id)
                    apply_function_file(conn, by_id[f.id])
                    result.functions.append(f.id)
    finally:
        release_lock(conn)
    return result


def rollback(
    conn: psycopg.Connection,
    project: Project,
    *,
    steps: int | None = None,
    to: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 60.0,
    lock_timeout: str = "5s",
    progress: Progress | None = None,
) -> RunResult:
    """Roll back the last `steps` applied migrations, or every one applied after `to`."""
    if steps is not None and to is not None:
        raise ConfigError("give --steps or --to, not both")
    if steps is not None and steps < 1:
        raise ConfigError("--steps must be 1 or more")
    result = RunResult("rollback", dry_run=dry_run)

    def plan(state: Status) -> list[Migration]:
        by_id = {m.id: m for m in project.migrations()}
        applied = [m for m in state.migrations if m.state == "applied"]
        if to is not None:
            if to not in by_id:
                raise ConfigError(f"--to {to}: no such migration; `dmdb status` lists the ids")
            chosen = [m for m in applied if m.id > to]
        else:
            chosen = applied[-(steps or 1):] if applied else []
        chosen.reverse()
        out = []
        for m in chosen:
            if m.missing_file or m.id not in by_id:
                raise MigrationError(
                    f"{m.id}: applied but its migration file is missing; restore it to roll back"
                )
            mig = by_id[m.id]
            if mig.rollback is None:
                raise MigrationError(
                    f"{m.id}: no rollback file {project.sql_dir / 'rollbacks' / m.id}.sql; "
                    "write one to roll back"
                )
            if m.rollback_edited:
                raise MigrationError(
                    f"{m.id}: its rollback was edited after the migration was applied; restore "
                    f"it, or accept the edit with `dmdb repair {m.id}`"
                )
            out.append(mig)
        return out

    if dry_run:
        for m in plan(status(conn, project)):
            result.migrations.append(m.id)
            result.sql.append((m.id, _joined(m.rollback)))
        return result

    prepare_session(conn, lock_timeout)
    result.waited_for_lock = acquire_lock(conn, lock_wait)
    try:
        for m in plan(status(conn, project)):
            if progress:
                progress("rollback", m.id)
            rollback_migration(conn, m)
            result.migrations.append(m.id)
    finally:
        release_lock(conn)
    return result


def repair(conn: psycopg.Connection, project: Project, ids: list[str] | None = None,
           lock_wait: float = 60.0, dry_run: bool = False) -> list[str]:
    """Accept edited files: record the current checksums of applied migrations (all, or `ids`).

    With dry_run, only say which would be accepted."""
    by_id = {m.id: m for m in project.migrations()}
    unknown = [i for i in ids or () if i not in by_id]
    if unknown:
        raise ConfigError(f"{unknown[0]}: no such migration; `dmdb status` lists the ids")

    def edited(state: Status) -> list[Migration]:
        return [by_id[m.id] for m in state.migrations
                if m.state == "applied" and not m.missing_file and (m.edited or m.rollback_edited)
                and (not ids or m.id in ids)]

    if dry_run:
        return [m.id for m in edited(status(conn, project))]
    acquire_lock(conn, lock_wait)
    try:
        accepted = []
        for mig in edited(status(conn, project)):
            with conn.transaction():
                conn.execute(
                    resources.query("ledger_repair"),
                    (mig.forward.sha256, mig.rollback.sha256 if mig.rollback else None, mig.id),
                )
                _log_row(conn, mig, "mark")
            accepted.append(mig.id)
        return accepted
    finally:
        release_lock(conn)


def _joined(sql_file: SqlFile | None) -> str:
    if sql_file is None:
        return ""
    return "\n\n".join(s.sql.rstrip().rstrip(";") + ";" for s in sql_file.statements)
