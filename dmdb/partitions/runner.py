"""`create` and `rollover`: read the catalog, plan, execute one transaction per step.

How one month is created (one transaction, every lock under a short `lock_timeout`,
the whole transaction retried with backoff when a lock is not granted in time):

1. lock the tables the parent's foreign keys reference (`users`) in SHARE ROW
   EXCLUSIVE mode: ATTACH clones the foreign key onto the new partition and takes that
   lock anyway; taking it first keeps the application's order (`record_answer` updates
   `users` before it inserts an event), so the two cannot deadlock;
2. lock the parent (ONLY), then the DEFAULT partition: parent before child, as every
   statement through the parent does. Which lock on the parent depends on DEFAULT:
   - no rows of the month in DEFAULT (the common case): SHARE ROW EXCLUSIVE. INSERTs
     wait the few milliseconds of the transaction (a row routed to DEFAULT before the
     ATTACH committed would otherwise fail afterwards with "new row violates partition
     constraint"); readers do not wait;
   - rows of the month in DEFAULT: ACCESS EXCLUSIVE, held while they move. A reader
     locks the parent (ACCESS SHARE) while its statement is parsed and planned, and the
     planner takes the partition list as it is then; with a weaker lock, a statement
     planned before the ATTACH committed waits on DEFAULT's lock and then reads DEFAULT
     after the rows left it — the month is missing from its result. ACCESS EXCLUSIVE
     makes it wait before planning, and it then sees the new partition list;
   without a DEFAULT partition only ATTACH's SHARE UPDATE EXCLUSIVE is taken;
3. create the table standalone, `LIKE` the parent (defaults, constraints, indexes...),
   with a CHECK matching its bounds;
4. move the month's rows out of DEFAULT into it
   (`WITH moved AS (DELETE ... RETURNING ...) INSERT ... SELECT`);
5. ATTACH PARTITION (the CHECK spares the validation scan; the indexes created by LIKE
   are adopted by the parent's indexes), then drop the helper CHECK.

When rows of the month reach DEFAULT between planning and the transaction, ATTACH
refuses (23514) and the month is redone the second way.

A month with `SWAP_MIN_ROWS` or more rows in DEFAULT, when nothing else stays there,
takes DEFAULT as its partition instead (`plan.swap_step`, run by `_run_swap`): a CHECK
validated without blocking, then one short transaction of catalog changes (DETACH,
rename, ATTACH without a scan, a new empty DEFAULT). It runs last, after the other
months have left DEFAULT; a failed validation (a row of another month) takes the CHECK
off and falls back to the move.

With retention, DEFAULT's rows of months already retired (late answers) are taken by
the retention policy (`retention.late_step`), and a retired month created again is
merged into its archived table: a rollover never hits "already exists in schema".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from dmdb.errors import ConfigError, first_line
from dmdb.partitions.catalog import (
    db_now,
    former_partitions,
    read_bounds,
    read_default,
    read_dependencies,
    read_table,
    taken_names,
)
from dmdb.partitions.plan import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BASE_DELAY,
    DEFAULT_CHECK_NAME,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE,
    EXIT_DEFAULT_ROWS,
    SWAP_MIN_ROWS,
    UTC,
    Conflict,
    DefaultContents,
    DefaultMonth,
    PurePlan,
    Step,
    Stranded,
    TableInfo,
    check_archive_schema,
    check_lock_timeout,
    create_step,
    months_ahead,
    partition_name,
    plan_pure,
    set_lock_timeout,
    swap_step,
    validate_options,
)
from dmdb.partitions.retention import CUTTABLE, archive_step, drop_step, late_step, unlink_step

if TYPE_CHECKING:
    import psycopg

# Session advisory lock of partition runs: "dmdb" in ASCII, then 2 (migrations use 1).
PARTITION_LOCK_KEY = 0x646D6462_00000002


@dataclass(frozen=True)
class PlanRequest:
    """What a create / rollover run is asked for: the inputs of its plan."""

    action: str = "create"  # create | rollover
    table: str = DEFAULT_TABLE
    ahead: int = 3
    start: date | None = None
    retain: int | None = None
    archive_schema: str | None = None
    drop: bool = False
    today: date | None = None  # None: the server's current date (UTC)
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    fill: bool = False
    # a month with at least this many rows in DEFAULT, and nothing else left there,
    # takes DEFAULT as its partition (`swap_step`); fewer rows are moved
    swap_min_rows: int = SWAP_MIN_ROWS

    def check(self) -> tuple[str | None, str]:
        """Usage checks, before any connection; the retention mode (archive | drop |
        None) and the lock_timeout as PostgreSQL will be given it."""
        retention = validate_options(ahead=self.ahead, retain=self.retain,
                                     archive_schema=self.archive_schema, drop=self.drop,
                                     table=self.table)
        return retention, check_lock_timeout(self.lock_timeout)


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
    default: DefaultContents | None = None
    fill: bool = False
    stranded: list[Stranded] = field(default_factory=list)


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
    unlinked: list[dict] = field(default_factory=list)
    late: list[dict] = field(default_factory=list)  # DEFAULT's rows of retired months, taken
    conflicts: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    retries: int = 0
    moved_rows: int = 0
    default_rows: int = 0  # rows in the DEFAULT partition after the run (dry run: now)
    default_months: list[dict] = field(default_factory=list)  # the same, by month
    fill: bool = False
    stranded: list[dict] = field(default_factory=list)  # --fill: DEFAULT rows left, why
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
        return bool(self.created or self.archived or self.dropped or self.unlinked or self.late)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["exit_code"] = self.exit_code
        return data


def plan_steps(pure: PurePlan, table: TableInfo, *, lock_timeout: str,
               retention: str | None, archive_schema: str | None,
               default_counts: dict[date, int] | None = None,
               dependencies: dict[str, list] | None = None,
               archived: set[str] | frozenset[str] = frozenset(),
               default_months: list[DefaultMonth] | None = None,
               swap_min_rows: int = SWAP_MIN_ROWS) -> list[Step]:
    """The steps of a pure plan. `archived`: the tables the archive schema holds already
    (a retired month's partition is merged into its table there; late rows go into it).
    `default_months`: what DEFAULT holds; when every row there leaves it in this run and
    one month has `swap_min_rows` or more, that month takes DEFAULT as its partition
    (`swap_step`), as the run's last step, once the other months have left it."""
    counts = default_counts or {}
    deps = dependencies or {}
    swap = _swap_month(pure, table, default_months or [], counts, swap_min_rows,
                       late=retention is not None)
    steps = [create_step(table, t, lock_timeout, counts.get(t.month, 0))
             for t in pure.to_create if t.month != swap]
    for part in pure.to_retire:
        if retention == "archive":
            steps.append(archive_step(table, part, archive_schema or "", lock_timeout,
                                      deps.get(part.name, ()), merge=part.name in archived))
        elif retention == "drop":
            steps.append(drop_step(table, part, lock_timeout))
    if retention is not None and table.default_ident is not None:
        for month in pure.late:
            schema = archive_schema if retention == "archive" else None
            steps.append(late_step(
                table, month, lock_timeout, archive_schema=schema,
                archived=partition_name(table.name, month.month) in archived))
    steps += [swap_step(table, t, lock_timeout, counts[t.month])
              for t in pure.to_create if t.month == swap]
    return steps


def _swap_month(pure: PurePlan, table: TableInfo, default_months: list[DefaultMonth],
                counts: dict[date, int], min_rows: int, *, late: bool) -> date | None:
    """The month that can take the DEFAULT partition as its own: the one with the most
    rows (at least `min_rows`), when every other row in DEFAULT leaves it in this run
    (its month created too, or taken by retention as a late row). None otherwise."""
    if table.default_ident is None or table.default is None or not default_months:
        return None
    if table.default_schema not in (None, table.schema):
        return None  # the month's partition would be left in DEFAULT's schema
    leaving = {t.month for t in pure.to_create}
    if late:
        leaving |= {m.month for m in pure.late}
    if any(m.month is None or m.month not in leaving for m in default_months if m.rows):
        return None
    best = max(pure.to_create, key=lambda t: counts.get(t.month, 0), default=None)
    if best is None or counts.get(best.month, 0) < max(min_rows, 1):
        return None
    return best.month


def make_plan(conn: psycopg.Connection, request: PlanRequest | None = None) -> Plan:
    """Read the catalog and decide; nothing is changed."""
    request = request or PlanRequest()
    retention, lock_timeout = request.check()
    action, ahead, start, retain = request.action, request.ahead, request.start, request.retain
    archive_schema, today, fill = request.archive_schema, request.today, request.fill
    info = read_table(conn, request.table)
    if retention == "archive":
        check_archive_schema(archive_schema, info.schema, info.qualified)
        if info.default_schema not in (None, info.schema):
            check_archive_schema(archive_schema, info.default_schema, info.qualified)
    now = db_now(conn)
    if today is None:
        today = now.astimezone(UTC).date()
    existing = read_bounds(conn, info)
    default = read_default(conn, info)
    wanted = [partition_name(info.name, m) for m in months_ahead(today, ahead, start)]
    too_long = [n for n in wanted if len(n.encode()) > 63]
    if too_long:
        raise ConfigError(f"partition name {too_long[0]} is longer than PostgreSQL's 63 bytes; "
                          "rename the table or manage its partitions by hand")
    fill_from = (default.months or []) if fill and default is not None else None
    if fill_from:
        wanted += [partition_name(info.name, m.month) for m in fill_from if m.month]
    pure = plan_pure(info.name, existing, today, ahead, start=start, retain=retain, now=now,
                     taken_names=taken_names(conn, info, wanted), fill_from=fill_from,
                     default_months=default.months if default is not None else None)
    deps = {}
    former: list[tuple[str, int]] = []
    if retention == "archive":
        former = former_partitions(conn, archive_schema, info.name)
        archived = {name for name, _ in former}
        deps = {p.name: read_dependencies(conn, p.oid) for p in pure.to_retire
                if p.name not in archived}
    steps = plan_steps(pure, info, lock_timeout=lock_timeout, retention=retention,
                       archive_schema=archive_schema,
                       default_counts=default.by_month() if default else None,
                       dependencies=deps, archived={name for name, _ in former},
                       default_months=default.months if default else None,
                       swap_min_rows=request.swap_min_rows)
    if retention == "archive":
        for name, oid in former:
            found = read_dependencies(conn, oid)
            if any(d.kind in CUTTABLE for d in found):
                steps.append(unlink_step(info, archive_schema, name, lock_timeout, found))
    return Plan(action=action, table=info, today=today, ahead=ahead, start=start,
                retain=retain, retention=retention, archive_schema=archive_schema,
                lock_timeout=lock_timeout, steps=steps, existing=pure.existing,
                conflicts=pure.conflicts, default_rows=default.rows if default else 0,
                default=default, fill=fill, stranded=pure.stranded)


def _iso(value: datetime | None):
    return value.astimezone(UTC).isoformat() if value is not None else None


def _run_step(conn: psycopg.Connection, step: Step) -> int:
    """One step in one transaction; the rows it moved out of DEFAULT."""
    moved = 0
    with conn.transaction():
        # The very text --dry-run prints (no parameters: sent as is).
        for i, statement in enumerate(step.statements):
            cur = conn.execute(statement.as_string(None))
            if i == step.move_index:
                moved = max(cur.rowcount, 0)
    return moved


def _run_transaction(conn: psycopg.Connection, statements) -> None:
    with conn.transaction():
        for statement in statements:
            conn.execute(statement.as_string(None))


def _run_swap(conn: psycopg.Connection, step: Step, retry: Callable,
              warnings: list[str]) -> tuple[int, bool]:
    """A create by swap (`plan.swap_step`): (rows of the month in its partition after,
    whether DEFAULT became the partition). A row of another month in DEFAULT makes the
    validation fail (23514): the CHECK is taken off and the month is moved instead
    (`step.fallback`). Whatever else fails takes the CHECK off too, then is raised."""
    import psycopg
    from psycopg import sql

    try:
        for transaction in step.prepare:
            retry(lambda t=transaction: _run_transaction(conn, t))
        retry(lambda: _run_transaction(conn, step.statements))
    except psycopg.errors.CheckViolation:
        _undo(conn, step, retry, warnings)
        return retry(lambda: _run_step(conn, step.fallback)), False
    except BaseException:
        _undo(conn, step, retry, warnings)
        raise
    # Counted after the swap committed: reading blocks nobody.
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(step.swap_target)).fetchone()[0]
    return rows, True


def _undo(conn: psycopg.Connection, step: Step, retry: Callable, warnings: list[str]) -> None:
    """Take the swap's CHECK off DEFAULT (rows of other months are refused while it is
    on). When even that fails, say so: the next run takes it off."""
    import psycopg

    if conn.closed or conn.broken:
        return
    try:
        retry(lambda: _run_transaction(conn, step.undo))
    except psycopg.Error as exc:
        warnings.append(f"the CHECK {DEFAULT_CHECK_NAME} stays on the DEFAULT partition "
                        f"({first_line(exc)}): rows of other months are refused there until "
                        "it is dropped; the next `dmdb partitions create` or `rollover` drops it")


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
    from psycopg import sql

    from dmdb.db import redact, retry_on_lock_timeout

    result = result or _result(plan, dry_run=False)
    retries = 0

    def count_retry(attempt, delay, exc):
        nonlocal retries
        retries += 1

    def retry(fn):
        return retry_on_lock_timeout(fn, attempts=attempts, base_delay=base_delay,
                                     on_retry=count_retry)

    if plan.table.default_moving and plan.table.default_ident is not None:
        # A run killed between its CHECK and its swap left the CHECK on DEFAULT.
        try:
            retry(lambda: _run_transaction(conn, [
                set_lock_timeout(plan.lock_timeout),
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                    plan.table.default_ident, sql.Identifier(DEFAULT_CHECK_NAME))]))
            result.warnings.append(
                f"dropped the CHECK {DEFAULT_CHECK_NAME} an interrupted run left on the "
                f"DEFAULT partition of {plan.table.qualified}")
        except psycopg.Error as exc:
            result.errors.append({"step": f"drop {DEFAULT_CHECK_NAME}",
                                  "error": redact(first_line(exc))})

    for step in plan.steps:
        if progress is not None:
            progress(step)
        swapped = False
        try:
            try:
                if step.swap:
                    moved, swapped = _run_swap(conn, step, retry, result.warnings)
                else:
                    moved = retry(lambda s=step: _run_step(conn, s))
            except psycopg.errors.CheckViolation:
                if step.fallback is None:
                    raise
                # Rows of the month reached DEFAULT after planning: move them too.
                moved = retry_on_lock_timeout(lambda s=step.fallback: _run_step(conn, s),
                                              attempts=attempts, base_delay=base_delay,
                                              on_retry=count_retry)
        except psycopg.Error as exc:
            first = first_line(exc)
            hint = ""
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                hint = (f" (lock not granted within lock_timeout {plan.lock_timeout}, "
                        f"{attempts} attempts; a long transaction holds the table — retry later)")
            elif isinstance(exc, (psycopg.errors.UndefinedColumn,
                                  psycopg.errors.DatatypeMismatch)) and step.archive_schema:
                hint = (f" (the archived table {step.archive_schema}.{step.partition} lacks a "
                        f"column of {plan.table.qualified} or has another type: give it the "
                        "live table's columns with ALTER TABLE, then run again)")
            result.errors.append({"step": f"{step.action} {step.partition}",
                                  "error": redact(first) + hint})
            continue
        entry = {"name": step.partition, "from": _iso(step.lo), "to": _iso(step.hi)}
        if step.action == "create":
            result.created.append({**entry, "moved_rows": moved, "swapped": swapped})
            result.moved_rows += moved
        elif step.action in ("archive", "unlink", "late") and step.archive_schema:
            left = read_dependencies(conn, _qualified(step.archive_schema, step.partition))
            if step.action == "late":
                result.late.append(_late_entry(step, moved))
            else:
                done = {**entry, "schema": step.archive_schema, "unlinked": step.unlinks}
                if step.action == "archive":
                    done["merged_rows"] = moved if step.merge else None
                (result.archived if step.action == "archive" else result.unlinked).append(done)
            result.warnings += [
                f"{step.archive_schema}.{step.partition} still depends on the live schema: "
                f"{d.describe()}" for d in left]
        elif step.action == "late":
            result.late.append(_late_entry(step, moved))
        else:
            result.dropped.append(entry)
    result.retries = retries
    _default_after(result, read_default(conn, plan.table))
    return result


def _late_entry(step: Step, moved: int) -> dict:
    return {"month": step.lo.strftime("%Y-%m"), "rows": moved,
            "action": "archived" if step.archive_schema else "deleted",
            "schema": step.archive_schema,
            "table": step.partition if step.archive_schema else None}


def _qualified(schema: str | None, name: str) -> str:
    from psycopg import sql

    return sql.Identifier(schema or "public", name).as_string(None)


def _default_after(result: RunResult, default: DefaultContents | None) -> None:
    result.default_rows = default.rows if default else 0
    result.default_months = [m.to_dict() for m in default.months or ()] if default else []


def _result(plan: Plan, *, dry_run: bool) -> RunResult:
    result = RunResult(
        action=plan.action, table=plan.table.qualified, dry_run=dry_run, today=plan.today,
        ahead=plan.ahead, retain=plan.retain, retention=plan.retention,
        archive_schema=plan.archive_schema, existing=list(plan.existing),
        conflicts=[{"month": c.month.strftime("%Y-%m"), "name": c.name, "reason": c.reason}
                   for c in plan.conflicts],
        fill=plan.fill, stranded=[s.to_dict() for s in plan.stranded], steps=list(plan.steps),
    )
    _default_after(result, plan.default)
    return result


def run(
    conn: psycopg.Connection,
    request: PlanRequest | None = None,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    progress: Callable[[Step], None] | None = None,
) -> RunResult:
    """`create` and `rollover`: take the advisory lock, plan, execute (or only plan).

    When another run holds the lock: after `lock_wait` seconds, a result with
    `skipped=True` (rollover: exit 0) — the caller decides whether that is an error.
    A dry run takes no lock and changes nothing. The session is told to stop its
    statement when the client goes away (`die_with_client`), so a killed run rolls
    back on the server and frees its locks within about a second.
    """
    from dmdb.db import advisory_unlock, die_with_client, try_advisory_lock

    request = request or PlanRequest()
    request.check()
    die_with_client(conn)
    if dry_run:
        return _result(make_plan(conn, request), dry_run=True)
    if not try_advisory_lock(conn, PARTITION_LOCK_KEY, lock_wait):
        info = read_table(conn, request.table)
        return RunResult(action=request.action, table=info.qualified, dry_run=False,
                         today=request.today or db_now(conn).astimezone(UTC).date(),
                         ahead=request.ahead, retain=request.retain, skipped=True,
                         fill=request.fill,
                         message="another run of dmdb partitions is in progress (advisory "
                         f"lock {PARTITION_LOCK_KEY:#x}); nothing done")
    try:
        plan = make_plan(conn, request)
        return execute(conn, plan, attempts=attempts, base_delay=base_delay, progress=progress)
    finally:
        advisory_unlock(conn, PARTITION_LOCK_KEY)
