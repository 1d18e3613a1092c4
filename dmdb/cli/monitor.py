"""dmdb monitor: health checks and pg_stat metrics (dashboard, JSON, Prometheus, --check)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

from dmdb.errors import ConfigError, ConnectError

FORMATS = ("table", "json", "prometheus")


def _thresholds(**flags):
    from dmdb.monitor import Thresholds

    t = Thresholds()
    changes = {k: v for k, v in flags.items() if v is not None}
    for key, value in changes.items():
        setattr(t, key, value)
    return t.validate()


def watch(build: Callable, interval: float, *, iterations: int | None = None,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Show `build()` and re-render it in place every `interval` seconds until Ctrl-C (or
    `iterations` renders). Returns how many renders were shown."""
    from rich.live import Live

    from dmdb.render import console

    shown = 0
    try:
        with Live(build(), console=console(), auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False) as live:
            shown = 1
            while iterations is None or shown < iterations:
                sleep(interval)
                live.update(build(), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        pass
    return shown


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor_cmd(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print JSON (same as --format json)."),
        fmt: str = typer.Option("table", "--format", metavar="FORMAT",
                                help="table (rich dashboard), json or prometheus."),
        check: bool = typer.Option(
            False, "--check",
            help="Exit 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN) with the worst verdict, like "
            "check_postgres; prints one line `STATE: description` unless --json/--format."),
        watch_seconds: float | None = typer.Option(
            None, "--watch", metavar="SECONDS",
            help="Refresh the dashboard in place every SECONDS until Ctrl-C."),
        only: list[str] | None = typer.Option(  # noqa: B008
            None, "--only", metavar="CHECK",
            help="Run only these checks (repeat or comma-separate)."),
        connections_warn: float | None = typer.Option(
            None, "--connections-warn", metavar="PCT",
            help="WARNING at this % of max_connections in use [90]."),
        connections_critical: float | None = typer.Option(
            None, "--connections-critical", metavar="PCT",
            help="CRITICAL at this % of max_connections [95]."),
        idle_in_transaction_warn: int | None = typer.Option(
            None, "--idle-in-transaction-warn", metavar="N",
            help="WARNING at N sessions idle in transaction [100]."),
        idle_in_transaction_seconds: float | None = typer.Option(
            None, "--idle-in-transaction-seconds", metavar="SECONDS",
            help="WARNING when one session is idle in transaction this long [300]."),
        long_query_seconds: float | None = typer.Option(
            None, "--long-query-seconds", metavar="SECONDS",
            help="A statement running this long is long-running (WARNING) [60]."),
        blocked_seconds: float | None = typer.Option(
            None, "--blocked-seconds", metavar="SECONDS",
            help="WARNING when a query has waited for a lock this long [5]."),
        cache_hit_warn: float | None = typer.Option(
            None, "--cache-hit-warn", metavar="RATIO",
            help="WARNING below this cache hit ratio [0.99]."),
        cache_min_reads: int | None = typer.Option(
            None, "--cache-min-reads", metavar="N",
            help="Fewer block accesses than this: too few to judge the ratio (OK) [1000]."),
        xid_warn: float | None = typer.Option(
            None, "--xid-warn", metavar="AGE",
            help="WARNING at this transaction-ID age [1.3e9]."),
        xid_critical: float | None = typer.Option(
            None, "--xid-critical", metavar="AGE",
            help="CRITICAL at this transaction-ID age [1.4e9]."),
        seq_warn: float | None = typer.Option(
            None, "--seq-warn", metavar="PCT", help="WARNING at this % of a sequence used [85]."),
        seq_critical: float | None = typer.Option(
            None, "--seq-critical", metavar="PCT",
            help="CRITICAL at this % of a sequence used [95]."),
        unused_min_size: float | None = typer.Option(
            None, "--unused-min-size", metavar="MB",
            help="Report unused indexes of at least this size [10]."),
        dead_tuples_factor: float | None = typer.Option(
            None, "--dead-tuples-factor", metavar="F",
            help="WARNING when dead tuples reach F x the autovacuum trigger point [2]."),
        bloat_warn_ratio: float | None = typer.Option(
            None, "--bloat-warn-ratio", metavar="R",
            help="WARNING when a table has R x the pages it needs ... [2]."),
        bloat_min_size: float | None = typer.Option(
            None, "--bloat-min-size", metavar="MB",
            help="... and at least this many MB are wasted [100]."),
        replication_lag_warn: float | None = typer.Option(
            None, "--replication-lag-warn", metavar="SECONDS",
            help="WARNING at this replay lag [5]."),
        replication_lag_critical: float | None = typer.Option(
            None, "--replication-lag-critical", metavar="SECONDS",
            help="CRITICAL at this replay lag [60]."),
        partition_months_ahead: int | None = typer.Option(
            None, "--partition-months-ahead", metavar="N",
            help="WARNING with fewer than N future monthly partitions of learning_events [2]."),
    ):
        """Health dashboard: connections, long and blocked queries, cache hit ratios,
        wraparound, sequences, invalid/unused/duplicate indexes, dead tuples, bloat,
        replication lag, partitions and the top statements. Read-only; runs on the read
        replica when one is configured (replication lag on the primary).

        Example: dmdb monitor --check --seq-warn 80   (exit 0/1/2/3 like check_postgres)
        """
        from dmdb import monitor, monitor_render
        from dmdb.render import console, warning_line

        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
        if as_json:
            if fmt not in ("table", "json"):
                raise ConfigError("--json and --format prometheus exclude each other")
            fmt = "json"
        if watch_seconds is not None:
            if not watch_seconds > 0:
                raise ConfigError(f"--watch takes a positive number of seconds (got {watch_seconds:g})")
            if fmt != "table" or check:
                raise ConfigError("--watch refreshes the dashboard; it does not combine with "
                                  "--json, --format or --check")
        mb = 1024 * 1024
        thresholds = _thresholds(
            connections_warn_pct=connections_warn,
            connections_critical_pct=connections_critical,
            idle_in_transaction_warn=idle_in_transaction_warn,
            idle_in_transaction_seconds=idle_in_transaction_seconds,
            long_query_seconds=long_query_seconds,
            blocked_seconds=blocked_seconds,
            cache_hit_warn=cache_hit_warn,
            cache_min_reads=cache_min_reads,
            xid_warn=int(xid_warn) if xid_warn is not None else None,
            xid_critical=int(xid_critical) if xid_critical is not None else None,
            seq_warn_pct=seq_warn,
            seq_critical_pct=seq_critical,
            unused_min_bytes=int(unused_min_size * mb) if unused_min_size is not None else None,
            dead_tuples_factor=dead_tuples_factor,
            bloat_warn_ratio=bloat_warn_ratio,
            bloat_min_bytes=int(bloat_min_size * mb) if bloat_min_size is not None else None,
            replication_lag_warn_seconds=replication_lag_warn,
            replication_lag_critical_seconds=replication_lag_critical,
            partition_months_ahead=partition_months_ahead,
        )
        monitor.select_checks(only)  # unknown names fail before connecting
        settings = ctx.obj.settings()

        if watch_seconds is not None:
            watch(lambda: monitor_render.dashboard(
                monitor.monitor(settings, thresholds, only=only)), watch_seconds)
            return

        try:
            report = monitor.monitor(settings, thresholds, only=only,
                                     warn=None if fmt == "table" else warning_line)
        except ConnectError as exc:
            if check:  # a monitoring system expects UNKNOWN, not a failure
                sys.stdout.write(f"UNKNOWN: {exc}\n")
                raise typer.Exit(3) from None
            raise

        if fmt == "json":
            sys.stdout.write(monitor_render.to_json(report) + "\n")
        elif fmt == "prometheus":
            sys.stdout.write(monitor_render.to_prometheus(report))
        elif check:
            sys.stdout.write(report.check_line() + "\n")
        else:
            console().print(monitor_render.dashboard(report))
        if check:
            raise typer.Exit(int(report.status))
