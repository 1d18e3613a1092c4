"""Monthly partitions of learning_events: list, create ahead, roll over from cron.

Behaviour follows pg_partman's maintenance (premake, DEFAULT-partition handling,
retention to a schema or by dropping, one maintenance run at a time), with what it
declines to do: rows in the DEFAULT partition that belong to a month being created are
moved into the new partition as part of creating it.

Planning is pure and separate from doing:

- `months_ahead`, `plan_create`, `plan_retention` and `plan_pure` decide, from a date
  and the partitions that exist, which partitions should be created and which are past
  retention. No database; tested across month and year boundaries.
- `create_step` / `archive_step` / `drop_step` turn each decision into the exact SQL
  (psycopg.sql composition, never f-strings); `--dry-run` prints these statements and
  `execute` runs the very same ones.

How one month is created (one transaction, every lock under a short `lock_timeout`,
the whole transaction retried with backoff when a lock is not granted in time):

1. lock the tables the parent's foreign keys reference (`users`) in SHARE ROW
   EXCLUSIVE mode: ATTACH clones the foreign key onto the new partition and takes that
   lock anyway; taking it first keeps the application's order (`record_answer` updates
   `users` before it inserts an event), so the two cannot deadlock;
2. lock the parent (ONLY), then the DEFAULT partition: parent before child, as every
   INSERT through the parent does. With a DEFAULT partition the parent is locked in
   SHARE ROW EXCLUSIVE mode, which makes concurrent INSERTs *wait* for the few
   milliseconds of the transaction: a statement that routed a row to the DEFAULT
   partition before the ATTACH committed would otherwise fail afterwards with "new row
   violates partition constraint". Readers are not blocked by the parent's lock.
   Without a DEFAULT partition only ATTACH's SHARE UPDATE EXCLUSIVE is taken;
3. create the table standalone, `LIKE` the parent (defaults, constraints, indexes...),
   with a CHECK matching its bounds;
4. move the rows of that month out of the DEFAULT partition into it
   (`WITH moved AS (DELETE ... RETURNING ...) INSERT ... SELECT`);
5. ATTACH PARTITION (the CHECK spares the validation scan; the indexes created by LIKE
   are adopted by the parent's indexes), then drop the helper CHECK.

Retention detaches partitions whose upper bound is at or before the start of the
month `retain` months before the current one, never the current month (by the given
date *and* by the database clock) and never the DEFAULT partition. Archiving is
DETACH + SET SCHEMA; dropping is DROP TABLE of the attached partition, which detaches
it implicitly and, unlike DETACH + DROP, does not need an ACCESS EXCLUSIVE lock on
`users` (the detached table's own foreign key would be dropped with it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from psycopg import sql

from dmdb import resources
from dmdb.errors import ConfigError, DmdbError, first_line

if TYPE_CHECKING:
    import psycopg

# Session advisory lock of partition runs: "dmdb" in ASCII, then 2 (migrations use 1).
PARTITION_LOCK_KEY = 0x646D6462_00000002
DEFAULT_TABLE = "learning_events"
DEFAULT_LOCK_TIMEOUT = "2s"
DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.5
# Exit code when rows sit in the DEFAULT partition after a run (0 done, 1 failed, 2 usage).
EXIT_DEFAULT_ROWS = 3
MAX_AHEAD = 120
CHECK_NAME = "dmdb_partition_bounds"
UTC = timezone.utc


class PartitionError(DmdbError):
    """A partition operation failed."""


# -- months (pure) -------------------------------------------------------------


def month_of(value: date | datetime) -> date:
    """The first day of the (UTC) month `value` falls in."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return date(value.year, value.month, 1)
    return date(value.year, value.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def parse_month(text: str) -> date:
    """'YYYY-MM' -> the first day of that month; anything else is a usage error."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ConfigError(f"--from {text!r} is not a month; write it as YYYY-MM, e.g. 2026-11")
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next) in UTC."""
    nxt = add_months(month, 1)
    return (datetime(month.year, month.month, 1, tzinfo=UTC),
            datetime(nxt.year, nxt.month, 1, tzinfo=UTC))


def partition_name(parent: str, month: date) -> str:
    return f"{parent}_{month.year:04d}_{month.month:02d}"


def months_ahead(today: date | datetime, ahead: int, start: date | None = None) -> list[date]:
    """The months that should exist: `start` (default: today's month) and `ahead` after it."""
    if ahead < 0:
        raise ConfigError(f"--ahead {ahead} is negative; give 0 (this month only) or more")
    first = month_of(start) if start is not None else month_of(today)
    return [add_months(first, i) for i in range(ahead + 1)]


def retention_cutoff(today: date | datetime, retain: int) -> datetime:
    """Partitions ending at or before this instant are past retention."""
    if retain < 0:
        raise ConfigError(f"--retain {retain} is negative; give 0 (keep only this month) or more")
    return month_bounds(add_months(month_of(today), -retain))[0]


@dataclass(frozen=True)
class Existing:
    """A partition of the managed table, as the catalog describes it."""

    name: str
    lo: datetime | None  # None: MINVALUE (or the DEFAULT partition)
    hi: datetime | None  # None: MAXVALUE (or the DEFAULT partition)
    is_default: bool = False
    schema: str = "public"


@dataclass(frozen=True)
class Target:
    """A monthly partition to create."""

    month: date
    name: str
    lo: datetime
    hi: datetime


@dataclass(frozen=True)
class Conflict:
    month: date
    name: str
    reason: str


@dataclass
class PurePlan:
    to_create: list[Target] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    to_retire: list[Existing] = field(default_factory=list)


def _overlaps(p: Existing, lo: datetime, hi: datetime) -> bool:
    if p.is_default:
        return False
    return (p.lo is None or p.lo < hi) and (p.hi is None or p.hi > lo)


def plan_create(
    parent: str,
    existing: Iterable[Existing],
    months: Iterable[date],
    taken_names: Iterable[str] = (),
) -> tuple[list[Target], list[str], list[Conflict]]:
    """Which of `months` to create. A month whose exact range is a partition already is
    done (whatever its name); a month overlapping a partition with other bounds, or
    whose name another relation has, is a conflict (reported, never forced)."""
    existing = list(existing)
    taken = set(taken_names)
    create, done, conflicts = [], [], []
    for month in months:
        lo, hi = month_bounds(month)
        name = partition_name(parent, month)
        exact = [p for p in existing if not p.is_default and p.lo == lo and p.hi == hi]
        if exact:
            done.append(exact[0].name)
            continue
        clash = [p for p in existing if _overlaps(p, lo, hi)]
        if clash:
            conflicts.append(Conflict(month, name, "overlaps partition " + ", ".join(
                f"{p.name} [{_fmt(p.lo)}, {_fmt(p.hi)})" for p in clash)))
            continue
        if name in taken or any(p.name == name for p in existing):
            conflicts.append(Conflict(month, name, f"a relation named {name} exists but is not "
                                      "this month's partition; rename or drop it"))
            continue
        create.append(Target(month, name, lo, hi))
    return create, done, conflicts


def plan_retention(
    existing: Iterable[Existing],
    today: date | datetime,
    retain: int,
    now: datetime | None = None,
) -> list[Existing]:
    """Partitions past retention: upper bound at or before the start of the month
    `retain` months before today's. Never the DEFAULT partition, never an unbounded
    (MAXVALUE) one, and never the month of `now` (the database clock) even when `today`
    is given otherwise."""
    cutoff = retention_cutoff(today, retain)
    if now is not None:
        cutoff = min(cutoff, month_bounds(month_of(now))[0])
    return [p for p in existing
            if not p.is_default and p.hi is not None and p.hi <= cutoff]


def plan_pure(
    parent: str,
    existing: Iterable[Existing],
    today: date | datetime,
    ahead: int,
    *,
    start: date | None = None,
    retain: int | None = None,
    now: datetime | None = None,
    taken_names: Iterable[str] = (),
) -> PurePlan:
    """The whole decision for one run, without a database."""
    existing = list(existing)
    create, done, conflicts = plan_create(parent, existing, months_ahead(today, ahead, start),
                                          taken_names)
    retire = plan_retention(existing, today, retain, now) if retain is not None else []
    return PurePlan(create, done, conflicts, retire)


def _fmt(value: datetime | None) -> str:
    if value is None:
        return "unbounded"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


# -- SQL for each step (pure) --------------------------------------------------


@dataclass(frozen=True)
class TableInfo:
    """The managed partitioned table, read from the catalog."""

    schema: str
    name: str
    key: str
    columns: tuple[str, ...]
    default: str | None = None  # the DEFAULT partition's name (same schema assumed below)
    default_schema: str | None = None
    fk_targets: tuple[tuple[str, str], ...] = ()
    oid: int = 0

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def default_ident(self) -> sql.Identifier | None:
        if self.default is None:
            return None
        return sql.Identifier(self.default_schema or self.schema, self.default)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Step:
    """One transaction of the plan: its statements are what --dry-run prints and what
    `execute` runs."""

    action: str  # create | archive | drop
    partition: str
    lo: datetime | None
    hi: datetime | None
    statements: list[sql.Composable]
    default_rows: int = 0  # create: rows of this month in the DEFAULT partition at planning
    move_index: int | None = None  # index of the row-moving statement
    archive_schema: str | None = None

    @property
    def sql(self) -> list[str]:
        return [s.as_string(None) for s in self.statements]

    def to_dict(self) -> dict:
        data = {"action": self.action, "partition": self.partition,
                "from": self.lo, "to": self.hi, "sql": self.sql}
        if self.action == "create":
            data["default_rows"] = self.default_rows
        if self.archive_schema:
            data["archive_schema"] = self.archive_schema
        return data


def _set_lock_timeout(lock_timeout: str) -> sql.Composable:
    return sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout))


def _lock(ident: sql.Identifier, mode: str) -> sql.Composable:
    return sql.SQL("LOCK TABLE ONLY {} IN {} MODE").format(ident, sql.SQL(mode))


def _fk_locks(table: TableInfo) -> list[sql.Composable]:
    return [_lock(sql.Identifier(s, n), "SHARE ROW EXCLUSIVE") for s, n in table.fk_targets]


def create_step(table: TableInfo, target: Target, lock_timeout: str,
                default_rows: int = 0) -> Step:
    part = sql.Identifier(table.schema, target.name)
    key = sql.Identifier(table.key)
    lo, hi = sql.Literal(target.lo), sql.Literal(target.hi)
    stmts: list[sql.Composable] = [_set_lock_timeout(lock_timeout), *_fk_locks(table)]
    default = table.default_ident
    if default is not None:
        stmts += [_lock(table.ident, "SHARE ROW EXCLUSIVE"), _lock(default, "ACCESS EXCLUSIVE")]
    else:
        stmts.append(_lock(table.ident, "SHARE UPDATE EXCLUSIVE"))
    stmts += [
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(part, table.ident),
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {})").format(
            part, sql.Identifier(CHECK_NAME), key, lo, key, hi),
    ]
    move_index = None
    if default is not None:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
        move_index = len(stmts)
        stmts.append(sql.SQL(
            "WITH moved AS (DELETE FROM {default} WHERE {key} >= {lo} AND {key} < {hi} "
            "RETURNING {cols}) INSERT INTO {part} ({cols}) SELECT {cols} FROM moved"
        ).format(default=default, key=key, lo=lo, hi=hi, cols=cols, part=part))
    stmts += [
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            table.ident, part, lo, hi),
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(part, sql.Identifier(CHECK_NAME)),
    ]
    return Step("create", target.name, target.lo, target.hi, stmts, default_rows, move_index)


def archive_step(table: TableInfo, part: Existing, schema: str, lock_timeout: str) -> Step:
    ident = sql.Identifier(part.schema, part.name)
    stmts = [_set_lock_timeout(lock_timeout), *_fk_locks(table),
             _lock(table.ident, "ACCESS EXCLUSIVE")]
    if table.default_ident is not None:
        stmts.append(_lock(table.default_ident, "ACCESS EXCLUSIVE"))
    stmts += [
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(table.ident, ident),
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(ident, sql.Identifier(schema)),
    ]
    return Step("archive", part.name, part.lo, part.hi, stmts, archive_schema=schema)


def drop_step(table: TableInfo, part: Existing, lock_timeout: str) -> Step:
    stmts = [_set_lock_timeout(lock_timeout), _lock(table.ident, "ACCESS EXCLUSIVE")]
    if table.default_ident is not None:
        stmts.append(_lock(table.default_ident, "ACCESS EXCLUSIVE"))
    stmts.append(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.schema, part.name)))
    return Step("drop", part.name, part.lo, part.hi, stmts)


# -- the plan and the result ---------------------------------------------------


@dataclass
class Plan:
    action: str  # create | rollover
    table: TableInfo
    today: date
    ahead: int
    start: date | None
    retain: int | None
    retention: str | None  # archive | drop | None
    archive_schema: str | None
    lock_timeout: str
    steps: list[Step] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    default_rows: int = 0  # rows in the DEFAULT partition when planned


@dataclass
class RunResult:
    action: str
    table: str
    dry_run: bool
    today: date
    ahead: int
    retain: int | None = None
    retention: str | None = None
    archive_schema: str | None = None
    skipped: bool = False  # another run held the lock
    message: str = ""
    created: list[dict] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    archived: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    retries: int = 0
    moved_rows: int = 0
    default_rows: int = 0  # rows in the DEFAULT partition after the run (dry run: now)
    steps: list[Step] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 done or nothing to do (and every dry run), 1 a step failed or a month
        conflicts, 3 rows sit in the DEFAULT partition after the run."""
        if self.dry_run:
            return 0
        if self.errors or self.conflicts:
            return 1
        if self.default_rows and not self.skipped:
            return EXIT_DEFAULT_ROWS
        return 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.archived or self.dropped)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["exit_code"] = self.exit_code
        return data


def plan_steps(pure: PurePlan, table: TableInfo, *, lock_timeout: str,
               retention: str | None, archive_schema: str | None,
               default_counts: dict[str, int] | None = None) -> list[Step]:
    counts = default_counts or {}
    steps = [create_step(table, t, lock_timeout, counts.get(t.name, 0)) for t in pure.to_create]
    for part in pure.to_retire:
        if retention == "archive":
            steps.append(archive_step(table, part, archive_schema or "", lock_timeout))
        elif retention == "drop":
            steps.append(drop_step(table, part, lock_timeout))
    return steps


# -- reading the catalog -------------------------------------------------------


def read_table(conn: psycopg.Connection, name: str = DEFAULT_TABLE) -> TableInfo:
    import psycopg
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        try:
            row = cur.execute(resources.query("partitions_table"), {"name": name}).fetchone()
        except (psycopg.errors.InvalidName, psycopg.errors.SyntaxError,
                psycopg.errors.FeatureNotSupported) as exc:
            first = first_line(exc, "")
            raise ConfigError(f"--table {name!r} is not a table name ({first})") from None
    if row is None:
        raise ConfigError(
            f"{name} is not a partitioned table in this database; run `dmdb up` first "
            "or pass --table SCHEMA.TABLE"
        )
    if row["strategy"] != "r" or row["key_column"] is None or \
            row["key_type"] != "timestamp with time zone":
        raise ConfigError(
            f"{row['table_schema']}.{row['table_name']} is not RANGE partitioned on one "
            "timestamptz column; dmdb partitions manages monthly ranges only"
        )
    return TableInfo(
        schema=row["table_schema"], name=row["table_name"], key=row["key_column"],
        columns=tuple(row["columns"]), default=row["default_name"],
        default_schema=row["default_schema"],
        fk_targets=tuple(tuple(t) for t in row["fk_targets"]), oid=row["oid"],
    )


def read_partitions(conn: psycopg.Connection, table: TableInfo) -> list[Existing]:
    rows = conn.execute(resources.query("partitions_bounds"), {"parent": table.oid}).fetchall()
    return [Existing(name=r[1], lo=r[3], hi=r[4], is_default=r[2], schema=r[0]) for r in rows]


def count_default(conn: psycopg.Connection, table: TableInfo,
                  lo: datetime | None = None, hi: datetime | None = None) -> int:
    """Exact count of the rows in the DEFAULT partition (within [lo, hi) if given)."""
    if table.default_ident is None:
        return 0
    query = sql.SQL("SELECT count(*) FROM {}").format(table.default_ident)
    if lo is not None and hi is not None:
        key = sql.Identifier(table.key)
        query = sql.SQL("{} WHERE {} >= {} AND {} < {}").format(
            query, key, sql.Literal(lo), key, sql.Literal(hi))
    return conn.execute(query).fetchone()[0]


def _taken_names(conn: psycopg.Connection, table: TableInfo, names: list[str]) -> set[str]:
    if not names:
        return set()
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)", (table.schema, names)).fetchall()
    return {r[0] for r in rows}


def db_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


def check_lock_timeout(value: str) -> str:
    from dmdb.config import check_duration

    return check_duration(value, "--lock-timeout")


def make_plan(
    conn: psycopg.Connection,
    *,
    action: str = "create",
    table: str = DEFAULT_TABLE,
    ahead: int = 3,
    start: date | None = None,
    retain: int | None = None,
    archive_schema: str | None = None,
    drop: bool = False,
    today: date | None = None,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
) -> Plan:
    """Read the catalog and decide; nothing is changed."""
    retention = validate_options(ahead=ahead, retain=retain, archive_schema=archive_schema,
                                 drop=drop)
    lock_timeout = check_lock_timeout(lock_timeout)
    info = read_table(conn, table)
    now = db_now(conn)
    if today is None:
        today = now.astimezone(UTC).date()
    existing = read_partitions(conn, info)
    wanted = [partition_name(info.name, m) for m in months_ahead(today, ahead, start)]
    too_long = [n for n in wanted if len(n.encode()) > 63]
    if too_long:
        raise ConfigError(f"partition name {too_long[0]} is longer than PostgreSQL's 63 bytes; "
                          "rename the table or manage its partitions by hand")
    pure = plan_pure(info.name, existing, today, ahead, start=start, retain=retain, now=now,
                     taken_names=_taken_names(conn, info, wanted))
    counts = {t.name: count_default(conn, info, t.lo, t.hi) for t in pure.to_create}
    steps = plan_steps(pure, info, lock_timeout=lock_timeout, retention=retention,
                       archive_schema=archive_schema, default_counts=counts)
    return Plan(action=action, table=info, today=today, ahead=ahead, start=start,
                retain=retain, retention=retention, archive_schema=archive_schema,
                lock_timeout=lock_timeout, steps=steps, existing=pure.existing,
                conflicts=pure.conflicts, default_rows=count_default(conn, info))


def validate_options(*, ahead: int, retain: int | None, archive_schema: str | None,
                     drop: bool) -> str | None:
    """Usage checks shared by the commands; returns the retention mode."""
    if ahead < 0 or ahead > MAX_AHEAD:
        raise ConfigError(f"--ahead {ahead} is out of range; give 0..{MAX_AHEAD} months")
    if archive_schema is not None and drop:
        raise ConfigError("--archive-schema and --drop exclude each other; choose one")
    if retain is None:
        if archive_schema is not None or drop:
            raise ConfigError("--archive-schema / --drop need --retain MONTHS")
        return None
    if retain < 0:
        raise ConfigError(f"--retain {retain} is negative; give 0 (keep only this month) or more")
    if archive_schema is None and not drop:
        raise ConfigError(
            "--retain needs --archive-schema SCHEMA (detach and keep) or --drop (detach and "
            "drop); see --dry-run for what it would touch"
        )
    if archive_schema is not None:
        if not archive_schema.strip() or len(archive_schema.encode()) > 63:
            raise ConfigError(f"--archive-schema {archive_schema!r} is not a schema name")
        return "archive"
    return "drop"


# -- doing ---------------------------------------------------------------------


def _iso(value: datetime | None):
    return value.astimezone(UTC).isoformat() if value is not None else None


def execute(
    conn: psycopg.Connection,
    plan: Plan,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    progress: Callable[[Step], None] | None = None,
    result: RunResult | None = None,
) -> RunResult:
    """Run each step of the plan in its own transaction, retried on lock timeouts.

    A step that still fails is rolled back whole and reported in `errors`; the other
    steps still run (each month is independent). `conn` must be in autocommit mode.
    """
    import psycopg

    from dmdb.db import redact, retry_on_lock_timeout

    result = result or _result(plan, dry_run=False)
    retries = 0

    def count_retry(attempt, delay, exc):
        nonlocal retries
        retries += 1

    for step in plan.steps:
        if progress is not None:
            progress(step)

        def attempt(step=step) -> int:
            moved = 0
            with conn.transaction():
                # The very text --dry-run prints (no parameters: sent as is).
                for i, text in enumerate(step.sql):
                    cur = conn.execute(text)
                    if i == step.move_index:
                        moved = max(cur.rowcount, 0)
            return moved

        try:
            moved = retry_on_lock_timeout(attempt, attempts=attempts, base_delay=base_delay,
                                          on_retry=count_retry)
        except psycopg.Error as exc:
            first = first_line(exc)
            hint = ""
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                hint = (f" (lock not granted within lock_timeout {plan.lock_timeout}, "
                        f"{attempts} attempts; a long transaction holds the table — retry later)")
            result.errors.append({"step": f"{step.action} {step.partition}",
                                  "error": redact(first) + hint})
            continue
        entry = {"name": step.partition, "from": _iso(step.lo), "to": _iso(step.hi)}
        if step.action == "create":
            result.created.append({**entry, "moved_rows": moved})
            result.moved_rows += moved
        elif step.action == "archive":
            result.archived.append({**entry, "schema": step.archive_schema})
        else:
            result.dropped.append(entry)
    result.retries = retries
    result.default_rows = count_default(conn, plan.table)
    return result


def _result(plan: Plan, *, dry_run: bool) -> RunResult:
    return RunResult(
        action=plan.action, table=plan.table.qualified, dry_run=dry_run, today=plan.today,
        ahead=plan.ahead, retain=plan.retain, retention=plan.retention,
        archive_schema=plan.archive_schema, existing=list(plan.existing),
        conflicts=[{"month": c.month.strftime("%Y-%m"), "name": c.name, "reason": c.reason}
                   for c in plan.conflicts],
        default_rows=plan.default_rows, steps=list(plan.steps),
    )


def run(
    conn: psycopg.Connection,
    *,
    action: str = "create",
    table: str = DEFAULT_TABLE,
    ahead: int = 3,
    start: date | None = None,
    retain: int | None = None,
    archive_schema: str | None = None,
    drop: bool = False,
    today: date | None = None,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    progress: Callable[[Step], None] | None = None,
) -> RunResult:
    """`create` and `rollover`: take the advisory lock, plan, execute (or only plan).

    When another run holds the lock: after `lock_wait` seconds, a result with
    `skipped=True` (rollover: exit 0) — the caller decides whether that is an error.
    A dry run takes no lock and changes nothing.
    """
    validate_options(ahead=ahead, retain=retain, archive_schema=archive_schema, drop=drop)
    check_lock_timeout(lock_timeout)
    kwargs = {"action": action, "table": table, "ahead": ahead, "start": start, "retain": retain,
                  "archive_schema": archive_schema, "drop": drop, "today": today,
                  "lock_timeout": lock_timeout}
    if dry_run:
        return _result(make_plan(conn, **kwargs), dry_run=True)
    from dmdb.db import advisory_unlock, try_advisory_lock

    if not try_advisory_lock(conn, PARTITION_LOCK_KEY, lock_wait):
        info = read_table(conn, table)
        return RunResult(action=action, table=info.qualified, dry_run=False,
                         today=today or db_now(conn).astimezone(UTC).date(), ahead=ahead, retain=retain,
                         skipped=True,
                         message="another run of dmdb partitions is in progress (advisory "
                         f"lock {PARTITION_LOCK_KEY:#x}); nothing done")
    try:
        plan = make_plan(conn, **kwargs)
        return execute(conn, plan, attempts=attempts, base_delay=base_delay, progress=progress)
    finally:
        advisory_unlock(conn, PARTITION_LOCK_KEY)


# -- listing -------------------------------------------------------------------


@dataclass
class PartitionRow:
    name: str
    schema: str
    bound: str
    is_default: bool
    range_from: str | None
    range_to: str | None
    rows_estimate: int | None
    size_bytes: int
    sub_partitioned: bool = False
    default_rows: int | None = None  # exact, DEFAULT partitions only


@dataclass
class PartitionedTable:
    schema: str
    name: str
    strategy: str
    key: str
    partitions: list[PartitionRow] = field(default_factory=list)

    @property
    def default_rows(self) -> int:
        return sum(p.default_rows or 0 for p in self.partitions)

    def to_dict(self) -> dict:
        return {"table": f"{self.schema}.{self.name}", "schema": self.schema,
                "name": self.name, "strategy": self.strategy, "key": self.key,
                "default_rows": self.default_rows,
                "partitions": [asdict(p) for p in self.partitions]}


@dataclass
class Listing:
    tables: list[PartitionedTable]

    @property
    def default_rows(self) -> int:
        return sum(t.default_rows for t in self.tables)

    def to_dict(self) -> dict:
        return {"tables": [t.to_dict() for t in self.tables], "default_rows": self.default_rows}


def list_partitions(conn: psycopg.Connection) -> Listing:
    """Every partitioned table and its partitions; DEFAULT partitions' rows counted
    exactly (they should be few). `conn` should be in autocommit mode; the session's
    TimeZone is set to UTC so bounds print in UTC."""
    conn.execute("SET TimeZone = 'UTC'")
    tables: dict[tuple[str, str], PartitionedTable] = {}
    for r in conn.execute(resources.query("partitions_list")).fetchall():
        (t_schema, t_name, strategy, key, p_schema, p_name, sub, bound, is_default,
         r_from, r_to, rows, size) = r
        table = tables.setdefault((t_schema, t_name),
                                  PartitionedTable(t_schema, t_name, strategy, key))
        if p_name is None:
            continue
        table.partitions.append(PartitionRow(
            name=p_name, schema=p_schema, bound=bound, is_default=bool(is_default),
            range_from=_unquote(r_from), range_to=_unquote(r_to), rows_estimate=rows,
            size_bytes=size, sub_partitioned=bool(sub)))
    for table in tables.values():
        for p in table.partitions:
            if p.is_default:
                p.default_rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(p.schema, p.name))).fetchone()[0]
    return Listing(list(tables.values()))


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def today_from_text(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--today {text!r} is not a date; write it as YYYY-MM-DD") from None


