"""A monitor run: which checks exist, in which order, against which connection.

`run_checks` runs them all (or a selection), each on its own so that one failing check
turns UNKNOWN and the others still run, and returns a `Report`; `monitor` connects (the
read replica when configured) and runs them. The checks live in checks_database,
checks_server and checks_tables; the renderers in render.
"""

from __future__ import annotations

from collections.abc import Callable
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
from dmdb.monitor.checks_server import (
    check_checkpoints,
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
from dmdb.monitor.core import STATEMENT_TIMEOUT, CheckResult, Report, Status, Thresholds

CHECKS: dict[str, Callable[..., CheckResult]] = {
    "schema": check_schema,
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
    "backup_age": check_backup_age,
    "restore_check": check_restore_check,
    "backup_wal": check_backup_wal,
    "partitions": check_partitions,
    "pgbouncer": check_pgbouncer,
    "top_queries": check_top_queries,
}
# Answered by the primary even when the checks read from a replica: what holds the
# primary's horizon, its slots, its archiver and checkpoints. `replication` gets the
# primary as a callable (it reads the standby's own lag from the read connection too).
PRIMARY_ONLY = {"xmin_horizon", "replication_slots", "wal_archiving", "checkpoints",
                "backup_wal"}


def select_checks(only: list[str] | None) -> list[str]:
    if not only:
        return list(CHECKS)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    return [n for n in CHECKS if n in names]


def prepare(conn) -> None:
    """Make a monitoring session harmless: read-only, bounded statements, autocommit."""
    conn.autocommit = True
    conn.execute("SELECT set_config('default_transaction_read_only', 'on', false), "
                 "set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))


def _call(fn: Callable[..., CheckResult], conn, t: Thresholds, context: dict) -> CheckResult:
    """Call a check with the keyword arguments of `context` it declares."""
    import inspect

    params = inspect.signature(fn).parameters
    return fn(conn, t, **{k: v for k, v in context.items() if k in params})


def run_checks(conn, thresholds: Thresholds | None = None, *, only: list[str] | None = None,
               primary: Callable | None = None, settings=None, **context: Any) -> Report:
    """Run the selected checks on `conn` (the read connection). `primary()` returns a
    connection to the primary for the checks only it can answer (default: `conn`).
    `context` holds what some checks take besides: project, pgbouncer_url, replica_error.
    A check that raises becomes UNKNOWN with the (redacted) error; the others still run."""
    from dmdb.db import redact

    t = (thresholds or Thresholds()).validate()
    context = {**context, "primary": primary, "settings": settings}
    results = []
    for name in select_checks(only):
        fn = CHECKS[name]
        try:
            target = conn
            if name in PRIMARY_ONLY and primary is not None:
                target = primary()
            result = _call(fn, target, t, context)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            first = first_line(exc)
            result = CheckResult(name, Status.UNKNOWN,
                                 f"check failed: {redact(f'{type(exc).__name__}: {first}', settings)}")
            if not conn.autocommit and not conn.closed:
                conn.rollback()
        results.append(result)
    return Report(results, datetime.now(timezone.utc))


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
            from dmdb.monitor import history

            report.trends = history.trends(read, days=trend_days)
    finally:
        read.close()
        for conn in extra:
            conn.close()
    report.target = (f"embedded PostgreSQL/{settings.dbname}" if settings.embedded
                     else describe_target(settings, replica=on_replica))
    report.warnings = warnings
    return report
