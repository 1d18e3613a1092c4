"""dmdb lint / drift / baseline: checks of migrations against a live schema (registered
by cli/migrate.py, beside up and rollback)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dmdb.render import console, error_line, print_json, show_progress

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in docs/migrations.md).")


def _print_drift(result, out) -> None:
    for diff in result.differences:
        out.print(f"[bold]drift:[/bold] {diff.describe()}")
        for line in diff.diff:
            sys.stdout.write(f"    {line}\n")
    for note in result.notes:
        out.print(f"note: {note}", markup=False, highlight=False)


def _lint_citus(settings, as_json: bool) -> None:
    from dmdb.citus.audit import audit
    from dmdb.db import connect_read

    with connect_read(settings, autocommit=True) as conn:
        result = audit(conn)
    if as_json:
        print_json(result.to_dict())
    else:
        out = sys.stdout
        for f in result.findings:
            out.write(f"{f.level} {f.rule}: {f.object}\n    {f.message}\n    fix: {f.fix}\n")
        out.write(f"{len(result.blockers)} blocker(s), "
                  f"{len(result.findings) - len(result.blockers)} warning(s); distributed by "
                  f"{result.column}: {', '.join(result.distributed) or 'none'}; reference: "
                  f"{', '.join(result.reference) or 'none'}\n")
    if result.blockers:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command()
    def lint(
        ctx: typer.Context,
        files: list[Path] | None = typer.Argument(
            None, help="Migration files to lint (default: the pending migrations)."),
        severity: str = typer.Option(
            "warning", "--severity", metavar="LEVEL",
            help="Exit 1 on findings at or above this level: info, warning or error."),
        as_json: bool = JSON,
        no_trace: bool = typer.Option(False, "--no-trace",
                                      help="Only squawk's static rules; no scratch replay."),
        citus: bool = typer.Option(
            False, "--citus",
            help="Audit the live schema and the delegated functions against Citus's rules "
                 "for sharding by user_id instead (exit 1 on a BLOCKER; docs/scaling.md)."),
    ):
        """Lint migrations before deploying them: squawk's rules, and a lock trace.

        The lock trace replays the files in a scratch database holding the live schema
        (and a few rows of each table) and reports, per statement, the locks taken on
        existing tables, table rewrites and validation scans. Flagged: rewrites, index
        builds without CONCURRENTLY on existing tables, validation scans under a lock
        that blocks writes, ACCESS EXCLUSIVE held across further work.

        Silence a finding for one statement with a comment above it that says why:
        `-- dmdb-lint: ignore RULE[, RULE] -- reason`.

        Example: dmdb lint --json
        """
        from dmdb.migrate.lint import SEVERITIES
        from dmdb.migrate.lint import lint as run_lint

        if severity not in SEVERITIES:
            raise typer.BadParameter(f"--severity must be one of {', '.join(SEVERITIES)}")
        state = ctx.obj
        if citus:
            if files:
                raise typer.BadParameter("--citus audits the live schema; give no files")
            _lint_citus(state.settings(), as_json)
            return
        out = console()
        progress = (lambda fid: out.print(f"  tracing {fid} …")) if show_progress(as_json) else None
        result = run_lint(state.settings(), state.project(), files=files or None,
                          trace=not no_trace, progress=progress)
        failing = result.at_or_above(severity)
        if as_json:
            print_json(result.to_dict())
        else:
            from dmdb.render import plain_table

            trace = []
            for f in result.files:
                for st in f.statements:
                    if not (st.locks or st.rewrites or st.scans or st.error or not st.traced):
                        continue  # touches no table of the live schema
                    locks = ", ".join(f"{lk.mode} {lk.table}" for lk in st.locks)
                    if st.not_traced == "cluster-wide":
                        locks = "none on tables (cluster-wide: not replayed)"
                    elif not st.traced:
                        locks = "SHARE UPDATE EXCLUSIVE (CONCURRENTLY: not traced)"
                    trace.append((f"{f.id}:{st.line}", st.first_line[:60], locks,
                                  ", ".join(st.rewrites), ", ".join(st.scans),
                                  "failed" if st.error else ""))
            if trace:
                sys.stdout.write(plain_table(
                    "Lock trace (statements touching tables of the live schema)",
                    ("where", "statement", "locks taken", "rewrites", "scans", ""), trace) + "\n")
            rows = [(fd.where, fd.severity, fd.rule, fd.source,
                     fd.message + (f" [ignored: {fd.reason}]" if fd.ignored else ""))
                    for fd in result.findings]
            if rows:
                sys.stdout.write(plain_table("Findings", ("where", "severity", "rule", "source",
                                                           "message"), rows) + "\n")
            out = console()
            for note in result.notes:
                out.print(f"note: {note}", markup=False)
            shown = [fd for fd in result.findings if not fd.ignored]
            out.print(f"{len(result.files)} file(s), {len(shown)} finding(s) "
                      f"({len(failing)} at or above {severity})")
        if failing:
            raise typer.Exit(1)

    @app.command()
    def drift(
        ctx: typer.Context,
        to: str | None = typer.Option(None, "--to", metavar="ID",
                                      help="Compare with the migrations through ID instead of "
                                      "the applied ones."),
        as_json: bool = JSON,
        scratch_url: str | None = typer.Option(
            None, "--scratch-url", metavar="URL", envvar="DMDB_SCRATCH_URL",
            help="Replay on this server instead (same major version), for a role that may "
                 "not create databases on the live one, e.g. \"$(dmdb server url)\"."),
    ):
        """Compare the live schema with what the applied migrations make.

        Replays them in a scratch database, compares pg_dump's objects with the live
        ones, and lists each difference (DDL run by hand, a failed half-manual fix).
        Ignored: the monthly partitions `dmdb partitions` makes, schemas holding only
        archived ones, and function files not yet applied. Exit 1 on drift.

        Example: dmdb drift --json
        """
        from dmdb.migrate.drift import drift as run_drift

        state = ctx.obj
        scratch = None
        if scratch_url:
            from dmdb.config import load_settings

            scratch = load_settings({"DATABASE_URL": scratch_url})
        from dmdb.render import activity

        with activity("drift …", show_progress(as_json)) as shown:
            result = run_drift(state.settings(), state.project(), to=to, scratch=scratch,
                               progress=shown.update)
        if as_json:
            print_json(result.to_dict())
        else:
            out = console()
            _print_drift(result, out)
            if result.ok:
                out.print(f"No drift: the schema matches migrations through {result.through}.")
        if not result.ok:
            error_line(f"schema drift: {len(result.differences)} object(s) differ from the "
                       "migrations; make the live schema match (or write a migration for the "
                       "change)")
            raise typer.Exit(1)

    @app.command()
    def baseline(
        ctx: typer.Context,
        to: str = typer.Option(..., "--to", metavar="ID",
                               help="The last migration the live schema already has."),
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="Compare and list what would be recorded; change nothing."),
        as_json: bool = JSON,
    ):
        """Adopt dmdb on a database that already has the schema: record the migrations
        through ID as applied without running them. Refused when the live schema differs
        from what those migrations make (see `dmdb drift --to ID`).

        Example: dmdb baseline --to 0006_rollup_watermark --dry-run
        """
        from dmdb.migrate.drift import baseline as run_baseline

        state = ctx.obj
        result = run_baseline(state.settings(), state.project(), to, dry_run=dry_run)
        if as_json:
            print_json(result.to_dict())
            return
        verb = "Would record" if dry_run else "Recorded"
        if result.marked:
            console().print(f"{verb} as applied (schema matches): " + ", ".join(result.marked))
        else:
            console().print(f"Nothing to record: migrations through {result.to} are already applied.")
