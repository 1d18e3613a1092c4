"""dmdb up / rollback / status / new / verify / repair (lint / drift / baseline in
migrate_checks.py)."""

from __future__ import annotations

import sys

import typer

from dmdb.cli.common import announce
from dmdb.render import console, plain_table, print_json, show_progress

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in README).")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan and its SQL; change nothing.")
LOCK_WAIT = typer.Option(
    "60s", "--lock-timeout", metavar="DURATION",
    help="How long to wait for another dmdb run's migration lock before failing; "
    "a duration: 2s, 500ms, 1min; a bare number is seconds.",
)
QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing on success.")
ATTEMPT_TIMEOUT = typer.Option(
    None, "--attempt-timeout", metavar="DURATION",
    help="lock_timeout of each attempt of a migration's transaction (default 1s, or "
    "DMDB_LOCK_TIMEOUT when lower; env DMDB_MIGRATE_LOCK_TIMEOUT). Other sessions' queries on "
    "a table queue behind a waiting DDL at most this long at a time. 0 is refused. "
    "A duration: 2s, 500ms; a bare number is seconds.",
)
ATTEMPTS = typer.Option(None, "--attempts", metavar="N",
                        help="Attempts per migration before giving up (default 40; "
                        "DMDB_MIGRATE_ATTEMPTS).")
RETRY_FOR = typer.Option(None, "--retry-for", metavar="DURATION",
                         help="Time budget of all attempts of one migration (default 5min; "
                         "DMDB_MIGRATE_RETRY_FOR); a bare number is seconds.")
BACKOFF = typer.Option(None, "--backoff", metavar="DURATION",
                       help="First pause between attempts, doubled each time, jittered "
                       "(default 500ms; DMDB_MIGRATE_BACKOFF); a bare number is seconds.")
BACKOFF_MAX = typer.Option(None, "--backoff-max", metavar="DURATION",
                           help="Longest pause between attempts (default 10s; "
                           "DMDB_MIGRATE_BACKOFF_MAX); a bare number is seconds.")
STATEMENT_TIMEOUT = typer.Option(
    None, "--statement-timeout", metavar="DURATION",
    help="statement_timeout of `-- transactional: false` statements, and lock_timeout of "
    "their CONCURRENTLY ones (default 2h; DMDB_MIGRATE_STATEMENT_TIMEOUT); a bare number "
    "is seconds.",
)


def _policy(settings, **flags):
    from dmdb.migrate.retry import RetryPolicy

    explicit = settings.sources.get("lock_timeout", "default") != "default"
    return RetryPolicy.build(session_lock_timeout=settings.lock_timeout if explicit else None,
                             **flags)


def _lock_wait(value: str) -> float:
    from dmdb.config import duration_seconds

    seconds = duration_seconds(value, "--lock-timeout", example="60s")
    if seconds <= 0:
        from dmdb.errors import ConfigError

        raise ConfigError(f"--lock-timeout {value!r}: give a positive duration such as 60s")
    return seconds


def _on_wait(quiet: bool):
    from dmdb.render import warning_line

    if quiet:
        return None
    return lambda wait: warning_line(wait.describe())


def _progress(quiet: bool):
    if not show_progress(quiet):
        return None
    out = console()

    def report(event: str, file_id: str) -> None:
        verb = {"apply": "applying", "rollback": "rolling back", "function": "applying function"}
        out.print(f"  {verb.get(event, event)} {file_id} …")

    return report


def _nothing_to_do(result) -> str:
    if result.action == "up":
        if result.to:
            return f"Nothing to do: {result.to} and every migration before it are applied."
        return "Nothing to do: the database is up to date."
    if result.to:
        return f"Nothing to roll back: no migration is applied after {result.to}."
    return "Nothing to roll back: no migration is applied."


class _Plain:
    def print(self, text: str) -> None:
        sys.stdout.write(text + "\n")


def _print_run(result, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    out = _Plain()
    for old, new in result.renamed:
        verb = "would record" if result.dry_run else "recorded"
        if not quiet or result.dry_run:
            out.print(f"{new} is {old} renamed (same content, by its checksum): {verb} it "
                      "under its new name, not run again")
    if result.dry_run:
        if not result.sql:
            out.print(_nothing_to_do(result))
            return
        verb = "apply" if result.action == "up" else "roll back"
        out.print(f"-- dry run: would {verb} {len(result.sql)} file(s); nothing was changed")
        for file_id, text in result.sql:
            sys.stdout.write(f"\n-- {file_id}\n{text}\n")
        return
    if quiet:
        return
    if not result.migrations and not result.functions:
        if not result.renamed:
            out.print(_nothing_to_do(result))
        return
    verb = "Applied" if result.action == "up" else "Rolled back"
    for file_id in result.migrations:
        out.print(f"{verb} {file_id}")
    for file_id in result.functions:
        if result.action == "up":
            out.print(f"Applied function file {file_id}")
        else:
            out.print(f"Forgot function file {file_id} (no migration is applied: `dmdb up` "
                      "applies it again)")
    for name in result.invalid_indexes_dropped:
        out.print(f"Dropped the INVALID index {name} left by an earlier failed build, and built it again")
    # What the files said (e.g. a step skipped for want of privilege), as Flyway and
    # Sqitch show it: never swallowed.
    for file_id, severity, message in result.notices:
        out.print(f"{file_id}: {severity}: {message}")


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        ctx: typer.Context,
        to: str | None = typer.Option(None, "--to", metavar="ID",
                                         help="Apply up to and including this migration id."),
        dry_run: bool = DRY_RUN,
        as_json: bool = JSON,
        lock_wait: str = LOCK_WAIT,
        quiet: bool = QUIET,
        attempt_timeout: str | None = ATTEMPT_TIMEOUT,
        attempts: int | None = ATTEMPTS,
        retry_for: str | None = RETRY_FOR,
        backoff: str | None = BACKOFF,
        backoff_max: str | None = BACKOFF_MAX,
        statement_timeout: str | None = STATEMENT_TIMEOUT,
        allow_foreign_ledger: bool = typer.Option(
            False, "--allow-foreign-ledger",
            help="Apply even though the database's ledger records migrations this project "
            "does not have (another project's database, or a newer checkout's); refused "
            "without it."),
    ):
        """Apply pending migrations, each with its ledger entry in one transaction, then
        re-apply changed function files. Safe to run concurrently: runs serialise on an
        advisory lock. The target (server, database, role) is named first, on stderr.

        On a busy table each attempt waits for locks at most --attempt-timeout, then the
        whole transaction is retried after a jittered pause (--attempts, --retry-for),
        naming the session in the way on stderr.

        Example: dmdb up --dry-run
        """
        from dmdb.db import connect
        from dmdb.migrate import engine

        state = ctx.obj
        settings = state.settings()
        project = state.project()
        policy = _policy(settings, lock_timeout=attempt_timeout, attempts=attempts,
                         retry_for=retry_for, backoff=backoff, backoff_max=backoff_max,
                         statement_timeout=statement_timeout)
        wait = _lock_wait(lock_wait)
        with connect(settings, autocommit=True, session=None if dry_run else "dmdb up") as conn:
            announce(conn, settings, quiet)
            result = engine.up(
                conn, project, to=to, dry_run=dry_run, lock_wait=wait, policy=policy,
                progress=_progress(quiet or as_json), on_wait=_on_wait(quiet),
                allow_foreign_ledger=allow_foreign_ledger,
            )
        _print_run(result, as_json, quiet)

    @app.command()
    def rollback(
        ctx: typer.Context,
        steps: int | None = typer.Option(None, "--steps", metavar="N",
                                            help="Roll back the last N migrations (default 1)."),
        to: str | None = typer.Option(None, "--to", metavar="ID",
                                         help="Roll back every migration applied after ID."),
        dry_run: bool = DRY_RUN,
        as_json: bool = JSON,
        lock_wait: str = LOCK_WAIT,
        quiet: bool = QUIET,
        attempt_timeout: str | None = ATTEMPT_TIMEOUT,
        attempts: int | None = ATTEMPTS,
        retry_for: str | None = RETRY_FOR,
        backoff: str | None = BACKOFF,
        backoff_max: str | None = BACKOFF_MAX,
        statement_timeout: str | None = STATEMENT_TIMEOUT,
    ):
        """Roll back applied migrations with their files in sql/rollbacks/, with the same
        lock-wait retries as `up`.

        Example: dmdb rollback --steps 2 --dry-run
        """
        from dmdb.db import connect
        from dmdb.migrate import engine

        state = ctx.obj
        settings = state.settings()
        project = state.project()
        policy = _policy(settings, lock_timeout=attempt_timeout, attempts=attempts,
                         retry_for=retry_for, backoff=backoff, backoff_max=backoff_max,
                         statement_timeout=statement_timeout)
        wait = _lock_wait(lock_wait)
        with connect(settings, autocommit=True,
                     session=None if dry_run else "dmdb rollback") as conn:
            announce(conn, settings, quiet)
            result = engine.rollback(
                conn, project, steps=steps, to=to, dry_run=dry_run, lock_wait=wait,
                policy=policy, progress=_progress(quiet or as_json), on_wait=_on_wait(quiet),
            )
        _print_run(result, as_json, quiet)

    @app.command()
    def status(
        ctx: typer.Context,
        as_json: bool = JSON,
        check: bool = typer.Option(
            False, "--check",
            help="Exit 1 unless everything is applied and no applied file was edited."),
    ):
        """List migrations (applied, pending, edited, missing rollback) and function files.

        Example: dmdb status --json
        """
        from dmdb.db import connect_read
        from dmdb.migrate import engine
        from dmdb.render import warning_line

        state = ctx.obj
        project = state.project()  # a bad --sql-dir fails before anything starts
        with connect_read(state.settings(), warn=warning_line, autocommit=True) as conn:
            result = engine.status(conn, project)
        data = result.to_dict()
        if as_json:
            print_json(data)
        else:
            out = sys.stdout
            rows = []
            for m in result.migrations:
                flags = [
                    name for name, on in (
                        ("EDITED", m.edited), ("ROLLBACK EDITED", m.rollback_edited),
                        ("NO ROLLBACK", m.missing_rollback), ("FILE MISSING", m.missing_file),
                        ("non-transactional", not m.transactional),
                        (f"INTERRUPTED {m.interrupted}", m.interrupted),
                    ) if on
                ]
                rows.append((m.id, m.state, m.applied_at or "", ", ".join(flags)))
            out.write(plain_table("Migrations", ("id", "state", "applied at (UTC)", "notes"), rows))
            if result.functions:
                out.write("\n" + plain_table(
                    "Function files", ("file", "state", "applied at (UTC)"),
                    [(f.id, f.state, f.applied_at or "") for f in result.functions]))
            s = data["summary"]
            out.write(f"\n{s['applied']} applied, {s['pending']} pending, {s['edited']} edited, "
                      f"{s['functions_pending']} function file(s) to apply\n")
            for problem in result.problems:
                out.write(f"problem: {problem}\n")
            for line in result.interrupted:
                out.write(f"interrupted: {line}\n")
        if check and not data["summary"]["up_to_date"]:
            raise typer.Exit(1)

    @app.command()
    def new(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="What the migration does, e.g. 'add badges'."),
    ):
        """Create the next-numbered migration and its rollback in the project's SQL tree
        (the one `status` and `up` read: --sql-dir, DMDB_SQL_DIR, or the project file's).
        Touches no database.

        Example: dmdb new "add badges"  ->  sql/migrations/0007_add_badges.sql + rollback
        """
        from dmdb.errors import ConfigError
        from dmdb.migrate.new import new_migration

        settings = ctx.obj.settings()
        sql_dir = settings.sql_dir
        if sql_dir is None and settings.project_file is not None:
            sql_dir = settings.project_file.parent / "sql"  # a new project's first migration
        if sql_dir is None:
            raise ConfigError(
                "no project SQL tree to write to (outside a project dmdb reads the shipped "
                "one); run `dmdb new` inside a project (dmdb.toml or [tool.dmdb] in "
                "pyproject.toml, with sql_dir) or pass --sql-dir DIR"
            )
        created = new_migration(sql_dir, name)
        out = console()
        if created.tree_created:
            out.print(f"Created the SQL tree {sql_dir} (migrations/, rollbacks/)", markup=False)
        out.print(f"Created {created.migration}\nCreated {created.rollback}", markup=False)

    @app.command()
    def verify(ctx: typer.Context, as_json: bool = JSON):
        """Check that every rollback is the exact inverse of its migration.

        In a scratch database on the same server: for each migration in order apply it,
        roll it back, compare pg_dump's schema with the one before, apply it again.
        Exit 1 naming the first migration whose rollback differs. Statements on roles,
        tablespaces, databases or server settings are named, not replayed: the whole
        server shares them, so a rollback's DROP ROLE would drop the live role.

        Example: dmdb verify
        """
        from dmdb.migrate.verify import verify as run_verify

        state = ctx.obj
        out = console()
        progress = (lambda mid: out.print(f"  verifying {mid} …")) if show_progress(as_json) else None
        result = run_verify(state.settings(), state.project(), progress=progress)
        if as_json:
            print_json(result.to_dict())
        else:
            for step in result.steps:
                out.print(f"{'ok  ' if step.ok else 'FAIL'} {step.id}")
            for where in result.not_replayed:
                out.print(f"note: not replayed (cluster-wide: the replay keeps the live "
                          f"server's roles and settings): {where}", markup=False, highlight=False)
            for note in result.notes:
                out.print(f"note: {note}", markup=False, highlight=False)
        failure = result.first_failure
        if failure is not None:
            if not as_json:
                sys.stdout.write("\n".join(failure.diff) + "\n")
            from dmdb.render import error_line

            error_line(f"{failure.id}: its rollback is not the exact inverse of the migration "
                       "(schema differs after apply + rollback); fix sql/rollbacks/"
                       f"{failure.id}.sql")
            raise typer.Exit(1)

    @app.command()
    def repair(
        ctx: typer.Context,
        ids: list[str] | None = typer.Argument(
            None, help="Migration ids to accept (default: every edited one)."),
        as_json: bool = JSON,
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="List what would be accepted; change nothing."),
    ):
        """Accept edits to applied migration/rollback files: record their current checksums.

        Use it after a deliberate, harmless edit (a comment, a typo in a rollback). It does
        not re-run anything.

        Example: dmdb repair 0003_learner_state
        """
        from dmdb.db import connect
        from dmdb.migrate import engine

        state = ctx.obj
        project = state.project()
        settings = state.settings()
        with connect(settings, autocommit=True,
                     session=None if dry_run else "dmdb repair") as conn:
            announce(conn, settings)
            accepted = engine.repair(conn, project, ids or None, dry_run=dry_run)
        if as_json:
            print_json({"accepted": accepted, "dry_run": dry_run})
        elif accepted:
            verb = "Would accept" if dry_run else "Accepted"
            console().print(f"{verb} the current content of: " + ", ".join(accepted))
        else:
            console().print("Nothing to repair: no applied file was edited.")

