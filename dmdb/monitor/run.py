"""A monitor run: which checks exist, in which order, against which connection.

`run_checks` runs them all (or a selection), each on its own so that one failing check
turns UNKNOWN and the others still run, and returns a `Report`; `monitor` connects (the
read replica when configured) and runs them. Each check runs in a transaction of its own
(`check_transaction`: read-only, with a statement_timeout, both set for that transaction
only), so the connection goes back with no session setting changed: through PgBouncer in
transaction mode nothing of the monitor reaches the next client of the server
connection. The checks live in checks_database, checks_server and checks_tables; the
renderers in render.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

from dmdb.errors import ConfigError, ConnectError, first_line
from dmdb.monitor.checks_backup import check_backup_age, check_backup_wal, check_restore_check
from dmdb.monitor.checks_database import (
    check_blocked,
    check_cache_hit,
    check_connections,
    check_invalid_indexes,
    check_long_running,
    check_not_valid_constraints,
    check_partitions,
    check_replication,
    check_sequences,
    check_top_queries,
    check_xid_wraparound,
)
from dmdb.monitor.checks_events import check_event_consumers, check_event_retention
from dmdb.monitor.checks_server import (
    check_capabilities,
    check_checkpoints,
    check_disk_space,
    check_pgbouncer,
    check_replication_slots,
    check_schema,
    check_wal_archiving,
    check_xmin_horizon,
)
from dmdb.monitor.checks_tables import (
    check_bloat,
    check_dead_tuples,
    check_duplicate_indexes,
    check_index_bloat,
    check_missing_indexes,
    check_unused_indexes,
)
from dmdb.monitor.core import (
    STATEMENT_TIMEOUT,
    CheckResult,
    Privileges,
    Report,
    Status,
    Thresholds,
    blind,
    read_privileges,
)

CHECKS: dict[str, Callable[..., CheckResult]] = {
    "schema": check_schema,
    "capabilities": check_capabilities,
    "connections": check_connections,
    "long_running_queries": check_long_running,
    "blocked_queries": check_blocked,
    "xmin_horizon": check_xmin_horizon,
    "cache_hit": check_cache_hit,
    "xid_wraparound": check_xid_wraparound,
    "sequences": check_sequences,
    "invalid_indexes": check_invalid_indexes,
    "not_valid_constraints": check_not_valid_constraints,
    "unused_indexes": check_unused_indexes,
    "duplicate_indexes": check_duplicate_indexes,
    "missing_indexes": check_missing_indexes,
    "dead_tuples": check_dead_tuples,
    "bloat": check_bloat,
    "index_bloat": check_index_bloat,
    "replication": check_replication,
    "replication_slots": check_replication_slots,
    "wal_archiving": check_wal_archiving,
    "checkpoints": check_checkpoints,
    "disk_space": check_disk_space,
    "backup_age": check_backup_age,
    "restore_check": check_restore_check,
    "backup_wal": check_backup_wal,
    "partitions": check_partitions,
    "pgbouncer": check_pgbouncer,
    "top_queries": check_top_queries,
    "event_consumers": check_event_consumers,
    "event_retention": check_event_retention,
}
# Answered by the primary even when the checks read from a replica: what holds the
# primary's horizon, its slots, its archiver and checkpoints. `replication` gets the
# primary as a callable (it reads the standby's own lag from the read connection too).
PRIMARY_ONLY = {"xmin_horizon", "replication_slots", "wal_archiving", "checkpoints",
                "backup_wal", "event_consumers", "event_retention"}
# Checks over other sessions' rows of pg_stat_activity: a role without pg_read_all_stats
# (pg_monitor) sees those rows with no state, query or times, so these checks are blind
# to them (never OK; see core.blind), and what they cannot see. `replication` and
# `top_queries` decide from their own rows (hidden lag, hidden texts).
NEEDS_ALL_SESSIONS = {
    "connections": "the state of other roles' sessions (idle in transaction, and since when)",
    "long_running_queries": "other roles' running statements and their start times",
    "blocked_queries": "other roles' lock waits",
    "xmin_horizon": "since when other roles' transactions hold the horizon, nor standbys' "
                    "feedback",
}


def select_checks(only: list[str] | None) -> list[str]:
    if not only:
        return list(CHECKS)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    return [n for n in CHECKS if n in names]


def prepare(conn) -> None:
    """Make a connection ready for `run_checks`: autocommit, so that each check opens a
    transaction of its own (`check_transaction`: read-only, statement_timeout). No session
    setting is changed: what the monitor sets ends with each check's transaction, so a
    connection shared through PgBouncer goes back to its pool as it came."""
    if not conn.autocommit:
        conn.autocommit = True


@contextmanager
def check_transaction(conn, statement_timeout: str = STATEMENT_TIMEOUT) -> Iterator[None]:
    """One read-only transaction with a bounded statement time, for one check: BEGIN READ
    ONLY, statement_timeout set for this transaction only (set_config(..., true)); COMMIT
    when the block ends, ROLLBACK when it raises. Inside a transaction the caller already
    has open (a connection not in autocommit), a savepoint made read-only by SET
    TRANSACTION READ ONLY; the caller's transaction ends it.

    BEGIN READ ONLY rather than SET TRANSACTION READ ONLY: the latter leaves
    transaction_read_only marked as set by the session in pg_settings (its value back to
    off, but the session no longer looks untouched)."""
    from psycopg.pq import TransactionStatus

    outer = conn.info.transaction_status == TransactionStatus.IDLE
    before = conn.read_only
    if outer:
        conn.read_only = True  # psycopg's BEGIN for the block below: BEGIN READ ONLY
    try:
        with conn.transaction():
            # Never server-side prepared (run once per check): PgBouncer before 1.21 does
            # not carry prepared statements across the server connections of a pool.
            if not outer:
                conn.execute("SET TRANSACTION READ ONLY", prepare=False)
            conn.execute("SELECT set_config('statement_timeout', %s, true)",
                         (statement_timeout,), prepare=False)
            yield
    finally:
        if outer and not conn.closed:
            conn.read_only = before


def _call(fn: Callable[..., CheckResult], conn, t: Thresholds, context: dict) -> CheckResult:
    """Call a check with the keyword arguments of `context` it declares."""
    import inspect

    params = inspect.signature(fn).parameters
    return fn(conn, t, **{k: v for k, v in context.items() if k in params})


def run_checks(conn, thresholds: Thresholds | None = None, *, only: list[str] | None = None,
               primary: Callable | None = None, settings=None,
               statement_timeout: str = STATEMENT_TIMEOUT, **context: Any) -> Report:
    """Run the selected checks on `conn` (the read connection). `primary()` returns a
    connection to the primary for the checks only it can answer (default: `conn`).
    `context` holds what some checks take besides: project, pgbouncer_url, replica_error.
    Each check runs in its own `check_transaction` (on the primary's connection too when it
    uses one), so a check that raises or times out becomes UNKNOWN with the (redacted)
    error, its transaction rolled back, and the others still run."""
    from dmdb.db import redact

    t = (thresholds or Thresholds()).validate()
    seen: dict[int, Privileges] = {}  # what the role may see, per connection
    results = []
    for name in select_checks(only):
        fn = CHECKS[name]
        try:
            with ExitStack() as stack:
                target = conn
                if name in PRIMARY_ONLY and primary is not None:
                    target = primary()
                stack.enter_context(check_transaction(target, statement_timeout))
                if id(target) not in seen:
                    seen[id(target)] = read_privileges(target)
                privileges = seen[id(target)]
                result = _call(fn, target, t, {
                    **context, "settings": settings, "privileges": privileges,
                    "primary": _in_transaction(primary, stack, {id(target)}, statement_timeout),
                })
            if name in NEEDS_ALL_SESSIONS:
                result.metrics["privileged"] = privileges.sees_all_sessions
                if not privileges.sees_all_sessions:
                    result = blind(result, privileges, NEEDS_ALL_SESSIONS[name])
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            first = first_line(exc)
            result = CheckResult(name, Status.UNKNOWN,
                                 f"check failed: {redact(f'{type(exc).__name__}: {first}', settings)}")
        results.append(result)
    return Report(results, datetime.now(timezone.utc))


def _in_transaction(primary: Callable | None, stack: ExitStack, opened: set[int],
                    statement_timeout: str) -> Callable | None:
    """`primary` for one check: the first call on a connection other than the check's own
    opens a `check_transaction` there too, ended with the check's."""
    if primary is None:
        return None

    def in_transaction():
        pconn = primary()
        if id(pconn) not in opened:
            stack.enter_context(check_transaction(pconn, statement_timeout))
            opened.add(id(pconn))
        return pconn

    return in_transaction


def unreachable(settings, exc: Exception, only: list[str] | None = None) -> Report:
    """The report when the server cannot be reached: `up` false, every check UNKNOWN,
    so that JSON and Prometheus say "down" instead of printing nothing."""
    from dmdb.db import describe_target, redact

    error = redact(str(exc), settings)
    checks = [CheckResult(n, Status.UNKNOWN, "not run: the server cannot be reached")
              for n in select_checks(only)]
    return Report(checks, datetime.now(timezone.utc),
                  target=describe_target(settings) if settings.host else "embedded PostgreSQL",
                  up=False, error=error)


def monitor(settings, thresholds: Thresholds | None = None, *, only: list[str] | None = None,
            warn: Callable[[str], None] | None = None, project=None,
            pgbouncer_url: str | None = None, trend_days: float | None = 7.0) -> Report:
    """Connect (the read replica when configured), run the checks, close. Checks only the
    primary can answer use a primary connection, opened only when needed. A configured
    read replica that cannot be reached makes `replication` CRITICAL; the other checks
    run on the primary. With the history of `--record`, the report carries its trends."""
    from dmdb.db import connect, describe_target

    warnings: list[str] = []
    replica_error: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    t = (thresholds or Thresholds()).validate()
    select_checks(only)
    read = None
    if settings.read_replica_host:
        try:
            read = connect(settings, replica=True, autocommit=True)
        except ConnectError as exc:
            replica_error.append(str(exc))
            _warn(f"read replica unreachable, reading from the primary instead ({exc})")
    if read is None:
        read = connect(settings, autocommit=True)
    on_replica = bool(settings.read_replica_host) and not replica_error
    extra: list = []

    def primary():
        if not on_replica:
            return read
        if not extra:
            conn = connect(settings, autocommit=True)
            prepare(conn)
            extra.append(conn)
        return extra[0]

    try:
        prepare(read)
        report = run_checks(read, t, only=only, primary=primary, settings=settings,
                            project=project, pgbouncer_url=pgbouncer_url,
                            replica_error=replica_error[0] if replica_error else None)
        if trend_days:
            import psycopg

            from dmdb.monitor import history

            try:
                with check_transaction(read):
                    report.trends = history.trends(read, days=trend_days)
            except psycopg.errors.InsufficientPrivilege as exc:
                # The checks ran; only the history is out of this role's reach.
                _warn(f"trends not read: {first_line(exc)}; the dmdb_monitor schema is "
                      f"granted to dm_readonly (GRANT dm_readonly TO {read.info.user}), or "
                      "pass --trend-days 0")
    finally:
        read.close()
        for conn in extra:
            conn.close()
    report.target = (f"embedded PostgreSQL/{settings.dbname}" if settings.embedded
                     else describe_target(settings, replica=on_replica))
    report.warnings = warnings
    return report
