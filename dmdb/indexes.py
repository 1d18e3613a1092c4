"""The project's index set, declared once, and the database made to match it.

Declared once: the declared indexes are the `CREATE INDEX` statements of the schema's own
migrations (`sql/migrations/*.sql`, read with the migration engine's parser), minus those
a later migration drops (`DROP INDEX`, `DROP TABLE`, `DROP MATERIALIZED VIEW`) and
following renames (`ALTER INDEX ... RENAME TO`, `ALTER TABLE ... RENAME TO`). Indexes
created implicitly by PRIMARY KEY / UNIQUE constraints are not part of it.

`build` makes the database match without blocking writers:
- plain tables and materialized views: `CREATE INDEX CONCURRENTLY`;
- partitioned tables: `CREATE INDEX IF NOT EXISTS name ON ONLY parent ...` (invalid until
  complete), then for each partition `CREATE INDEX CONCURRENTLY <partition>_<suffix>` and
  `ALTER INDEX name ATTACH PARTITION <partition>_<suffix>`; sub-partitioned partitions
  recurse the same way. The parent index turns valid when every partition's is attached.
- an INVALID index (a failed or interrupted CONCURRENTLY build) is dropped with
  `DROP INDEX CONCURRENTLY` and built again, so a build can always be re-run.

Planning is pure (`plan_build` over a `Catalog` snapshot); `build` executes a plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import ConfigError, DmdbError, first_line

if TYPE_CHECKING:
    import psycopg

# Session advisory lock serialising `dmdb indexes build` runs: "dmdb" in ASCII, then 6.
BUILD_LOCK_KEY = 0x646D6462_00000006
MAX_IDENTIFIER_BYTES = 63
DEFAULT_SCHEMA = "public"
DDL_LOCK_TIMEOUT = "1s"
DDL_ATTEMPTS = 8

# -- the declared set -----------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
_CREATE_INDEX = re.compile(
    rf"""^CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?
    (?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QUALIFIED})\s+ON\s+(?P<only>ONLY\s+)?
    (?P<table>{_QUALIFIED})\s*(?P<tail>(?:USING\b|\().*?)\s*;?\s*$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_DROP = re.compile(
    r"^DROP\s+(?P<kind>INDEX|TABLE|MATERIALIZED\s+VIEW)\s+(?:CONCURRENTLY\s+)?"
    r"(?:IF\s+EXISTS\s+)?(?P<names>.*?)\s*(?:CASCADE|RESTRICT)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RENAME = re.compile(
    rf"^ALTER\s+(?P<kind>INDEX|TABLE|MATERIALIZED\s+VIEW)\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"
    rf"(?P<old>{_QUALIFIED})\s+RENAME\s+TO\s+(?P<new>{_IDENT})\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _unquote(ident: str) -> str:
    ident = ident.strip()
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def _split_qualified(text: str) -> tuple[str, str]:
    parts = re.findall(_IDENT, text.strip())
    if len(parts) == 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return DEFAULT_SCHEMA, _unquote(parts[0])


@dataclass(frozen=True)
class DeclaredIndex:
    """One CREATE INDEX of the migrations: its name, table and the rest of its definition."""

    schema: str
    name: str
    table_schema: str
    table: str
    unique: bool
    only: bool  # the migration said ON ONLY
    tail: str  # "USING method (columns) INCLUDE (...) WITH (...) WHERE ...", as written
    source: str  # migration id that declares it
    sql: str  # the statement, comments stripped

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def qualified_table(self) -> str:
        return f"{self.table_schema}.{self.table}"

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise(statement: str) -> str:
    import sqlparse

    return sqlparse.format(statement, strip_comments=True, strip_whitespace=True).strip()


def parse_declared(statements: Iterable[tuple[str, str]]) -> list[DeclaredIndex]:
    """The declared index set from (migration id, SQL statement) pairs, in order."""
    declared: dict[tuple[str, str], DeclaredIndex] = {}
    for source, raw in statements:
        text = _normalise(raw)
        match = _CREATE_INDEX.match(text)
        if match:
            schema, name = _split_qualified(match["name"])
            table_schema, table = _split_qualified(match["table"])
            if schema == DEFAULT_SCHEMA and "." not in match["name"]:
                schema = table_schema  # an index lives in its table's schema
            declared[(schema, name)] = DeclaredIndex(
                schema=schema, name=name, table_schema=table_schema, table=table,
                unique=bool(match["unique"]), only=bool(match["only"]),
                tail=match["tail"].strip(), source=source, sql=text.rstrip(";"),
            )
            continue
        match = _DROP.match(text)
        if match:
            names = [_split_qualified(n) for n in re.findall(_QUALIFIED, match["names"])]
            kind = match["kind"].upper()
            for schema, name in names:
                if kind == "INDEX":
                    declared.pop((schema, name), None)
                else:
                    for key, d in list(declared.items()):
                        if (d.table_schema, d.table) == (schema, name):
                            del declared[key]
            continue
        match = _RENAME.match(text)
        if match:
            schema, old = _split_qualified(match["old"])
            new = _unquote(match["new"])
            if match["kind"].upper() == "INDEX":
                d = declared.pop((schema, old), None)
                if d is not None:
                    declared[(schema, new)] = _replace(d, name=new)
            else:
                for key, d in list(declared.items()):
                    if (d.table_schema, d.table) == (schema, old):
                        declared[key] = _replace(d, table=new)
    return list(declared.values())


def _replace(d: DeclaredIndex, **changes) -> DeclaredIndex:
    from dataclasses import replace

    return replace(d, **changes)


def declared_indexes(sql_dir: Path | None = None) -> list[DeclaredIndex]:
    """The declared index set of a project's SQL tree (default: the shipped one)."""
    from dmdb.migrations import Project

    project = Project(sql_dir)
    pairs = []
    for migration in project.migrations():
        for statement in migration.forward.statements:
            pairs.append((migration.id, statement.sql))
    return parse_declared(pairs)


def partition_index_name(partition: str, parent_index: str, parent_table: str) -> str:
    """The deterministic name of a partition's index: <partition>_<suffix>, where suffix is
    the parent index's name without its table's name in front (knowledge_states_p3 +
    knowledge_states_user_mastery_idx -> knowledge_states_p3_user_mastery_idx). Longer
    than 63 bytes: cut, and end in 8 hex digits of a hash of the full name."""
    suffix = parent_index
    if parent_index.startswith(parent_table + "_") and len(parent_index) > len(parent_table) + 1:
        suffix = parent_index[len(parent_table) + 1:]
    name = f"{partition}_{suffix}"
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    cut = name.encode("utf-8")[: MAX_IDENTIFIER_BYTES - 9].decode("utf-8", errors="ignore")
    return f"{cut}_{digest}"


# -- the catalog snapshot -------------------------------------------------------------


@dataclass(frozen=True)
class IndexRow:
    schema: str
    name: str
    oid: int
    kind: str  # i | I
    table_oid: int
    valid: bool
    is_unique: bool
    parent_oid: int | None
    definition: str


@dataclass(frozen=True)
class TableRow:
    oid: int
    schema: str
    name: str
    kind: str  # r | p | m
    parent_oid: int | None


@dataclass
class Catalog:
    """What the database holds: indexes and tables outside the system schemas."""

    indexes: list[IndexRow]
    tables: list[TableRow]

    def __post_init__(self):
        self.index_by_name = {(i.schema, i.name): i for i in self.indexes}
        self.index_by_oid = {i.oid: i for i in self.indexes}
        self.table_by_name = {(t.schema, t.name): t for t in self.tables}
        self.table_by_oid = {t.oid: t for t in self.tables}
        self.children: dict[int, list[TableRow]] = {}
        for t in self.tables:
            if t.parent_oid is not None:
                self.children.setdefault(t.parent_oid, []).append(t)
        for kids in self.children.values():
            kids.sort(key=lambda t: (t.schema, t.name))

    def attached(self, parent_index_oid: int, table_oid: int) -> IndexRow | None:
        """The index on `table_oid` attached to the partitioned index `parent_index_oid`."""
        for i in self.indexes:
            if i.parent_oid == parent_index_oid and i.table_oid == table_oid:
                return i
        return None

    def leaves(self, table_oid: int) -> list[TableRow]:
        out = []
        for child in self.children.get(table_oid, []):
            if child.kind == "p":
                out.extend(self.leaves(child.oid))
            else:
                out.append(child)
        return out


def read_catalog(conn: psycopg.Connection) -> Catalog:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        indexes = [IndexRow(**r) for r in cur.execute(resources.query("indexes_catalog"))]
        tables = [TableRow(**r) for r in cur.execute(resources.query("indexes_tables"))]
    if not conn.autocommit:
        conn.rollback()
    return Catalog(indexes, tables)


def resolve_table(conn: psycopg.Connection, name: str) -> TableRow:
    """A table named on the command line, looked up in the catalog (never spliced into
    SQL): `name` or `schema.name`, exactly as stored (no case folding, no quoting rules).
    Unknown: ConfigError (exit 2)."""
    from psycopg.rows import dict_row

    raw = name
    if "." in name and name.count(".") == 1 and not name.startswith('"'):
        schema, rel = name.split(".", 1)
    else:
        schema, rel = None, name
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            resources.query("indexes_resolve_table"),
            {"schema": schema, "rel": rel, "raw": raw},
        ).fetchone()
    if not conn.autocommit:
        conn.rollback()
    if row is None:
        shown = raw if len(raw) <= 80 else raw[:77] + "..."
        raise ConfigError(
            f"no table named {shown!r} in this database; give an existing table, "
            "optionally schema-qualified (e.g. --table public.learning_events)"
        )
    return TableRow(**row)


# -- the plan --------------------------------------------------------------------------


@dataclass
class Step:
    """One statement of a build. `concurrent` steps run without lock_timeout (they never
    block writers); the others (ON ONLY, ATTACH) under a short lock_timeout, retried."""

    action: str  # drop_invalid | create_concurrently | create_on_only | attach
    index: str  # schema-qualified index the step creates, drops or attaches
    table: str  # schema-qualified table it is on
    sql: str
    concurrent: bool
    _statement: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"action": self.action, "index": self.index, "table": self.table,
                "sql": self.sql}


@dataclass
class IndexPlan:
    """What one declared index needs."""

    index: str  # schema-qualified name
    table: str
    status: str  # ok | missing | invalid | incomplete | table_missing
    steps: list[Step] = field(default_factory=list)
    partitions: int = 0  # partitions on which the index is built (partitioned tables)

    def to_dict(self) -> dict:
        return {"index": self.index, "table": self.table, "status": self.status,
                "partitions": self.partitions, "steps": [s.to_dict() for s in self.steps]}


def _ident(schema: str, name: str):
    from psycopg import sql

    return sql.Identifier(schema, name)


def _step(action: str, schema: str, index: str, table: TableRow, statement, *,
          concurrent: bool) -> Step:
    return Step(action, f"{schema}.{index}", f"{table.schema}.{table.name}",
                statement.as_string(), concurrent, statement)


def _create(d: DeclaredIndex, schema: str, index: str, table: TableRow, *, only: bool,
            concurrently: bool):
    from psycopg import sql

    return sql.SQL("CREATE {unique}INDEX {conc}IF NOT EXISTS {index} ON {only}{table} {tail}").format(
        unique=sql.SQL("UNIQUE " if d.unique else ""),
        conc=sql.SQL("CONCURRENTLY " if concurrently else ""),
        index=sql.Identifier(index),
        only=sql.SQL("ONLY " if only else ""),
        table=_ident(table.schema, table.name),
        # The rest of the definition is the project's own migration text, as written.
        tail=sql.SQL(d.tail),
    )


def _drop_concurrently(schema: str, index: str):
    from psycopg import sql

    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_ident(schema, index))


def _attach(parent_schema: str, parent: str, child_schema: str, child: str):
    from psycopg import sql

    return sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
        _ident(parent_schema, parent), _ident(child_schema, child))


def _plan_partitions(d: DeclaredIndex, cat: Catalog, table: TableRow, parent_schema: str,
                     parent_name: str, parent_root_table: str, steps: list[Step]) -> int:
    """Steps that give each partition of `table` an index attached to `parent_name`."""
    parent = cat.index_by_name.get((parent_schema, parent_name))
    built = 0
    for part in cat.children.get(table.oid, []):
        existing = cat.attached(parent.oid, part.oid) if parent is not None else None
        if existing is not None:
            if existing.kind == "I" and not existing.valid:
                built += _plan_partitions(d, cat, part, existing.schema, existing.name,
                                          part.name, steps)
            elif not existing.valid:
                # Attached yet invalid (rare: an interrupted REINDEX): rebuild it in place.
                from psycopg import sql

                stmt = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(
                    _ident(existing.schema, existing.name))
                steps.append(_step("reindex", existing.schema, existing.name, part, stmt,
                                   concurrent=True))
                built += 1
            continue
        name = partition_index_name(part.name, parent_name, parent_root_table)
        own = cat.index_by_name.get((part.schema, name))
        if own is not None and own.table_oid != part.oid:
            raise DmdbError(
                f"cannot name the index of partition {part.schema}.{part.name} {name}: "
                f"an index of that name exists on another table; rename or drop it"
            )
        if part.kind == "p":
            if own is None:
                steps.append(_step("create_on_only", part.schema, name, part,
                                   _create(d, part.schema, name, part, only=True,
                                           concurrently=False), concurrent=False))
            built += _plan_partitions(d, cat, part, part.schema, name, part.name, steps)
        else:
            if own is not None and not own.valid:
                steps.append(_step("drop_invalid", part.schema, name, part,
                                   _drop_concurrently(part.schema, name), concurrent=True))
                own = None
            if own is None:
                steps.append(_step("create_concurrently", part.schema, name, part,
                                   _create(d, part.schema, name, part, only=False,
                                           concurrently=True), concurrent=True))
            built += 1
        steps.append(_step("attach", part.schema, name, part,
                           _attach(parent_schema, parent_name, part.schema, name),
                           concurrent=False))
    return built


def plan_index(d: DeclaredIndex, cat: Catalog) -> IndexPlan:
    """The steps that bring one declared index to valid (pure: catalog in, plan out)."""
    table = cat.table_by_name.get((d.table_schema, d.table))
    plan = IndexPlan(d.qualified, d.qualified_table, "ok")
    if table is None:
        plan.status = "table_missing"
        return plan
    existing = cat.index_by_name.get((d.schema, d.name))
    if existing is not None and existing.table_oid != table.oid:
        raise DmdbError(
            f"index {d.qualified} exists on another table than the declared "
            f"{d.qualified_table}; drop or rename it, then run the build again"
        )
    if table.kind == "p":
        if existing is not None and existing.valid:
            return plan
        plan.status = "missing" if existing is None else "incomplete"
        if existing is None:
            plan.steps.append(_step("create_on_only", d.schema, d.name, table,
                                    _create(d, d.schema, d.name, table, only=True,
                                            concurrently=False), concurrent=False))
        plan.partitions = _plan_partitions(d, cat, table, d.schema, d.name, table.name,
                                           plan.steps)
        return plan
    if existing is not None and existing.valid:
        return plan
    if existing is not None:
        plan.status = "invalid"
        plan.steps.append(_step("drop_invalid", d.schema, d.name, table,
                                _drop_concurrently(d.schema, d.name), concurrent=True))
    else:
        plan.status = "missing"
    plan.steps.append(_step("create_concurrently", d.schema, d.name, table,
                            _create(d, d.schema, d.name, table, only=False, concurrently=True),
                            concurrent=True))
    return plan


def plan_build(declared: list[DeclaredIndex], cat: Catalog,
               table: TableRow | None = None) -> list[IndexPlan]:
    """A plan per declared index (only those on `table`, when given)."""
    out = []
    for d in declared:
        if table is not None and (d.table_schema, d.table) != (table.schema, table.name):
            continue
        out.append(plan_index(d, cat))
    return out


# -- building ----------------------------------------------------------------------------


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
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
    if dry_run:
        plans = plan_build(declared, read_catalog(conn), target)
        return BuildResult(True, plans, seconds=time.monotonic() - started)

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


# -- check -----------------------------------------------------------------------------


@dataclass
class CheckResult:
    invalid: list[dict] = field(default_factory=list)  # {"index", "table", "definition"}
    missing: list[dict] = field(default_factory=list)  # {"index", "table", "table_missing"}
    unattached: list[dict] = field(default_factory=list)  # {"parent_index", "partition", "partition_index"}
    declared: int = 0

    @property
    def ok(self) -> bool:
        return not (self.invalid or self.missing or self.unattached)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "declared": self.declared, "invalid": self.invalid,
                "missing": self.missing, "unattached": self.unattached}


def check_catalog(declared: list[DeclaredIndex], cat: Catalog) -> CheckResult:
    """Invalid indexes, declared-but-missing ones, and partitions whose index is not
    attached to their parent table's partitioned index (pure)."""
    result = CheckResult(declared=len(declared))
    for i in cat.indexes:
        if not i.valid:
            t = cat.table_by_oid.get(i.table_oid)
            result.invalid.append({
                "index": f"{i.schema}.{i.name}",
                "table": f"{t.schema}.{t.name}" if t else None,
                "partitioned": i.kind == "I",
                "definition": i.definition,
            })
    for d in declared:
        if (d.schema, d.name) not in cat.index_by_name:
            table_missing = (d.table_schema, d.table) not in cat.table_by_name
            result.missing.append({"index": d.qualified, "table": d.qualified_table,
                                   "table_missing": table_missing, "source": d.source})
    for i in cat.indexes:
        if i.kind != "I":
            continue
        parent_table = cat.table_by_oid.get(i.table_oid)
        for part in cat.children.get(i.table_oid, []):
            if cat.attached(i.oid, part.oid) is not None:
                continue
            candidate = partition_index_name(part.name, i.name,
                                             parent_table.name if parent_table else "")
            own = cat.index_by_name.get((part.schema, candidate))
            result.unattached.append({
                "parent_index": f"{i.schema}.{i.name}",
                "partition": f"{part.schema}.{part.name}",
                "partition_index": f"{own.schema}.{own.name}" if own is not None
                and own.table_oid == part.oid else None,
            })
    return result


def check(conn: psycopg.Connection, declared: list[DeclaredIndex]) -> CheckResult:
    return check_catalog(declared, read_catalog(conn))


# -- report ----------------------------------------------------------------------------

UNUSED_MIN_SIZE_MB = 10.0


@dataclass
class ReportResult:
    stats_reset: object  # datetime | None: when the statistics were last reset
    min_size_mb: float
    indexes: list[dict]
    unused: list[dict]
    duplicates: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


_PUBLIC_KEYS = ("schema", "table", "index", "method", "size_bytes", "scans", "last_scan",
                "is_unique", "is_primary", "constraint_name", "partial", "expression", "valid",
                "partitioned", "leaf_indexes", "definition")


def _keys(row: dict) -> list[tuple]:
    n = row["key_count"]
    return list(zip(row["attnums"][:n], row["opclasses"][:n], row["collations"][:n],
                    row["options"][:n]))


def find_unused(rows: list[dict], min_size_bytes: int) -> list[dict]:
    """No scans since the statistics were reset, not unique, not backing a constraint,
    at least `min_size_bytes` (pghero's rule)."""
    return [r for r in rows
            if r["scans"] == 0 and not r["is_unique"] and not r["is_primary"]
            and r["constraint_name"] is None and r["valid"] and r["size_bytes"] >= min_size_bytes]


def find_duplicates(rows: list[dict]) -> list[dict]:
    """Indexes made redundant by another on the same table with the same method whose key
    columns (same operator classes, collations, order) start with all of theirs. Unique,
    partial and expression indexes are never reported, nor used as the covering index when
    partial or expression. Two identical indexes: the one with the later name is reported."""
    out = []
    for a in rows:
        if a["is_unique"] or a["partial"] or a["expression"] or not a["valid"] \
                or a["constraint_name"] is not None:
            continue
        ka = _keys(a)
        a_all = set(a["attnums"])
        for b in rows:
            if b is a or b["table_oid"] != a["table_oid"] or b["method"] != a["method"]:
                continue
            if b["partial"] or b["expression"] or not b["valid"]:
                continue
            kb = _keys(b)
            if kb[: len(ka)] != ka or not a_all <= set(b["attnums"]):
                continue
            if kb == ka and set(a["attnums"]) == set(b["attnums"]) and not b["is_unique"] \
                    and b["constraint_name"] is None and a["index"] < b["index"]:
                continue  # identical twins: report only the later name
            out.append({
                "schema": a["schema"], "table": a["table"], "index": a["index"],
                "covered_by": b["index"], "size_bytes": a["size_bytes"],
                "definition": a["definition"], "covering_definition": b["definition"],
            })
            break
    return out


def report(conn: psycopg.Connection, *, min_size_mb: float = UNUSED_MIN_SIZE_MB) -> ReportResult:
    from psycopg.rows import dict_row

    conn.execute("SELECT pg_stat_clear_snapshot()")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("indexes_report")).fetchall()
        reset = cur.execute(resources.query("indexes_stats_reset")).fetchone()
    if not conn.autocommit:
        conn.rollback()
    min_bytes = int(min_size_mb * 1024 * 1024)

    def public(r: dict) -> dict:
        return {k: r[k] for k in _PUBLIC_KEYS}

    return ReportResult(
        stats_reset=reset["stats_reset"] if reset else None,
        min_size_mb=min_size_mb,
        indexes=[public(r) for r in rows],
        unused=[public(r) for r in find_unused(rows, min_bytes)],
        duplicates=find_duplicates(rows),
    )
