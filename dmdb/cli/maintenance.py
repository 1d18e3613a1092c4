"""dmdb maintenance vacuum / refresh."""

from __future__ import annotations

import typer

from dmdb.render import console, print_json, show_progress, table

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in README).")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan and its SQL; change nothing.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar; print only problems.")

maintenance_app = typer.Typer(
    help="VACUUM (ANALYZE) table by table and partition by partition; refresh the "
    "materialized views and roll up the shared counters.",
    no_args_is_help=True,
)


class _Bar:
    """One rich progress bar over the relations of a run."""

    def __init__(self, what: str):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.what = what
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console(),
                                 transient=True)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, number: int, total: int, label, finished: bool) -> None:
        name = label if isinstance(label, str) else label.table
        if self.task is None:
            self.task = self.progress.add_task(self.what, total=total)
        if finished:
            self.progress.update(self.task, completed=number)
        else:
            self.progress.update(self.task, completed=number - 1,
                                 description=f"{self.what} {name}")


def _run_with_bar(bar: _Bar | None, fn, **kwargs):
    if bar is None:
        return fn(**kwargs)
    with bar:
        return fn(progress=bar, **kwargs)


@maintenance_app.command("vacuum")
def vacuum_cmd(
    ctx: typer.Context,
    analyze: bool = typer.Option(False, "--analyze", help="VACUUM (ANALYZE); partitioned "
                                 "tables themselves get ANALYZE."),
    table_name: str | None = typer.Option(
        None, "--table", metavar="TABLE",
        help="Only this table (a partitioned one: all its partitions)."),
    stale_only: bool = typer.Option(
        False, "--stale-only",
        help="Only tables past autovacuum's own thresholds (dead tuples, or changes since "
        "the last analyze), per-table reloptions honoured."),
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
    quiet: bool = QUIET,
):
    """VACUUM [(ANALYZE)] every table of schema public, one relation at a time: each leaf
    partition separately, the partitioned parent only analyzed. Prints dead tuples before
    and after. Exit 1 if a relation could not be vacuumed.

    Example: dmdb maintenance vacuum --analyze --stale-only
    """
    from dmdb import maintenance
    from dmdb.db import connect
    from dmdb.errors import DmdbError

    bar = _Bar("vacuum") if show_progress(quiet or as_json) and not dry_run else None
    # Minutes of VACUUM would hold a pooled server connection, and its lock wait and
    # client check are session settings: it runs on the server's own address.
    with connect(ctx.obj.settings(), autocommit=True,
                 session=None if dry_run else "dmdb maintenance vacuum") as conn:
        result = _run_with_bar(bar, maintenance.vacuum, conn=conn, analyze=analyze,
                               table=table_name, stale_only=stale_only, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        if not result.tables:
            out.print("Nothing to vacuum: no table past autovacuum's thresholds."
                      if stale_only else "Nothing to vacuum.")
        elif dry_run:
            out.print(f"-- dry run: {len(result.tables)} statement(s); nothing was changed")
            for t in result.tables:
                why = f"  -- {'; '.join(t.reasons)}" if t.reasons else ""
                print(f"{t.command};{why}")
        elif not quiet:
            rows = [(t.table, t.action, t.dead_before, "" if t.dead_after is None else t.dead_after,
                     f"{t.seconds:.2f}s" if t.seconds is not None else "", t.error or "")
                    for t in result.tables]
            out.print(table("Vacuum", ("table", "command", "dead before", "dead after", "time",
                                       "error"), rows))
            out.print(f"{len(result.tables)} relation(s); dead tuples {result.dead_before} → "
                      f"{result.dead_after} in {result.seconds:.1f}s")
    if result.failed:
        first = result.failed[0]
        raise DmdbError(f"{first.table}: {first.error}"
                        + (f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else "")
                        + "; run the vacuum again once the lock is free")


@maintenance_app.command("refresh")
def refresh_cmd(
    ctx: typer.Context,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
    quiet: bool = QUIET,
):
    """REFRESH MATERIALIZED VIEW CONCURRENTLY each materialized view of schema public
    (plain REFRESH when never populated), then roll up content counters and bandit arms
    from learning_events (rollup_learning_events(), when installed). Exit 1 on a failure.

    Example: dmdb maintenance refresh --json
    """
    from dmdb import maintenance
    from dmdb.db import connect
    from dmdb.errors import DmdbError

    bar = _Bar("refresh") if show_progress(quiet or as_json) and not dry_run else None
    with connect(ctx.obj.settings(), autocommit=True,
                 session=None if dry_run else "dmdb maintenance refresh") as conn:
        result = _run_with_bar(bar, maintenance.refresh, conn=conn, dry_run=dry_run)
    roll = result.rollup
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        if dry_run:
            out.print("-- dry run: nothing was changed")
            for v in result.views:
                print(f"{v.command};  -- {v.reason}")
            if roll["present"]:
                print(f"{roll['command']};")
            else:
                out.print(f"-- {roll['function']}() is not installed: no rollup")
        elif not quiet:
            if result.views:
                out.print(table("Materialized views", ("view", "mode", "time", "error"),
                                [(v.view, v.mode, f"{v.seconds:.2f}s", v.error or "")
                                 for v in result.views]))
            else:
                out.print("No materialized view in schema public.")
            if roll["called"]:
                r = roll["result"] or {}
                out.print(f"Rollup: {r.get('answers', 0)} answer(s) over {r.get('items', 0)} "
                          f"item(s), events {r.get('from_event_id')} → {r.get('to_event_id')}")
            elif not roll["present"]:
                out.print(f"Rollup skipped: {roll['function']}() is not installed (run dmdb up).")
    failures = [f"{v.view}: {v.error}" for v in result.views if v.error]
    if roll.get("error"):
        failures.append(f"{roll['function']}(): {roll['error']}")
    if failures:
        raise DmdbError(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1
                                       else "") + "; run the refresh again")


def register(app: typer.Typer) -> None:
    app.add_typer(maintenance_app, name="maintenance")
