"""dmdb indexes build / check / report."""

from __future__ import annotations

import sys

import typer

from dmdb.render import console, human_bytes, print_json, show_progress, table

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in README).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar; print only problems.")

indexes_app = typer.Typer(
    help="The project's declared indexes (the CREATE INDEX statements of sql/migrations/): "
    "build them without blocking writers, check them, report sizes, scans, unused and "
    "duplicate indexes.",
    no_args_is_help=True,
)


class _BuildBar:
    """A rich progress bar: one line for the steps, one for the index being built (fed
    from pg_stat_progress_create_index)."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(), console=console(), transient=True,
        )
        self.steps = None
        self.current = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        p = self.progress
        if self.steps is None:
            self.steps = p.add_task("indexes", total=event.steps_total, detail="")
            self.current = p.add_task("", total=None, detail="")
        if event.finished:
            p.update(self.steps, completed=event.step_number)
            return
        label = f"{event.step.action.replace('_', ' ')} {event.step.index}"
        if event.phase is None:
            p.update(self.steps, completed=event.step_number - 1,
                     detail=f"step {event.step_number}/{event.steps_total}")
            p.reset(self.current, total=None, description=label, detail="")
        else:
            p.update(self.current, description=label, total=event.total or None,
                     completed=event.done or 0, detail=event.phase)


def _declared(ctx: typer.Context):
    from dmdb import indexes

    return indexes.declared_indexes(ctx.obj.project().sql_dir)


@indexes_app.command("build")
def build_cmd(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and its SQL; change nothing."),
    table_name: str | None = typer.Option(
        None, "--table", metavar="TABLE", help="Only the declared indexes of this table."),
    lock_timeout: str = typer.Option(
        "1s", "--lock-timeout", metavar="DURATION",
        help="lock_timeout of the brief steps that lock writers out (ON ONLY, ATTACH), "
        "e.g. 1s or 500ms, a bare number is seconds; retried with backoff. CONCURRENTLY "
        "steps never block writers and wait as needed."),
    as_json: bool = JSON,
    quiet: bool = QUIET,
):
    """Create missing declared indexes and rebuild INVALID ones, without blocking writes.

    Plain tables: CREATE INDEX CONCURRENTLY. Partitioned tables: CREATE INDEX ON ONLY the
    parent, CREATE INDEX CONCURRENTLY on each partition (<partition>_<suffix>), ALTER INDEX
    ... ATTACH PARTITION. An INVALID index is dropped CONCURRENTLY and built again, so an
    interrupted build is resumed by running it again. Exit 1 if an index failed to build.

    Example: dmdb indexes build --dry-run
    """
    from dmdb import indexes
    from dmdb.config import check_lock_timeout
    from dmdb.db import connect
    from dmdb.errors import DmdbError

    check_lock_timeout(lock_timeout, "--lock-timeout")  # before connecting
    settings = ctx.obj.settings()
    declared = _declared(ctx)
    bar = _BuildBar() if show_progress(quiet or as_json) and not dry_run else None
    with connect(settings, autocommit=True,
                 session=None if dry_run else "dmdb indexes build") as conn:
        from dmdb.cli.common import announce

        announce(conn, settings, quiet)
        monitor = ((lambda: connect(settings.session(), autocommit=True)) if bar is not None
                   else None)
        if bar is not None:
            with bar:
                result = indexes.build(conn, declared, table=table_name, dry_run=dry_run,
                                       lock_timeout=lock_timeout, progress=bar, monitor=monitor)
        else:
            result = indexes.build(conn, declared, table=table_name, dry_run=dry_run,
                                   lock_timeout=lock_timeout)
    missing = [plan for plan in result.indexes if plan.status == "table_missing"]
    if missing and len(missing) == len(result.indexes):
        from dmdb.errors import schema_missing

        raise schema_missing(settings.dbname, "dmdb indexes build (the declared indexes' "
                             "tables)")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DmdbError(f"{missing[0].index}: its table {missing[0].table} does not exist{more}; "
                        "the schema is not up to date — run `dmdb up` first")
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        todo = [p for p in result.indexes if p.steps or p.status == "table_missing"]
        if dry_run:
            if not todo:
                out.print("Nothing to do: every declared index is present and valid.")
            else:
                out.print(f"-- dry run: {len(result.steps)} step(s); nothing was changed")
                for plan in todo:
                    extra = f", {plan.partitions} partition(s)" if plan.partitions else ""
                    sys.stdout.write(f"\n-- {plan.index} on {plan.table}: {plan.status}{extra}\n")
                    for step in plan.steps:
                        sys.stdout.write(step.sql + ";\n")
        elif not quiet:
            if not result.built and not result.failed:
                out.print("Nothing to do: every declared index is present and valid.")
            for plan in result.indexes:
                if plan.index in result.built:
                    extra = f" ({plan.partitions} partition(s))" if plan.partitions else ""
                    out.print(f"Built {plan.index} on {plan.table}{extra}")
            if result.built:
                out.print(f"{len(result.built)} index(es) built in {result.seconds:.1f}s")
    if result.failed:
        first = result.failed[0]
        more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
        raise DmdbError(
            f"building {first['index']} failed at {first['step']} of {first['on']}: "
            f"{first['error']}{more}; fix the cause and run `dmdb indexes build` again "
            "(an INVALID index left behind is dropped and rebuilt)")


@indexes_app.command("check")
def check_cmd(ctx: typer.Context, as_json: bool = JSON):
    """List INVALID indexes, declared indexes that are missing, and partitions whose index
    is not attached to the parent's index. Exit 1 when any is found, 0 when clean.

    Example: dmdb indexes check --json
    """
    from dmdb import indexes
    from dmdb.db import connect_read
    from dmdb.render import warning_line

    declared = _declared(ctx)
    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        result = indexes.check(conn, declared)
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        if result.ok:
            out.print(f"OK: {result.declared} declared index(es) present and valid; "
                      "no invalid or unattached index.")
        if result.invalid:
            out.print(table("Invalid indexes (drop and rebuild: dmdb indexes build)",
                            ("index", "table", "definition"),
                            [(i["index"], i["table"], i["definition"]) for i in result.invalid]))
        if result.missing:
            out.print(table("Declared but missing", ("index", "table", "declared in", "note"),
                            [(m["index"], m["table"], m["source"],
                              "table missing" if m["table_missing"] else "")
                             for m in result.missing]))
        if result.unattached:
            out.print(table("Partitions without an index attached to the parent's",
                            ("parent index", "partition", "partition index"),
                            [(u["parent_index"], u["partition"], u["partition_index"] or "(none)")
                             for u in result.unattached]))
    if not result.ok:
        raise typer.Exit(1)


@indexes_app.command("report")
def report_cmd(
    ctx: typer.Context,
    min_size_mb: float = typer.Option(
        10.0, "--min-size-mb", metavar="N", min=0, max=2**43 - 1,  # bytes within bigint
        help="Size floor of the unused-index list, in MB (pghero's default: 10)."),
    as_json: bool = JSON,
):
    """Size and scans of every index, unused indexes (no scan since the statistics were
    reset, not unique, not backing a constraint, at least --min-size-mb) and duplicate
    indexes (same table and method, key columns a prefix of another's; unique, partial and
    expression indexes excluded). Read-only: uses the replica when one is configured.

    Example: dmdb indexes report --min-size-mb 1
    """
    from dmdb import indexes
    from dmdb.db import connect_read
    from dmdb.render import warning_line

    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        result = indexes.report(conn, min_size_mb=min_size_mb)
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    since = (result.stats_reset.isoformat(sep=" ", timespec="seconds") if result.stats_reset
             else "never reset (counted since the server was initialised)")
    out.print(f"Statistics since: {since}")
    rows = []
    for i in result.indexes:
        flags = [f for f, on in (("primary", i["is_primary"]), ("unique", i["is_unique"]),
                                 ("partial", i["partial"]), ("expression", i["expression"]),
                                 ("INVALID", not i["valid"]),
                                 (f"{i['leaf_indexes']} partitions", i["partitioned"])) if on]
        rows.append((f"{i['schema']}.{i['table']}", i["index"], i["method"],
                     human_bytes(i["size_bytes"]), i["scans"], ", ".join(flags)))
    out.print(table("Indexes", ("table", "index", "method", "size", "scans", "notes"), rows))
    if result.unused:
        out.print(table(f"Unused (0 scans, not unique, ≥ {result.min_size_mb:g} MB)",
                        ("table", "index", "size"),
                        [(f"{u['schema']}.{u['table']}", u["index"], human_bytes(u["size_bytes"]))
                         for u in result.unused]))
    else:
        out.print(f"No unused index of {result.min_size_mb:g} MB or more.")
    if result.duplicates:
        out.print(table("Duplicates (the first is covered by the second)",
                        ("table", "index", "covered by", "size"),
                        [(f"{d['schema']}.{d['table']}", d["index"], d["covered_by"],
                          human_bytes(d["size_bytes"])) for d in result.duplicates]))
    else:
        out.print("No duplicate index.")


def register(app: typer.Typer) -> None:
    app.add_typer(indexes_app, name="indexes")
