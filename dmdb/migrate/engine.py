"""The migration engine: yoyo-migrations' file format and ledger, with what yoyo lacks.

yoyo (9.x) reads the SQL files (statements split by sqlparse, `-- transactional:` and
`-- depends:` directives) and keys its ledger `_yoyo_migration` by the SHA-256 of the
migration id. dmdb keeps that format, so `yoyo list` still reads the database, and adds:

- rollbacks in `sql/rollbacks/<same name>.sql`, required before a migration is applied;
- each migration applied *and recorded* in one transaction (yoyo records it in a second
  transaction: a crash in between would apply it twice);
- a session advisory lock for the whole run instead of yoyo's lock row, which a killed
  process leaves behind; PostgreSQL frees an advisory lock when its session ends;
- short lock waits retried whole with backoff, naming the blocker (retry.py);
- `-- transactional: false` files with their own timeouts, INVALID indexes of an earlier
  failed CONCURRENTLY build dropped and rebuilt (runner.py);
- SHA-256 of every applied file's content (`_dmdb_checksum`): edits are detected;
- `sql/functions/*.sql` as repeatable files, re-applied when their checksum changes.

Files are read by files.py (parsed only when they run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import ConfigError, LockNotAvailable, MigrationError
from dmdb.migrate.files import (  # noqa: F401 - re-exported: the engine's public names
    MIGRATION_NAME,
    Migration,
    Project,
    SqlFile,
    Statement,
    joined,
    read_sql_file,
)
from dmdb.migrate.retry import BlockerWatch, OnWait, RetriesExhausted, RetryPolicy, Wait
from dmdb.migrate.runner import Runner, concurrent_index_name  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import psycopg

# Session advisory lock key for migration runs: "dmdb" in ASCII, then 1.
MIGRATION_LOCK_KEY = 0x646D6462_00000001


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
    # A non-transactional file stopped half-way (its run killed): "apply" or "rollback".
    # Its statements are written to be re-run: the same `up`/`rollback` completes it.
    interrupted: str | None = None
    # Applied under this id: the file was renamed since (same content, by its checksum).
    renamed_from: str | None = None


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

    @property
    def interrupted(self) -> list[str]:
        """Non-transactional files stopped half-way, and how to complete each."""
        return [f"{m.id}: interrupted half-way through its {m.interrupted} "
                f"(non-transactional); run `dmdb {'up' if m.interrupted == 'apply' else 'rollback'}`"
                " again to complete it" for m in self.migrations if m.interrupted]

    @property
    def renames(self) -> list[tuple[str, str]]:
        """(id in the ledger, id of the file now) of applied migrations whose file was
        renamed: recognised by their content's checksum."""
        return [(m.renamed_from, m.id) for m in self.migrations if m.renamed_from]

    @property
    def up_to_date(self) -> bool:
        return (not self.problems and all(m.state == "applied" for m in self.migrations)
                and all(f.state == "applied" for f in self.functions))

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
                "interrupted": sum(m.interrupted is not None for m in self.migrations),
                "up_to_date": self.up_to_date,
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
    waits: list[Wait] = field(default_factory=list)  # lock waits retried
    invalid_indexes_dropped: list[str] = field(default_factory=list)
    # Applied migrations whose file was renamed (same checksum): (old id, new id); the
    # ledger now names them by the new id (a dry run only reports them).
    renamed: list[tuple[str, str]] = field(default_factory=list)
    # --to, as resolved (an id given by its number alone: its whole id).
    to: str | None = None
    # What the files said while they ran (RAISE NOTICE/WARNING): (file id, severity,
    # message). A migration that skips what the role may not do says so this way.
    notices: list[tuple[str, str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sql"] = [{"file": f, "sql": s} for f, s in self.sql]
        data["notices"] = [{"file": f, "severity": s, "message": m} for f, s, m in self.notices]
        data["renamed"] = [{"from": a, "to": b} for a, b in self.renamed]
        return data


@contextmanager
def _notices(conn: psycopg.Connection, result: RunResult) -> Iterator[Callable[[str], None]]:
    """Collect what the files say into `result.notices`, each with the file that was
    running (set through the function yielded): every WARNING, and the NOTICEs a file
    raises itself (PL/pgSQL RAISE), not PostgreSQL's own "... does not exist, skipping".
    A retried attempt says the same again: each message is kept once."""
    current = [""]

    def handler(diag) -> None:
        severity = diag.severity_nonlocalized or diag.severity or ""
        if not diag.message_primary or severity not in ("NOTICE", "WARNING"):
            return
        if severity == "NOTICE" and diag.source_function != "exec_stmt_raise":
            return
        item = (current[0], severity, diag.message_primary)
        if item not in result.notices:
            result.notices.append(item)

    conn.add_notice_handler(handler)
    try:
        yield lambda file_id: current.__setitem__(0, file_id)
    finally:
        conn.remove_notice_handler(handler)


# -- the ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    file_id: str
    sha256: str
    rollback_sha256: str | None
    applied_at: str  # ISO 8601, UTC


def ledger_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute(resources.query("ledger_exists")).fetchone()
    return bool(row and row[0])


def ensure_ledger(conn: psycopg.Connection) -> None:
    if ledger_exists(conn):
        return
    with conn.transaction():
        conn.execute(resources.query("ledger"))


def read_ledger(conn: psycopg.Connection) -> tuple[dict[str, LedgerRow], dict[str, LedgerRow]]:
    """Applied migrations and functions, keyed by file id."""
    import psycopg

    if not ledger_exists(conn):
        return {}, {}
    migrations: dict[str, LedgerRow] = {}
    try:
        rows = conn.execute(resources.query("ledger_applied")).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        if not conn.autocommit:
            conn.rollback()
        raise MigrationError(
            f"role {conn.info.user} may not read the migration ledger (_yoyo_migration, "
            "_dmdb_checksum); make it a member of dm_readonly once migration 0012 is applied "
            "(`dmdb up` as the owner), or GRANT SELECT ON _yoyo_migration, _dmdb_checksum "
            "TO it") from None
    for file_id, sha, rsha, at in rows:
        migrations[file_id] = LedgerRow(file_id, sha, rsha, at)
    functions = {
        r[0]: LedgerRow(r[0], r[1], None, r[2])
        for r in conn.execute(resources.query("ledger_functions")).fetchall()
    }
    return migrations, functions


def _mark_interrupted(conn: psycopg.Connection, files: list[Migration],
                      states: list[MigrationState]) -> None:
    """Flag the non-transactional files whose last run started and never finished (read
    only when the project has such files: `status` stays one ledger read otherwise)."""
    by_id = {s.id: s for s in states}
    candidates = [m.id for m in files
                  if (not m.forward.transactional and by_id[m.id].state == "pending")
                  or (m.rollback is not None and not m.rollback.transactional
                      and by_id[m.id].state == "applied")]
    if not candidates or not ledger_exists(conn):
        return
    for file_id, operation in conn.execute(resources.query("ledger_interrupted"),
                                           (candidates,)).fetchall():
        state = by_id[file_id]
        if operation == "start" and state.state == "pending":
            state.interrupted = "apply"
        elif operation == "start-rb" and state.state == "applied":
            state.interrupted = "rollback"


def _iso(at: str | datetime | None) -> str | None:
    """ISO 8601 in UTC (the ledger queries already format it)."""
    if at is None or isinstance(at, str):
        return at
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")


def status(conn: psycopg.Connection, project: Project) -> Status:
    """Applied / pending / edited, from the ledger and the files' checksums (no parsing)."""
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
    _mark_interrupted(conn, files, states)
    known = {m.id for m in files}
    # A ledger row without its file, and a pending file with that row's checksum: the
    # same migration, renamed (Flyway keys by version, Sqitch by name; the content is
    # what was applied). Only a one-to-one match counts.
    by_sha: dict[str, list[MigrationState]] = {}
    for st, m in zip(states, files):
        if st.state == "pending":
            by_sha.setdefault(m.forward.sha256, []).append(st)
    rollback_sha = {m.id: m.rollback.sha256 if m.rollback else None for m in files}
    orphans = [row for file_id, row in applied.items() if file_id not in known]
    orphan_shas = [row.sha256 for row in orphans]
    for file_id, row in applied.items():
        if file_id in known:
            continue
        match = by_sha.get(row.sha256, []) if row.sha256 else []
        if len(match) == 1 and orphan_shas.count(row.sha256) == 1:
            st = match[0]
            st.state, st.applied_at, st.renamed_from = "applied", _iso(row.applied_at), file_id
            if row.rollback_sha256 and rollback_sha[st.id]:
                st.rollback_edited = row.rollback_sha256 != rollback_sha[st.id]
            continue
        states.append(MigrationState(file_id, "applied", _iso(row.applied_at), missing_file=True))
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


def _lock_held(conn: psycopg.Connection, key: int = MIGRATION_LOCK_KEY) -> bool:
    """Does another session hold the migration lock now?"""
    return conn.execute(resources.query("ledger_lock_holder"), (key,)).fetchone() is not None


def release_lock(conn: psycopg.Connection, key: int = MIGRATION_LOCK_KEY) -> None:
    import psycopg

    from dmdb.db import advisory_unlock

    try:
        advisory_unlock(conn, key)
    except psycopg.Error:
        pass  # a lost session took its lock with it; the run's own error says why


# -- recording -----------------------------------------------------------------


def _log_row(conn: psycopg.Connection, migration: Migration, operation: str) -> None:
    import socket
    import uuid

    conn.execute(
        resources.query("ledger_log"),
        (str(uuid.uuid4()), migration.hash, migration.id, operation, _username(),
         socket.gethostname()),
    )


def _username() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _record_applied(conn: psycopg.Connection, migration: Migration, operation: str = "apply") -> None:
    conn.execute(resources.query("ledger_mark"), (migration.hash, migration.id))
    conn.execute(
        resources.query("ledger_checksum_migration"),
        (migration.id, migration.forward.sha256,
         migration.rollback.sha256 if migration.rollback else None),
    )
    _log_row(conn, migration, operation)


def _rekey_renamed(conn: psycopg.Connection, project: Project, state: Status) -> list[tuple[str, str]]:
    """Record renamed migrations (state.renames) under their new ids, in one transaction:
    yoyo's row (its key is the id's hash), dmdb's checksum row, and the log (unmark the
    old id, mark the new). The caller holds the migration lock."""
    renames = state.renames
    if not renames:
        return []
    by_id = {m.id: m for m in project.migrations()}
    with conn.transaction():
        for old, new in renames:
            migration = by_id[new]
            conn.execute(resources.query("ledger_rename"),
                         {"old_hash": migration_hash_of(old), "old": old,
                          "new_hash": migration.hash, "new": new})
            _log_row(conn, Migration(old, migration.forward, migration.rollback), "unmark")
            _log_row(conn, migration, "mark")
    return renames


def migration_hash_of(file_id: str) -> str:
    from dmdb.migrate.files import migration_hash

    return migration_hash(file_id)


def _record_rolled_back(conn: psycopg.Connection, migration: Migration) -> None:
    conn.execute(resources.query("ledger_unmark"), {"hash": migration.hash, "id": migration.id})
    _log_row(conn, migration, "rollback")


# -- applying ------------------------------------------------------------------


def apply_migration(conn: psycopg.Connection, migration: Migration, *, record: bool = True,
                    runner: Runner | None = None) -> None:
    """Apply one migration. Transactional ones run and are recorded in a single transaction;
    non-transactional ones are recorded once every statement succeeded."""
    runner = runner or Runner(conn)
    if record and not migration.forward.transactional:
        _log_row(conn, migration, "start")  # committed now: a kill mid-way leaves it
    runner.run_file(migration.forward,
                    (lambda: _record_applied(conn, migration)) if record else None)


def rollback_migration(conn: psycopg.Connection, migration: Migration, *, record: bool = True,
                       runner: Runner | None = None) -> None:
    assert migration.rollback is not None
    runner = runner or Runner(conn, command="dmdb rollback")
    if record and not migration.rollback.transactional:
        _log_row(conn, migration, "start-rb")
    runner.run_file(migration.rollback,
                    (lambda: _record_rolled_back(conn, migration)) if record else None)


def apply_function_file(conn: psycopg.Connection, sql_file: SqlFile,
                        runner: Runner | None = None) -> None:
    runner = runner or Runner(conn)

    def record() -> None:
        conn.execute(resources.query("ledger_checksum_function"), (sql_file.id, sql_file.sha256))

    runner.run_file(sql_file, record)


def prepare_session(conn: psycopg.Connection, lock_timeout: str) -> None:
    """Session settings for a run that changes the schema."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
    conn.execute("SET application_name = 'dmdb'")
    # A killed client is noticed within a second, so its transaction and lock are freed
    # (best effort: a server on a platform without the check refuses a non-zero value).
    from dmdb.db import die_with_client

    die_with_client(conn)


def _refuse_problems(state: Status) -> None:
    edited = [m for m in state.migrations if m.edited or m.rollback_edited]
    if edited:
        which = "migration" if edited[0].edited else "rollback"
        raise MigrationError(
            f"{edited[0].id}: the {which} file was edited after the migration was applied "
            "(checksum differs); restore the file, or accept the edit with "
            f"`dmdb repair {edited[0].id}`"
        )


def _refuse_foreign_ledger(state: Status, database: str) -> None:
    """A ledger that records migrations this project does not have belongs to another
    project (or to a newer checkout of this one): applying ours on top of it would mix two
    schemas without a word, so `up` stops and names them (as Flyway's validate does with
    "applied migration not resolved locally")."""
    unknown = [m.id for m in state.migrations if m.missing_file]
    if not unknown:
        return
    ours = sum(m.state == "applied" and not m.missing_file for m in state.migrations)
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    whose = ("another project's database" if not ours
             else "another project's database, or one a newer checkout migrated")
    raise MigrationError(
        f"the ledger of database {database} records {len(unknown)} applied migration(s) this "
        f"project does not have ({shown}): it looks like {whose}; check DATABASE_URL / "
        "--dbname (the target is named above), update this checkout, or pass "
        "--allow-foreign-ledger to apply this project's migrations anyway")


def _pending(project: Project, state: Status, to: str | None) -> list[Migration]:
    files = project.migrations()
    if to is not None:
        to = project.resolve_id(to, "--to")
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
    empty = [m for m in pending if m.rollback.is_empty]
    if empty:
        raise MigrationError(_empty_rollback(project, empty[0], "before applying it"))
    return pending


def _empty_rollback(project: Project, m: Migration, when: str) -> str:
    return (f"{m.id}: its rollback {project.sql_dir / 'rollbacks' / m.id}.sql has no "
            "statement (comments only): rolling back would record it as undone and leave its "
            f"changes; write the inverse {when} (a migration with nothing to undo says so in a "
            "comment and `SELECT 1;`)")


def _functions_to_apply(project: Project, state: Status) -> list[SqlFile]:
    by_id = {f.id: f for f in project.functions()}
    return [by_id[f.id] for f in state.functions if f.state != "applied"]


Progress = Callable[[str, str], None]  # (event, file id)


def up(
    conn: psycopg.Connection,
    project: Project,
    *,
    to: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 60.0,
    lock_timeout: str | None = None,
    policy: RetryPolicy | None = None,
    functions: bool = True,
    progress: Progress | None = None,
    on_wait: OnWait | None = None,
    allow_foreign_ledger: bool = False,
) -> RunResult:
    """Apply pending migrations (through `to`), then changed function files.

    A ledger recording migrations the project does not have is refused (another
    project's database) unless `allow_foreign_ledger`.

    `conn` must be in autocommit mode; transactions are opened here. Each migration's
    transaction waits for locks at most `policy.lock_timeout` per attempt and is retried
    whole (`lock_timeout`, when given, is the per-attempt timeout of a default policy).
    """
    if policy is None:
        policy = RetryPolicy.build({}, lock_timeout=lock_timeout) if lock_timeout else RetryPolicy()
    result = RunResult("up", dry_run=dry_run)
    if to is not None:
        to = result.to = project.resolve_id(to, "--to")
    # Refuse bad input (unknown --to, edited files, missing rollbacks) before changing
    # anything, the ledger tables included.
    preflight = status(conn, project)
    _refuse_problems(preflight)
    if not allow_foreign_ledger:
        _refuse_foreign_ledger(preflight, conn.info.dbname)
    pending = _pending(project, preflight, to)
    with_functions = functions and to is None
    if dry_run:
        result.renamed = preflight.renames
        for m in pending:
            result.migrations.append(m.id)
            result.sql.append((m.id, joined(m.forward)))
        if with_functions:
            for f in _functions_to_apply(project, preflight):
                result.functions.append(f.id)
                result.sql.append((f.id, joined(f)))
        return result
    if (not pending and not preflight.renames
            and not (with_functions and _functions_to_apply(project, preflight))
            and not _lock_held(conn)):
        return result  # up to date, and no run under way: no lock, no second read
    # Work to do, or another run holds the lock (a rollback may be taking migrations away
    # right now): wait for the lock and decide on the ledger as it is then.

    prepare_session(conn, policy.lock_timeout)
    result.waited_for_lock = acquire_lock(conn, lock_wait)
    try:
        ensure_ledger(conn)
        # Read the ledger only now: a concurrent run may have applied everything meanwhile.
        state = status(conn, project)
        _refuse_problems(state)
        if not allow_foreign_ledger:
            _refuse_foreign_ledger(state, conn.info.dbname)
        result.renamed = _rekey_renamed(conn, project, state)
        todo = _pending(project, state, to)
        with BlockerWatch(conn) as watch, _notices(conn, result) as running:
            runner = Runner(conn, policy=policy, watch=watch, on_wait=on_wait, command="dmdb up",
                            waits=result.waits, dropped=result.invalid_indexes_dropped)
            for m in todo:
                if progress:
                    progress("apply", m.id)
                running(m.id)
                try:
                    apply_migration(conn, m, runner=runner)
                except MigrationError as exc:
                    raise MigrationError(_after_failure(exc, m, result.migrations)) from exc
                result.migrations.append(m.id)
            if with_functions:
                # Applying migrations changes no function-file record: the ledger read
                # above still tells which function files to apply.
                for f in _functions_to_apply(project, state):
                    if progress:
                        progress("function", f.id)
                    running(f.id)
                    apply_function_file(conn, f, runner=runner)
                    result.functions.append(f.id)
    finally:
        release_lock(conn)
    return result


def _after_failure(exc: MigrationError, m: Migration, done: list[str]) -> str:
    text = str(exc)
    before = f" (applied before it in this run: {', '.join(done)})" if done else ""
    if isinstance(exc, RetriesExhausted) or "not the file's fault" in text:
        return text + before
    if m.forward.transactional:
        return f"{text}; {m.id} was rolled back{before} — fix it and run `dmdb up` again"
    return text + before


def rollback(
    conn: psycopg.Connection,
    project: Project,
    *,
    steps: int | None = None,
    to: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 60.0,
    lock_timeout: str | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress | None = None,
    on_wait: OnWait | None = None,
) -> RunResult:
    """Roll back the last `steps` applied migrations, or every one applied after `to`."""
    if steps is not None and to is not None:
        raise ConfigError("give --steps or --to, not both")
    if steps is not None and steps < 1:
        raise ConfigError("--steps must be 1 or more")
    if policy is None:
        policy = RetryPolicy.build({}, lock_timeout=lock_timeout) if lock_timeout else RetryPolicy()
    result = RunResult("rollback", dry_run=dry_run)
    if to is not None:
        to = result.to = project.resolve_id(to, "--to")

    def plan(state: Status) -> list[Migration]:
        by_id = {m.id: m for m in project.migrations()}
        applied = [m for m in state.migrations if m.state == "applied"]
        if to is not None:
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
            if mig.rollback.is_empty:
                raise MigrationError(_empty_rollback(project, mig, "and run `dmdb repair "
                                                     f"{m.id}` to accept it; nothing was rolled back"))
            out.append(mig)
        return out

    if dry_run:
        preflight = status(conn, project)
        result.renamed = preflight.renames
        for m in plan(preflight):
            result.migrations.append(m.id)
            result.sql.append((m.id, joined(m.rollback)))
        return result

    prepare_session(conn, policy.lock_timeout)
    result.waited_for_lock = acquire_lock(conn, lock_wait)
    try:
        state = status(conn, project)
        result.renamed = _rekey_renamed(conn, project, state)
        todo = plan(state)
        with BlockerWatch(conn) as watch, _notices(conn, result) as running:
            runner = Runner(conn, policy=policy, watch=watch, on_wait=on_wait,
                            command="dmdb rollback", waits=result.waits,
                            dropped=result.invalid_indexes_dropped)
            for m in todo:
                if progress:
                    progress("rollback", m.id)
                running(m.id)
                try:
                    rollback_migration(conn, m, runner=runner)
                except MigrationError as exc:
                    raise MigrationError(_after_rollback_failure(exc, m, result.migrations)) from exc
                result.migrations.append(m.id)
        if todo and not any(s.state == "applied" for s in status(conn, project).migrations):
            # Nothing applied any more: the function files' records describe a schema that
            # is gone, so `up` must apply them again (they were left "applied").
            with conn.transaction():
                result.functions = [r[0] for r in conn.execute(
                    resources.query("ledger_forget_functions")).fetchall()]
    finally:
        release_lock(conn)
    return result


def _after_rollback_failure(exc: MigrationError, m: Migration, done: list[str]) -> str:
    assert m.rollback is not None
    undone = (f"; rolled back before it in this run: {', '.join(done)} (those stay rolled back)"
              if done else "; nothing was rolled back")
    kept = (f"{m.id} stays applied" if m.rollback.transactional
            else f"{m.id} stays recorded as applied")
    return f"{exc}{undone}; {kept}"


def repair(conn: psycopg.Connection, project: Project, ids: list[str] | None = None,
           lock_wait: float = 60.0, dry_run: bool = False) -> list[str]:
    """Accept edited files: record the current checksums of applied migrations (all, or `ids`).

    With dry_run, only say which would be accepted."""
    by_id = {m.id: m for m in project.migrations()}
    ids = [project.resolve_id(i) for i in ids] if ids else ids

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


def mark_applied(conn: psycopg.Connection, migrations: list[Migration]) -> None:
    """Record `migrations` as applied without running them (`dmdb baseline`), in one
    transaction; the caller holds the migration lock and has checked the schema."""
    ensure_ledger(conn)
    with conn.transaction():
        for m in migrations:
            _record_applied(conn, m, operation="mark")
