"""dmdb partitions list / create / rollover / cron: a thin layer over dmdb.partitions."""

from __future__ import annotations

import os
import sys

import typer

from dmdb.render import console, human_bytes, print_json, show_progress, table, warning_line

app = typer.Typer(
    help=(
        "Monthly partitions of learning_events: list every partitioned table (and what "
        "waits in DEFAULT), create months ahead, roll over from cron (create + retention "
        "under an advisory lock). "
        "Exit codes: 0 done or nothing to do, 1 failed, 2 bad usage, 3 rows sit in the "
        "DEFAULT partition after the run."
    ),
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in README).")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan and its exact SQL; change nothing.")
QUIET = typer.Option(False, "--quiet", "-q",
                     help="Print nothing on success (warnings and errors still go to stderr).")
AHEAD = typer.Option(3, "--ahead", metavar="N", help="Months after the first one to have (0-120).")
TABLE = typer.Option("learning_events", "--table", metavar="[SCHEMA.]TABLE",
                     help="The RANGE-partitioned table (monthly, on a timestamptz column).")
LOCK_TIMEOUT = typer.Option(
    None, "--lock-timeout", metavar="DURATION",
    help="lock_timeout for every DDL transaction, e.g. 2s or 500ms; a bare number is "
    "seconds (default 2s, or DMDB_LOCK_TIMEOUT when set); a lock not granted in time is "
    "retried with backoff.",
)
ATTEMPTS = typer.Option(5, "--attempts", metavar="N", min=1, max=50,
                        help="Tries per step when a lock is not granted (backoff 0.5 s, doubling).")
FILL = typer.Option(
    False, "--fill",
    help="Also create the month of every row in the DEFAULT partition (past months too, "
    "within 120 months of now) and move the rows; rows no month can take are named.")
TODAY = typer.Option(None, "--today", metavar="YYYY-MM-DD", hidden=True,
                     help="Plan as if today were this date (testing; the database clock still "
                     "protects the real current month from retention).")


def _lock_timeout(settings, value: str | None) -> str:
    from dmdb.partitions import DEFAULT_LOCK_TIMEOUT

    if value:
        return value
    if settings.sources.get("lock_timeout", "default") != "default":
        return settings.lock_timeout
    return DEFAULT_LOCK_TIMEOUT


def _progress(quiet: bool):
    if not show_progress(quiet):
        return None
    out = console()

    def report(step) -> None:
        verb = {"create": "creating", "archive": "archiving", "drop": "dropping",
                "unlink": "cutting loose", "late": "retiring late rows of"}[step.action]
        out.print(f"  {verb} {step.partition} …")

    return report


def _span(lo, hi) -> str:
    def day(v):
        return v.strftime("%Y-%m-%d") if v is not None else "unbounded"

    return f"[{day(lo)}, {day(hi)})"


def _months(months: list[dict], limit: int = 6) -> str:
    shown = ", ".join(f"{m['month']}: {m['rows']}" for m in months[:limit])
    return shown + (f", … {len(months) - limit} more month(s)" if len(months) > limit else "")


def _print_result(result, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(result.to_dict())
    elif result.dry_run:
        _print_dry_run(result)
    elif not quiet:
        out = console()
        if result.skipped:
            out.print(result.message)
        for c in result.created:
            moved = f"; moved {c['moved_rows']} row(s) from the DEFAULT partition" \
                if c["moved_rows"] else ""
            if c.get("swapped"):
                moved = (f"; the DEFAULT partition became it ({c['moved_rows']} row(s)), "
                         "a new DEFAULT took its place")
            out.print(f"Created {c['name']} {c['from'][:10]} .. {c['to'][:10]}{moved}")
        for a in result.archived:
            if a.get("merged_rows") is not None:
                out.print(f"Archived {a['name']} into {a['schema']}.{a['name']} (archived "
                          f"earlier): copied {a['merged_rows']} row(s), dropped the partition")
                continue
            cut = f"; cut loose from {len(a['unlinked'])} live object(s)" if a["unlinked"] else ""
            out.print(f"Archived {a['name']} to schema {a['schema']}{cut}")
        for u in result.unlinked:
            out.print(f"Cut {u['schema']}.{u['name']} (archived earlier) loose from the live "
                      f"schema: {'; '.join(u['unlinked'])}")
        for d in result.dropped:
            out.print(f"Dropped {d['name']}")
        for late in result.late:
            if late["action"] == "archived":
                out.print(f"Moved {late['rows']} late row(s) of {late['month']} (past retention) "
                          f"from the DEFAULT partition into {late['schema']}.{late['table']}")
            else:
                out.print(f"Deleted {late['rows']} late row(s) of {late['month']} (past "
                          "retention, --drop) from the DEFAULT partition")
        if not result.skipped and not result.changed and not result.errors \
                and not result.conflicts:
            out.print(f"Nothing to do: {len(result.existing)} partition(s) of {result.table} "
                      "already in place" + (", none past retention" if result.retain is not None
                                            else "") + ".")
    if result.dry_run:
        return
    from dmdb.render import error_line

    for c in result.conflicts:
        error_line(f"{c['name']} not created: {c['reason']}")
    for e in result.errors:
        error_line(f"{e['step']} failed: {e['error']}")
    for w in result.warnings:
        warning_line(w)
    for s in result.stranded:
        warning_line(f"{s['rows']} row(s) of {s['month']} stay in the DEFAULT partition: "
                     f"{s['reason']}")
    if result.default_rows and not result.skipped:
        fix = ("" if result.fill else "; `dmdb partitions create --fill` creates their months "
               "and moves the rows")
        warning_line(
            f"{result.default_rows} row(s) sit in the DEFAULT partition of {result.table} "
            f"({_months(result.default_months)}){fix} (exit 3)"
        )


def _print_dry_run(result) -> None:
    out = sys.stdout
    what = f"{result.action} of {result.table} on {result.today.isoformat()}, ahead {result.ahead}"
    if result.fill:
        what += ", with DEFAULT's months (--fill)"
    if result.retain is not None:
        what += f", retain {result.retain} month(s) ({result.retention})"
    if not result.steps:
        out.write(f"-- dry run: {what}: nothing to do "
                  f"({len(result.existing)} partition(s) in place)\n")
    else:
        count = sum(len(s.transactions) for s in result.steps)
        out.write(f"-- dry run: {what}: {count} transaction(s); nothing was changed\n")
    for step in result.steps:
        note = ""
        if step.action == "create":
            note = f", {step.default_rows} row(s) to move from the DEFAULT partition"
            if step.move_index is not None:
                note += (f" (ACCESS EXCLUSIVE on {result.table} while they move: its readers "
                         "and writers wait)")
            elif step.swap:
                note = (f", {step.default_rows} row(s) in the DEFAULT partition: it becomes "
                        "the month's partition (a CHECK validated without blocking, then one "
                        "short transaction; rows of other months reaching DEFAULT meanwhile "
                        "are refused)")
        elif step.action == "archive" and step.merge:
            note = (f", into {step.archive_schema}.{step.partition} (archived earlier): rows "
                    "copied, partition dropped")
        elif step.action == "archive":
            note = f", to schema {step.archive_schema}"
        elif step.action == "late":
            note = (f", {step.default_rows} late row(s) of a month past retention in the DEFAULT "
                    + (f"partition, moved into {step.archive_schema}.{step.partition}"
                       if step.archive_schema else "partition, deleted (--drop)"))
        elif step.action == "unlink":
            note = f" in schema {step.archive_schema}: cut loose from the live schema"
        out.write(f"\n-- {step.action} {step.partition} {_span(step.lo, step.hi)}{note}\n"
                  if step.action != "unlink" else f"\n-- {step.action} {step.partition}{note}\n")
        for transaction in step.transactions:
            out.write("BEGIN;\n")
            for statement in transaction:
                out.write(statement + ";\n")
            out.write("COMMIT;\n")
    for c in result.conflicts:
        out.write(f"\n-- conflict: {c['name']} would not be created: {c['reason']}\n")
    for s in result.stranded:
        out.write(f"\n-- stranded: {s['rows']} row(s) of {s['month']} would stay in DEFAULT: "
                  f"{s['reason']}\n")
    if result.default_rows:
        out.write(f"\n-- {result.default_rows} row(s) in the DEFAULT partition now "
                  f"({_months(result.default_months)})\n")


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = JSON):
    """Every partitioned table with each partition's bounds, row estimate and size; the
    rows in DEFAULT partitions counted exactly, by month, and flagged. Reads from the
    replica when one is configured.

    Example: dmdb partitions list --json
    """
    from dmdb.db import connect_read
    from dmdb.partitions import list_partitions

    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        listing = list_partitions(conn)
    if as_json:
        print_json(listing.to_dict())
        return
    out = console()
    if not out.is_terminal:  # files and pipes: do not wrap at 80 columns
        out.width = max(out.width, 120)
    if not listing.tables:
        out.print("No partitioned tables (run `dmdb up` first).")
        return
    for t in listing.tables:
        rows = []
        for p in t.partitions:
            if p.is_default:
                bounds = "DEFAULT"
            elif p.range_from is not None:
                bounds = f"{_short(p.range_from)} .. {_short(p.range_to)}"
            else:
                bounds = p.bound.removeprefix("FOR VALUES ")
            notes = ""
            if p.is_default:
                notes = f"{p.default_rows} row(s) in DEFAULT!" if p.default_rows else "empty"
            rows.append((p.name, bounds, "—" if p.rows_estimate is None else p.rows_estimate,
                         human_bytes(p.size_bytes), notes))
        out.print(table(f"{t.schema}.{t.name} ({t.key})",
                        ("partition", "bounds", "rows (est.)", "size", "notes"), rows))
        if t.default is not None and t.default.months:
            out.print(table(f"rows in {t.default.qualified} by month (UTC)", ("month", "rows"),
                            [(m.label, m.rows) for m in t.default.months]))
    if listing.default_rows:
        out.print(f"[bold]{listing.default_rows} row(s) sit in DEFAULT partitions[/bold]: "
                  "`dmdb partitions create --fill` creates their months and moves them "
                  "(within 120 months of today; it names the rows it cannot place).")


def _short(bound: str) -> str:
    """'2026-11-01 00:00:00+00' -> '2026-11-01' (UTC midnight, as monthly bounds are)."""
    return bound.removesuffix(" 00:00:00+00")


def _run(ctx, *, action: str, **kwargs):
    from dmdb import partitions
    from dmdb.db import connect

    settings = ctx.obj.settings()
    quiet, as_json = kwargs.pop("quiet"), kwargs.pop("as_json")
    kwargs["lock_timeout"] = _lock_timeout(settings, kwargs.get("lock_timeout"))
    kwargs["today"] = partitions.today_from_text(kwargs.get("today"))
    options = {k: kwargs.pop(k) for k in ("attempts", "dry_run", "lock_wait")}
    request = partitions.PlanRequest(action=action, **kwargs)
    request.check()  # usage errors before connecting
    with connect(settings, autocommit=True,
                 session=None if options["dry_run"] else f"dmdb partitions {action}") as conn:
        from dmdb.cli.common import announce

        announce(conn, settings, quiet)
        result = partitions.run(conn, request, progress=_progress(quiet or as_json), **options)
    if result.skipped and action == "create":
        raise partitions.PartitionError(
            f"{result.message} for 30 s; retry when it has finished")
    _print_result(result, as_json, quiet)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
def create(
    ctx: typer.Context,
    ahead: int = AHEAD,
    start: str | None = typer.Option(
        None, "--from", metavar="YYYY-MM",
        help="First month to create (default: the current month, UTC)."),
    table_name: str = TABLE,
    lock_timeout: str | None = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
    quiet: bool = QUIET,
    today: str | None = TODAY,
    fill: bool = FILL,
):
    """Create the monthly partitions from the current month (or --from) through N months
    after it, named like learning_events_2026_11; with --fill, also the month of every row
    waiting in the DEFAULT partition. Idempotent. Rows of those months sitting in the
    DEFAULT partition are moved into the new partition in the same transaction (the
    table is then locked against readers too while they move: see docs/partitions.md).

    Example: dmdb partitions create --ahead 6 --fill --dry-run
    """
    from dmdb.partitions import parse_month

    _run(ctx, action="create", ahead=ahead,
         start=parse_month(start) if start is not None else None, table=table_name,
         lock_timeout=lock_timeout, attempts=attempts, dry_run=dry_run, as_json=as_json,
         quiet=quiet, today=today, lock_wait=30.0, fill=fill)


@app.command()
def rollover(
    ctx: typer.Context,
    ahead: int = AHEAD,
    retain: int | None = typer.Option(
        None, "--retain", metavar="MONTHS",
        help="Detach partitions ending before the start of (this month − MONTHS); needs "
        "--archive-schema or --drop. Never the current month or the DEFAULT partition."),
    archive_schema: str | None = typer.Option(
        None, "--archive-schema", metavar="SCHEMA",
        help="Move detached partitions to this schema (created if missing)."),
    drop: bool = typer.Option(False, "--drop", help="Drop the partitions past retention."),
    table_name: str = TABLE,
    lock_timeout: str | None = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
    quiet: bool = QUIET,
    today: str | None = TODAY,
    fill: bool = FILL,
):
    """The cron job: under an advisory lock, create the months --ahead asks for, apply
    retention, report. A second run while one is in progress exits 0 saying so; a run
    with nothing to do changes nothing. Exit 3 when rows remain in the DEFAULT partition.

    Example: dmdb partitions rollover --ahead 3 --retain 12 --archive-schema archive --quiet
    """
    _run(ctx, action="rollover", ahead=ahead, retain=retain, archive_schema=archive_schema,
         drop=drop, table=table_name, lock_timeout=lock_timeout, attempts=attempts,
         dry_run=dry_run, as_json=as_json, quiet=quiet, today=today, lock_wait=0.0,
         fill=fill)


@app.command()
def cron(
    ahead: int = AHEAD,
    retain: int | None = typer.Option(None, "--retain", metavar="MONTHS",
                                         help="As for rollover."),
    archive_schema: str | None = typer.Option(None, "--archive-schema", metavar="SCHEMA",
                                                 help="As for rollover."),
    drop: bool = typer.Option(False, "--drop", help="As for rollover."),
    schedule: str = typer.Option("17 * * * *", "--schedule", metavar="CRON",
                                 help="5-field cron schedule (or @hourly, @daily)."),
    on_calendar: str | None = typer.Option(
        None, "--on-calendar", metavar="SPEC",
        help="systemd OnCalendar= (default: translated from --schedule)."),
    table_name: str = TABLE,
    dmdb_path: str | None = typer.Option(
        None, "--dmdb-path", metavar="PATH",
        help="The dmdb executable cron should run (default: this one, or dmdb on PATH)."),
    workdir: str | None = typer.Option(
        None, "--workdir", metavar="DIR",
        help="Directory with the .env the job reads (default: the current directory)."),
    env_file: str | None = typer.Option(None, "--env-file", metavar="FILE",
                                           help="systemd EnvironmentFile= (e.g. /etc/dmdb/env)."),
    user: str | None = typer.Option(None, "--user", metavar="USER",
                                       help="systemd User= to run the service as."),
    what: str = typer.Option("all", "--format", metavar="all|crontab|systemd",
                             help="What to print."),
    as_json: bool = JSON,
):
    """Render a crontab line and a systemd service + timer that run `dmdb partitions
    rollover --quiet` (templates/partitions_*.j2). Prints them; installs nothing.

    Example: dmdb partitions cron --schedule '17 * * * *' --ahead 3 --retain 12 --drop
    """
    from dmdb.errors import ConfigError
    from dmdb.partitions.cron import render_cron

    if what not in ("all", "crontab", "systemd"):
        raise ConfigError(f"--format {what!r}: use all, crontab or systemd")
    files = render_cron(
        ahead=ahead, retain=retain, archive_schema=archive_schema, drop=drop,
        schedule=schedule, on_calendar=on_calendar, table=table_name,
        dmdb=[dmdb_path] if dmdb_path else None,
        workdir=os.path.abspath(workdir or os.getcwd()), env_file=env_file, user=user,
    )
    if as_json:
        print_json(files.to_dict())
        return
    parts = []
    if what in ("all", "crontab"):
        parts.append(("crontab (crontab -e)", files.crontab))
    if what in ("all", "systemd"):
        parts.append((f"/etc/systemd/system/{files.service_name}", files.service))
        parts.append((f"/etc/systemd/system/{files.timer_name}", files.timer))
    if len(parts) == 1:
        sys.stdout.write(parts[0][1])
        return
    sys.stdout.write("\n".join(f"# ===== {title} =====\n{text}" for title, text in parts))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="partitions")
