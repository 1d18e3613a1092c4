"""Monthly partitions, planned without a database.

From a date, the partitions that exist and what the DEFAULT partition holds, decide
which months to create, which partitions are past retention, which rows of DEFAULT can
never get a partition, and how many months ahead are covered; then turn each decision
into the exact SQL of one transaction (`create_step`; retention's steps are in
`partitions.retention`). `--dry-run` prints these statements and `execute` runs the
very same ones. Everything here is tested across month and year boundaries without a
server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from psycopg import sql

from dmdb.errors import ConfigError, DmdbError

DEFAULT_TABLE = "learning_events"
DEFAULT_LOCK_TIMEOUT = "2s"
DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.5
# Exit code when rows sit in the DEFAULT partition after a run (0 done, 1 failed, 2 usage).
EXIT_DEFAULT_ROWS = 3
MAX_AHEAD = 120
# `--fill` creates DEFAULT's months within this many months of the current one, either
# side; rows further away are named as stranded (a clock or data error far more often
# than history or plans: record_answer refuses answers from the future).
FILL_HORIZON = MAX_AHEAD
CHECK_NAME = "dmdb_partition_bounds"
# The CHECK a create puts on the DEFAULT partition, NOT VALID then validated without
# blocking, to prove it holds only the month's rows before it becomes that month's
# partition (`swap_step`). While it is on, rows of other months are refused there.
DEFAULT_CHECK_NAME = "dmdb_default_moving"
# DEFAULT partitions with at least this many rows of the month become its partition
# (`swap_step`); fewer rows are moved under ACCESS EXCLUSIVE, which lasts milliseconds
# for them and refuses nothing.
SWAP_MIN_ROWS = 10_000
# The swap's ACCESS EXCLUSIVE requests queue at most this long (or --lock-timeout when
# shorter): statements arriving meanwhile queue behind them.
SWAP_LOCK_TIMEOUT = "1s"
UTC = timezone.utc


class PartitionError(DmdbError):
    """A partition operation failed."""


# -- months --------------------------------------------------------------------


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


def months_between(first: date, second: date) -> int:
    """Whole months from `first`'s month to `second`'s (negative when earlier)."""
    return (second.year - first.year) * 12 + second.month - first.month


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


def retire_cutoff(today: date | datetime, retain: int, now: datetime | None = None) -> datetime:
    """`retention_cutoff`, never later than the start of `now`'s month (the database
    clock): the current month is never past retention, whatever `today` says."""
    cutoff = retention_cutoff(today, retain)
    if now is not None:
        cutoff = min(cutoff, month_bounds(month_of(now))[0])
    return cutoff


# -- what the catalog holds -----------------------------------------------------


@dataclass(frozen=True)
class Existing:
    """A partition as the catalog describes it (`partitions.catalog.read_bounds`).

    `lo`/`hi` are the RANGE bounds of a table partitioned on one timestamptz column
    (None: MINVALUE/MAXVALUE, the DEFAULT partition, or another kind of key); `bound`,
    `from_text` and `to_text` are PostgreSQL's own text for every kind of partition."""

    name: str
    lo: datetime | None
    hi: datetime | None
    is_default: bool = False
    schema: str = "public"
    bound: str = ""
    from_text: str | None = None
    to_text: str | None = None
    oid: int = 0
    parent_oid: int = 0
    sub_partitioned: bool = False


@dataclass(frozen=True)
class DefaultMonth:
    """Rows of the DEFAULT partition in one UTC month (`partitions.catalog.read_default`).

    `month` is None for values no calendar month can name (±infinity, years outside
    1..9999); `label` says which ('2031-01', 'infinity', 'year 12000')."""

    label: str
    rows: int
    month: date | None = None

    def to_dict(self) -> dict:
        return {"month": self.label, "rows": self.rows}


@dataclass
class DefaultContents:
    """What the DEFAULT partition of one table holds: rows in total and by month (by
    month only for a table partitioned on one timestamptz column). `capped`: the count
    stopped at the cap, so `rows` and the months are lower bounds."""

    schema: str
    name: str
    rows: int = 0
    months: list[DefaultMonth] | None = None
    capped: bool = False
    parent: str | None = None  # the partitioned table, schema-qualified

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def by_month(self) -> dict[date, int]:
        return {m.month: m.rows for m in self.months or () if m.month is not None}

    def to_dict(self) -> dict:
        return {"partition": self.qualified, "parent": self.parent, "rows": self.rows,
                "capped": self.capped,
                "months": None if self.months is None else [m.to_dict() for m in self.months]}


# -- planning ------------------------------------------------------------------


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


@dataclass(frozen=True)
class Stranded:
    """Rows of DEFAULT that this run gives no partition, and why."""

    month: str  # 'YYYY-MM', or the label of a value no month can name
    rows: int
    reason: str

    def to_dict(self) -> dict:
        return {"month": self.month, "rows": self.rows, "reason": self.reason}


@dataclass
class PurePlan:
    to_create: list[Target] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    to_retire: list[Existing] = field(default_factory=list)
    stranded: list[Stranded] = field(default_factory=list)
    # DEFAULT's rows of months past retention (late answers for a retired month): the
    # retention policy takes them (into the archived table, or deleted with --drop).
    late: list[DefaultMonth] = field(default_factory=list)


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


def plan_fill(
    default_months: Iterable[DefaultMonth],
    today: date | datetime,
    *,
    horizon: int = FILL_HORIZON,
    cutoff: datetime | None = None,
) -> tuple[list[date], list[Stranded]]:
    """`--fill`: the months of DEFAULT's rows to create, and the rows left stranded.

    A month within `horizon` months of today's, either side, gets its partition; so do
    past months, unless they are at or before the retention `cutoff` (rollover would
    retire them at once). Everything else is named, never kept silently."""
    current = month_of(today)
    create: list[date] = []
    stranded: list[Stranded] = []
    for m in default_months:
        if m.month is None:
            stranded.append(Stranded(m.label, m.rows, "no calendar month holds this value; "
                                     "fix or delete these rows"))
            continue
        distance = months_between(current, m.month)
        if abs(distance) > horizon:
            side = "after" if distance > 0 else "before"
            stranded.append(Stranded(m.label, m.rows, (
                f"more than {horizon} months {side} {current:%Y-%m}: most likely a wrong "
                "timestamp; fix or delete these rows, or create the month on purpose with "
                f"`dmdb partitions create --from {m.label} --ahead 0`")))
            continue
        if cutoff is not None and month_bounds(m.month)[1] <= cutoff:
            stranded.append(Stranded(m.label, m.rows, (
                "past retention: its partition would be retired by this very run; `dmdb "
                "partitions rollover --retain` takes these rows as it took the month (into "
                "its archived table, or deleted with --drop)")))
            continue
        create.append(m.month)
    return create, stranded


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
    cutoff = retire_cutoff(today, retain, now)
    return [p for p in existing
            if not p.is_default and p.hi is not None and p.hi <= cutoff]


def plan_late(
    default_months: Iterable[DefaultMonth],
    today: date | datetime,
    retain: int,
    now: datetime | None = None,
    *,
    horizon: int = FILL_HORIZON,
) -> list[DefaultMonth]:
    """DEFAULT's months that retention has retired: late rows (an answer recorded after
    its month was archived or dropped). Retention takes them as it took the month —
    never by creating the month's partition again, which the next run would have to
    retire once more (into an archive schema that already holds that table). Months
    further back than `horizon` stay where they are: a wrong timestamp far more often
    than a late answer."""
    cutoff = retire_cutoff(today, retain, now)
    current = month_of(now or today)
    return [m for m in default_months
            if m.month is not None and month_bounds(m.month)[1] <= cutoff
            and abs(months_between(current, m.month)) <= horizon]


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
    fill_from: Iterable[DefaultMonth] | None = None,
    default_months: Iterable[DefaultMonth] | None = None,
) -> PurePlan:
    """The whole decision for one run, without a database. `fill_from`: DEFAULT's months
    (`--fill`), whose partitions are created too; `default_months`: what DEFAULT holds
    (default: `fill_from`), whose months past retention go to `late`."""
    existing = list(existing)
    months = months_ahead(today, ahead, start)
    stranded: list[Stranded] = []
    held = list(default_months if default_months is not None else fill_from or ())
    late = plan_late(held, today, retain, now) if retain is not None else []
    if fill_from is not None:
        cutoff = retire_cutoff(today, retain, now) if retain is not None else None
        taken = {m.month for m in late}
        extra, stranded = plan_fill([m for m in fill_from if m.month is None
                                     or m.month not in taken], now or today, cutoff=cutoff)
        months = sorted(set(months) | set(extra))
    create, done, conflicts = plan_create(parent, existing, months, taken_names)
    retire = plan_retention(existing, today, retain, now) if retain is not None else []
    return PurePlan(create, done, conflicts, retire, stranded, late)


@dataclass(frozen=True)
class Coverage:
    """Which months ahead of the current one have a partition (the monitor's check)."""

    current: str | None  # the current month's partition (None: rows go to DEFAULT)
    ahead: int  # consecutive months after the current one that have a partition
    months: list[tuple[str, str | None]]  # ('YYYY-MM', partition) up to the first gap
    unbounded: bool = False  # a MAXVALUE partition covers every later month


def coverage(existing: Iterable[Existing], now: date | datetime,
             limit: int = 12 * 100) -> Coverage:
    """The true count of consecutive monthly partitions after `now`'s month (up to
    `limit`, reached only when an unbounded partition covers the future)."""
    ranges = [p for p in existing if not p.is_default and (p.lo is not None or p.hi is not None)]

    def holder(instant: datetime) -> Existing | None:
        found = [p for p in ranges if (p.lo is None or p.lo <= instant)
                 and (p.hi is None or instant < p.hi)]
        return found[0] if found else None

    first = month_of(now)
    months: list[tuple[str, str | None]] = []
    ahead = 0
    current = None
    unbounded = False
    for i in range(limit + 1):
        month = add_months(first, i)
        part = holder(month_bounds(month)[0])
        months.append((f"{month:%Y-%m}", part.name if part else None))
        if i == 0:
            current = part.name if part else None
            continue
        if part is None:
            break
        if part.hi is None:
            unbounded = True
            ahead = limit
            break
        ahead += 1
    return Coverage(current, ahead, months, unbounded)


def _fmt(value: datetime | None) -> str:
    if value is None:
        return "unbounded"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def validate_options(*, ahead: int, retain: int | None, archive_schema: str | None,
                     drop: bool, table: str | None = None) -> str | None:
    """Usage checks shared by the commands; returns the retention mode. `table` as
    given (`--table`): an archive schema that is its schema is refused here already
    (`public` for an unqualified name), the schema it resolves to at planning."""
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
        if archive_schema.startswith("pg_"):
            raise ConfigError(f"--archive-schema {archive_schema}: schema names beginning with "
                              "pg_ are reserved for PostgreSQL; choose another, e.g. archive")
        if table is not None:
            schema = table.split(".", 1)[0].strip('"') if "." in table else "public"
            check_archive_schema(archive_schema, schema, table)
        return "archive"
    return "drop"


def check_archive_schema(archive_schema: str, live_schema: str, table: str) -> None:
    """Refuse archiving into the schema of the live table: the detached table would stay
    beside the live partitions under a partition's name, and the month created again
    (`create --fill`, `--from`) would clash with it."""
    if archive_schema == live_schema:
        raise ConfigError(
            f"--archive-schema {archive_schema} is the schema of {table} itself: archived "
            "tables must leave the live schema; choose another schema, e.g. --archive-schema "
            "archive")


def check_lock_timeout(value: str) -> str:
    from dmdb.config import check_lock_timeout

    return check_lock_timeout(value, "--lock-timeout")


# -- SQL for each step ---------------------------------------------------------


@dataclass(frozen=True)
class TableInfo:
    """The managed partitioned table, read from the catalog."""

    schema: str
    name: str
    key: str
    columns: tuple[str, ...]
    default: str | None = None  # the DEFAULT partition's name
    default_schema: str | None = None
    fk_targets: tuple[tuple[str, str], ...] = ()
    oid: int = 0
    default_indexes: tuple[str, ...] = ()  # the DEFAULT partition's indexes' names
    # its privileges other than its owner's: (grantee or 'PUBLIC', privilege, grantable)
    default_grants: tuple[tuple[str, str, bool], ...] = ()
    default_moving: bool = False  # DEFAULT_CHECK_NAME is on it (a killed run left it)

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

    action: str  # create | archive | drop | unlink | late
    partition: str
    lo: datetime | None
    hi: datetime | None
    statements: list[sql.Composable]
    default_rows: int = 0  # create: rows of this month in the DEFAULT partition at planning
    move_index: int | None = None  # index of the row-moving statement
    archive_schema: str | None = None
    # create without rows to move: the step to run instead when rows of the month
    # reached DEFAULT after planning (ATTACH then refuses with 23514).
    fallback: Step | None = None
    unlinks: list[str] = field(default_factory=list)  # archive/unlink: what is cut loose
    # archive: the archive schema already holds this month's table (archived earlier; the
    # month was created again since): the rows are copied into it and the partition dropped.
    merge: bool = False
    # create by swap (`swap_step`): transactions run before `statements` (the CHECK put
    # on DEFAULT, then validated), and the one that takes the CHECK off again when the
    # step does not complete.
    prepare: list[list[sql.Composable]] = field(default_factory=list)
    undo: list[sql.Composable] = field(default_factory=list)
    swap_target: sql.Composable | None = None  # the month's partition once swapped

    @property
    def swap(self) -> bool:
        return bool(self.prepare)

    @property
    def transactions(self) -> list[list[str]]:
        """Every transaction of the step, in order, as the statements sent."""
        return [[s.as_string(None) for s in tx] for tx in [*self.prepare, self.statements]]

    @property
    def sql(self) -> list[str]:
        return [s for tx in self.transactions for s in tx]

    def to_dict(self) -> dict:
        data = {"action": self.action, "partition": self.partition,
                "from": self.lo, "to": self.hi, "sql": self.sql}
        if self.action == "create":
            data["default_rows"] = self.default_rows
            data["blocks_readers"] = self.move_index is not None
            data["swap"] = self.swap
            if self.swap:
                data["transactions"] = self.transactions
        if self.archive_schema:
            data["archive_schema"] = self.archive_schema
        if self.action in ("archive", "unlink"):
            data["unlinks"] = list(self.unlinks)
        if self.action == "archive":
            data["merge"] = self.merge
        if self.action == "late":
            data["default_rows"] = self.default_rows
        return data


def set_lock_timeout(lock_timeout: str) -> sql.Composable:
    return sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout))


def lock(ident: sql.Identifier, mode: str) -> sql.Composable:
    return sql.SQL("LOCK TABLE ONLY {} IN {} MODE").format(ident, sql.SQL(mode))


def fk_locks(table: TableInfo, mode: str = "SHARE ROW EXCLUSIVE") -> list[sql.Composable]:
    return [lock(sql.Identifier(s, n), mode) for s, n in table.fk_targets]


def create_step(table: TableInfo, target: Target, lock_timeout: str,
                default_rows: int = 0) -> Step:
    """One month's transaction. With rows of the month in DEFAULT (`default_rows` > 0)
    the parent is locked ACCESS EXCLUSIVE while they move, so that no statement plans
    with the old partition list and then reads DEFAULT after the rows left it; without,
    SHARE ROW EXCLUSIVE (writers wait, readers do not), and a fallback that moves rows
    in case some arrived since planning."""
    if table.default_ident is not None and default_rows <= 0:
        step = _create_step(table, target, lock_timeout, move=False)
        step.fallback = _create_step(table, target, lock_timeout, move=True)
        return step
    return _create_step(table, target, lock_timeout, move=default_rows > 0,
                        default_rows=default_rows)


def _create_step(table: TableInfo, target: Target, lock_timeout: str, *, move: bool,
                 default_rows: int = 0) -> Step:
    part = sql.Identifier(table.schema, target.name)
    key = sql.Identifier(table.key)
    lo, hi = sql.Literal(target.lo), sql.Literal(target.hi)
    stmts: list[sql.Composable] = [set_lock_timeout(lock_timeout), *fk_locks(table)]
    default = table.default_ident
    move = move and default is not None
    if default is not None:
        parent_mode = "ACCESS EXCLUSIVE" if move else "SHARE ROW EXCLUSIVE"
        stmts += [lock(table.ident, parent_mode), lock(default, "ACCESS EXCLUSIVE")]
    else:
        stmts.append(lock(table.ident, "SHARE UPDATE EXCLUSIVE"))
    stmts += [
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(part, table.ident),
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {})").format(
            part, sql.Identifier(CHECK_NAME), key, lo, key, hi),
    ]
    move_index = None
    if move:
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


def _renamed(name: str, old_prefix: str, new_prefix: str) -> str | None:
    """An index of the DEFAULT partition, named for the month (None: keep its name).
    `learning_events_default_pkey` -> `learning_events_2031_01_pkey`: the name the
    migrations, `CREATE TABLE ... LIKE` and `dmdb indexes build` give a month's index.
    Longer than 63 bytes: cut, ending in 8 hex digits of a hash of the whole name."""
    import hashlib

    if not name.startswith(old_prefix + "_"):
        return None
    new = new_prefix + name[len(old_prefix):]
    if len(new.encode()) <= 63:
        return new
    digest = hashlib.sha1(new.encode()).hexdigest()[:8]
    return new.encode()[:54].decode(errors="ignore") + "_" + digest


def swap_step(table: TableInfo, target: Target, lock_timeout: str,
              default_rows: int = 0) -> Step:
    """A month whose rows fill the DEFAULT partition: DEFAULT becomes its partition, and a
    new empty DEFAULT takes its place. No row is copied; nothing waits for more than a
    few milliseconds at a time.

    1. `ADD CONSTRAINT dmdb_default_moving CHECK (bounds) NOT VALID` on DEFAULT: ACCESS
       EXCLUSIVE on DEFAULT for a catalog change. From then on a row of another month
       routed to DEFAULT is refused (SQLSTATE 23514) until step 3 commits.
    2. `VALIDATE CONSTRAINT`: reads every row under SHARE UPDATE EXCLUSIVE, which
       readers and writers do not wait for. If a row of another month is there, it
       fails; the CHECK is taken off (`undo`) and the month is moved the old way
       (`fallback`).
    3. One short transaction, locks in the usual order (users, parent, DEFAULT), the
       parent ACCESS EXCLUSIVE so that every statement is planned after it with the new
       partition list (the rows are never in a relation a reader's plan leaves out):
       DETACH DEFAULT; rename it and its indexes to the month's names; ATTACH it for the
       month (the validated CHECK spares the scan; its indexes, CHECKs and foreign key
       are adopted by the parent's); drop the CHECK; CREATE the new DEFAULT (as the
       migration made it) and give it the old one's privileges. Catalog work only.
    """
    from dmdb.config import duration_ms

    default = table.default_ident
    assert default is not None
    # ACCESS EXCLUSIVE waits at most a second; VALIDATE's lock stops nobody, it may wait
    # the whole lock_timeout (e.g. for autovacuum to be cancelled).
    exclusive = (lock_timeout if duration_ms(lock_timeout, "--lock-timeout")
                 <= duration_ms(SWAP_LOCK_TIMEOUT, "") else SWAP_LOCK_TIMEOUT)
    key = sql.Identifier(table.key)
    lo, hi = sql.Literal(target.lo), sql.Literal(target.hi)
    check = sql.Identifier(DEFAULT_CHECK_NAME)
    part = sql.Identifier(table.default_schema or table.schema, target.name)
    drop_check = sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(default, check)
    add = [set_lock_timeout(exclusive), drop_check,
           sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {}) NOT VALID")
           .format(default, check, key, lo, key, hi)]
    validate = [set_lock_timeout(lock_timeout),
                sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(default, check)]
    stmts: list[sql.Composable] = [
        set_lock_timeout(exclusive), *fk_locks(table),
        lock(table.ident, "ACCESS EXCLUSIVE"), lock(default, "ACCESS EXCLUSIVE"),
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(table.ident, default),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(default, sql.Identifier(target.name)),
    ]
    schema = table.default_schema or table.schema
    for index in table.default_indexes:
        new = _renamed(index, table.default or "", target.name)
        if new is not None:
            stmts.append(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(schema, index), sql.Identifier(new)))
    stmts += [
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            table.ident, part, lo, hi),
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(part, check),
        sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(default, table.ident),
    ]
    for grantee, privilege, grantable in table.default_grants:
        stmts.append(sql.SQL("GRANT {} ON TABLE {} TO {}{}").format(
            sql.SQL(privilege), default,
            sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
            sql.SQL(" WITH GRANT OPTION" if grantable else "")))
    step = Step("create", target.name, target.lo, target.hi, stmts, default_rows,
                prepare=[add, validate], undo=[set_lock_timeout(exclusive), drop_check],
                swap_target=part)
    step.fallback = _create_step(table, target, lock_timeout, move=True,
                                 default_rows=default_rows)
    return step
