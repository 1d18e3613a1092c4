"""dmdb monitor: health checks and pg_stat metrics (dashboard, JSON, Prometheus, --check)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

from dmdb.errors import ConfigError, ConnectError

FORMATS = ("table", "json", "prometheus")


def _thresholds(**flags):
    from dmdb.monitor.core import Thresholds

    t = Thresholds()
    changes = {k: v for k, v in flags.items() if v is not None}
    for key, value in changes.items():
        setattr(t, key, value)
    return t.validate()


def watch(build: Callable, interval: float, *, iterations: int | None = None,
          sleep: Callable[[float], None] = time.sleep, console=None) -> int:
    """Show `build(height, width)` and re-render it in place every `interval` seconds until
    Ctrl-C (or `iterations` renders), within the terminal: `height` and `width` are the
    console's, and whatever still does not fit is cropped, never scrolled. Returns how
    many renders were shown."""
    from rich.live import Live

    from dmdb.render import console as make_console

    con = console or make_console()
    shown = 0
    if not con.is_terminal:
        # A file or a pipe (`monitor --watch 60 > log`): Live would write only the last
        # frame, at Ctrl-C. Every frame instead, whole (not cut to a terminal's height),
        # each flushed as it is made.
        try:
            while iterations is None or shown < iterations:
                if shown:
                    sleep(interval)
                con.print(build(None, con.width))
                con.print("")
                con.file.flush()
                shown += 1
        except KeyboardInterrupt:
            pass
        return shown
    try:
        with Live(build(*con.size[::-1]), console=con, auto_refresh=False,
                  vertical_overflow="crop", redirect_stdout=False,
                  redirect_stderr=False) as live:
            shown = 1
            while iterations is None or shown < iterations:
                sleep(interval)
                live.update(build(*con.size[::-1]), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        pass
    return shown


def _mb(value: float | None) -> int | None:
    """MB to bytes; a product past any bigint (1e308 MB is infinite bytes) is kept as a
    number too large for Thresholds.validate to refuse, never int(inf)."""
    if value is None:
        return None
    product = value * 1024 * 1024
    return int(product) if abs(product) < 2.0**64 else 2**64


def _finite(ctx: typer.Context) -> None:
    """NaN and infinity are no threshold, window or interval: a usage error naming the
    flag, before any is converted (int(inf) raises OverflowError) or sent to the server."""
    import math

    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{param.opts[0]} must be a finite number (got {value})")


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
        xmin_hold_seconds: float | None = typer.Option(
            None, "--xmin-hold-seconds", metavar="SECONDS",
            help="WARNING when a transaction holds the xmin horizon this long [3600]."),
        xmin_age_warn: float | None = typer.Option(
            None, "--xmin-age-warn", metavar="XIDS",
            help="WARNING when a holder keeps the horizon this many transactions back [1e7]."),
        xmin_age_critical: float | None = typer.Option(
            None, "--xmin-age-critical", metavar="XIDS", help="CRITICAL at this many [1e8]."),
        prepared_warn: float | None = typer.Option(
            None, "--prepared-warn", metavar="SECONDS",
            help="WARNING when a prepared transaction is this old [60]."),
        prepared_critical: float | None = typer.Option(
            None, "--prepared-critical", metavar="SECONDS",
            help="CRITICAL when a prepared transaction is this old [3600]."),
        slot_wal_warn: float | None = typer.Option(
            None, "--slot-wal-warn", metavar="MB",
            help="WARNING when a replication slot keeps this much WAL [1024]."),
        slot_wal_critical: float | None = typer.Option(
            None, "--slot-wal-critical", metavar="MB",
            help="CRITICAL when a replication slot keeps this much WAL [10240]."),
        archive_ready_warn: int | None = typer.Option(
            None, "--archive-ready-warn", metavar="N",
            help="WARNING at N WAL segments waiting to be archived [10]."),
        backup_age_warn: float | None = typer.Option(
            None, "--backup-age-warn", metavar="HOURS",
            help="WARNING when the newest base backup is this old [26]."),
        backup_age_critical: float | None = typer.Option(
            None, "--backup-age-critical", metavar="HOURS", help="CRITICAL at this age [50]."),
        restore_check_warn: float | None = typer.Option(
            None, "--restore-check-warn", metavar="DAYS",
            help="WARNING when `restore --check` last proved a restore this long ago [7]."),
        restore_check_critical: float | None = typer.Option(
            None, "--restore-check-critical", metavar="DAYS", help="CRITICAL at this age [14]."),
        archive_behind_warn: float | None = typer.Option(
            None, "--archive-behind-warn", metavar="SECONDS",
            help="WARNING when segments wait and the repository's newest is this old [600]."),
        archive_behind_critical: float | None = typer.Option(
            None, "--archive-behind-critical", metavar="SECONDS",
            help="CRITICAL at this age [3600]."),
        checkpoint_req_warn: float | None = typer.Option(
            None, "--checkpoint-req-warn", metavar="RATIO",
            help="WARNING when this share of checkpoints were requested, not timed [0.5] ..."),
        checkpoint_min: int | None = typer.Option(
            None, "--checkpoint-min", metavar="N",
            help="... judged from N checkpoints since the statistics reset on [20]."),
        index_bloat_warn_ratio: float | None = typer.Option(
            None, "--index-bloat-warn-ratio", metavar="R",
            help="WARNING when a btree index has R x the pages it needs ... [2]."),
        index_bloat_min_size: float | None = typer.Option(
            None, "--index-bloat-min-size", metavar="MB",
            help="... and at least this many MB are wasted [100]."),
        missing_index_min_rows: int | None = typer.Option(
            None, "--missing-index-min-rows", metavar="N",
            help="missing_indexes looks at tables of at least N rows [10000] ..."),
        missing_index_pct: float | None = typer.Option(
            None, "--missing-index-pct", metavar="PCT",
            help="... WARNING when index scans are under PCT % of their scans [95] ..."),
        missing_index_min_scans: int | None = typer.Option(
            None, "--missing-index-min-scans", metavar="N",
            help="... out of at least N scans [100]."),
        disk_warn: float | None = typer.Option(
            None, "--disk-warn", metavar="PCT",
            help="WARNING when the file system of the data directory, WAL or backup "
            "repository is this % used (space or inodes) [90]."),
        disk_critical: float | None = typer.Option(
            None, "--disk-critical", metavar="PCT",
            help="CRITICAL at this % used [95]."),
        pgbouncer: str | None = typer.Option(
            None, "--pgbouncer", metavar="URL", envvar="DMDB_PGBOUNCER_URL",
            help="PgBouncer's admin console (postgresql://user@host:6432/pgbouncer, a user in "
            "admin_users or stats_users) for the pgbouncer check [env DMDB_PGBOUNCER_URL]."),
        pgbouncer_wait_warn: float | None = typer.Option(
            None, "--pgbouncer-wait-warn", metavar="SECONDS",
            help="WARNING when a client has waited this long for a server connection [1]."),
        pgbouncer_wait_critical: float | None = typer.Option(
            None, "--pgbouncer-wait-critical", metavar="SECONDS",
            help="CRITICAL when a client has waited this long [10]."),
        verbose: bool = typer.Option(
            False, "--verbose", "-v",
            help="Dashboard: every check's rows and notes (with --only: that check's)."),
        quiet: bool = typer.Option(
            False, "--quiet", "-q",
            help="With --record (cron): print nothing on success; problems still go to stderr."),
        record: bool = typer.Option(
            False, "--record",
            help="Also store a snapshot of the key figures in the dmdb_monitor schema (for "
            "cron; prints one line) and delete snapshots older than --retention-days."),
        retention_days: float = typer.Option(
            90.0, "--retention-days", metavar="DAYS",
            help="With --record: keep this many days of snapshots [90]."),
        trend_days: float = typer.Option(
            7.0, "--trend-days", metavar="DAYS",
            help="Trends (dashboard, JSON, Prometheus) over the snapshots of the last DAYS "
            "days [7]; 0: none."),
    ):
        """Health dashboard of the database and server: the dmdb schema, connections, long,
        blocked and prepared transactions and what else holds back the xmin horizon, cache
        hit, wraparound, sequences, invalid/unused/duplicate/missing indexes, dead tuples,
        table and index bloat, replication lag and slots, WAL archiving, checkpoints, disk
        space, partitions, PgBouncer's pools and the top statements. Read-only; runs on the read
        replica when one is configured (the primary's own figures on the primary).

        Problems come first; --verbose shows every check's rows. --record (for cron)
        stores a snapshot in the dmdb_monitor schema; the dashboard and JSON then show
        trends. With the server down, --format prometheus prints dmdb_up 0.

        Example: dmdb monitor --check --seq-warn 80   (exit 0/1/2/3 like check_postgres)
        """
        from dmdb.monitor import render, run
        from dmdb.monitor.core import check_days
        from dmdb.render import console, warning_line

        _finite(ctx)
        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
        if as_json:
            if fmt not in ("table", "json"):
                raise ConfigError("--json and --format prometheus exclude each other")
            fmt = "json"
        if watch_seconds is not None:
            if not 0 < watch_seconds <= 86400:
                raise ConfigError("--watch takes a positive number of seconds, at most a day "
                                  f"(got {watch_seconds:g})")
            if fmt != "table" or check:
                raise ConfigError("--watch refreshes the dashboard; it does not combine with "
                                  "--json, --format or --check")
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
            unused_min_bytes=_mb(unused_min_size),
            dead_tuples_factor=dead_tuples_factor,
            bloat_warn_ratio=bloat_warn_ratio,
            bloat_min_bytes=_mb(bloat_min_size),
            replication_lag_warn_seconds=replication_lag_warn,
            replication_lag_critical_seconds=replication_lag_critical,
            partition_months_ahead=partition_months_ahead,
            xmin_hold_seconds=xmin_hold_seconds,
            xmin_age_warn=int(xmin_age_warn) if xmin_age_warn is not None else None,
            xmin_age_critical=int(xmin_age_critical) if xmin_age_critical is not None else None,
            prepared_warn_seconds=prepared_warn,
            prepared_critical_seconds=prepared_critical,
            slot_wal_warn_bytes=_mb(slot_wal_warn),
            slot_wal_critical_bytes=_mb(slot_wal_critical),
            archive_ready_warn=archive_ready_warn,
            backup_age_warn_hours=backup_age_warn,
            backup_age_critical_hours=backup_age_critical,
            restore_check_warn_days=restore_check_warn,
            restore_check_critical_days=restore_check_critical,
            archive_behind_warn_seconds=archive_behind_warn,
            archive_behind_critical_seconds=archive_behind_critical,
            checkpoint_req_warn_ratio=checkpoint_req_warn,
            checkpoint_min=checkpoint_min,
            index_bloat_warn_ratio=index_bloat_warn_ratio,
            index_bloat_min_bytes=_mb(index_bloat_min_size),
            missing_index_min_rows=missing_index_min_rows,
            missing_index_pct=missing_index_pct,
            missing_index_min_scans=missing_index_min_scans,
            pgbouncer_wait_warn_seconds=pgbouncer_wait_warn,
            pgbouncer_wait_critical_seconds=pgbouncer_wait_critical,
            disk_warn_pct=disk_warn,
            disk_critical_pct=disk_critical,
        )
        run.select_checks(only)  # unknown names fail before connecting
        if record:
            if watch_seconds is not None:
                raise ConfigError("--record stores one snapshot; it does not combine with --watch")
            if only:
                raise ConfigError("--record stores the figures of every check; drop --only")
            check_days(retention_days, "--retention-days")
        if quiet and not record:
            raise ConfigError("--quiet goes with --record (the cron job); the dashboard, "
                              "--check and --json print what they are for")
        check_days(trend_days, "--trend-days", zero=True)
        settings = ctx.obj.settings()
        options = {"only": only, "project": ctx.obj.project(), "pgbouncer_url": pgbouncer,
                   "trend_days": trend_days}

        if watch_seconds is not None:
            watch(lambda height, width: render.dashboard(
                run.monitor(settings, thresholds, **options), verbose=verbose,
                max_lines=height, width=width), watch_seconds)
            return

        try:
            report = run.monitor(settings, thresholds,
                                     warn=None if fmt == "table" else warning_line, **options)
        except ConnectError as exc:
            if fmt == "table" and not check:
                raise
            # A scraper must see a down server (dmdb_up 0), not a gap; JSON says so too.
            report = run.unreachable(settings, exc, only)
            warning_line(str(exc))

        if record and report.up:
            from dmdb.db import connect
            from dmdb.monitor import history

            with connect(settings, autocommit=False) as conn:
                done = history.record(conn, report, retention_days=retention_days)
            line = (f"recorded snapshot {done.snapshot_id} ({done.status}, {done.tables} tables);"
                    f" {done.deleted} snapshots older than {retention_days:g} days deleted")
            if fmt == "table" and not check:
                if not quiet:
                    sys.stdout.write(line + "\n")
                return
            if not quiet:
                sys.stderr.write(f"dmdb: {line}\n")

        if fmt == "json":
            sys.stdout.write(render.to_json(report) + "\n")
        elif fmt == "prometheus":
            sys.stdout.write(render.to_prometheus(report))
        elif check:
            sys.stdout.write(report.check_line() + "\n")
        else:
            con = console()
            con.print(render.dashboard(report, verbose=verbose, width=con.width))
        if check:
            raise typer.Exit(int(report.status))
        if record and not report.up:
            raise typer.Exit(1)
