"""The `dmdb` command: a thin Typer layer over the library.

Each command parses its options, calls one library function and renders what it returns.
Errors a user can cause end as one line on stderr and a non-zero exit (2 usage/config,
1 operation failed); `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import typer
from typer.core import TyperGroup

from dmdb.errors import DmdbError, first_line
from dmdb.render import error_line

try:  # Typer >= 0.26 vendors click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older Typer on click
    from click.exceptions import UsageError


class DmdbGroup(TyperGroup):
    """Turns DmdbError (and connection/database errors) into one line and an exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            # One line, like every other user error, instead of Click's usage block.
            path = exc.ctx.command_path if exc.ctx is not None else "dmdb"
            error_line(f"{exc.format_message()} (see `{path} --help`)")
            ctx.exit(2)
        except DmdbError as exc:
            state = ctx.find_object(AppState)
            if state is not None and state.debug:
                traceback.print_exc()
            error_line(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            error_line("interrupted; a transaction in progress was rolled back")
            ctx.exit(130)
        except Exception as exc:  # database errors that escaped the library
            if type(exc).__module__.startswith("psycopg"):
                state = ctx.find_object(AppState)
                if state is not None and state.debug:
                    traceback.print_exc()
                from dmdb.db import redact

                first = first_line(exc)
                try:
                    settings = state.settings() if state is not None else None
                except DmdbError:
                    settings = None
                error_line(f"database error: {redact(first, settings)}")
                ctx.exit(1)
            raise


@dataclass
class AppState:
    database_url: str | None = None
    host: str | None = None
    port: int | None = None
    dbname: str | None = None
    user: str | None = None
    sql_dir: Path | None = None
    debug: bool = False
    _settings: object = field(default=None, repr=False)

    def settings(self):
        """Effective settings: flags > environment > .env."""
        if self._settings is None:
            import os

            from dmdb.config import load_settings

            env = dict(os.environ)
            if self.database_url:
                env["DATABASE_URL"] = self.database_url
            settings = load_settings(env)
            self._settings = settings.with_overrides(
                host=self.host, port=self.port, dbname=self.dbname, user=self.user
            )
        return self._settings

    def project(self):
        import os

        from dmdb.migrations import Project

        env_dir = os.environ.get("DMDB_SQL_DIR")
        sql_dir = self.sql_dir or (Path(env_dir) if env_dir else None)
        return Project(sql_dir)


app = typer.Typer(
    cls=DmdbGroup,
    name="dmdb",
    help=(
        "DriveMaster's PostgreSQL toolkit: schema migrations with paired rollbacks, "
        "partitions, indexes, maintenance, monitoring and sample data.\n\n"
        "With no server configured (DATABASE_URL or DB_HOST), dmdb starts an embedded "
        "PostgreSQL 18 under ./.dmdb (or $DMDB_HOME) and keeps it running."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None, "--database-url", metavar="URL",
        help="postgresql://user@host:port/db; overrides DATABASE_URL and DB_* (prefer the "
        "environment for passwords).",
    ),
    host: str | None = typer.Option(None, "--host", help="Server host or socket directory (DB_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Server port (DB_PORT)."),
    dbname: str | None = typer.Option(None, "--dbname", help="Database name (DB_NAME)."),
    user: str | None = typer.Option(None, "--user", help="Role to connect as (DB_USER)."),
    sql_dir: Path | None = typer.Option(
        None, "--sql-dir", metavar="DIR",
        help="SQL tree with migrations/, rollbacks/, functions/ (DMDB_SQL_DIR); default: "
        "the one shipped with dmdb.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
):
    ctx.obj = AppState(database_url, host, port, dbname, user, sql_dir, debug)


def _register() -> None:
    from dmdb.cli import config_cmd, migrate, server

    migrate.register(app)
    config_cmd.register(app)
    server.register(app)
    for name in ("partitions", "indexes", "maintenance", "monitor", "seed", "pgbouncer",
                 "backup", "models"):
        try:
            module = __import__(f"dmdb.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == f"dmdb.cli.{name}":
                continue
            raise
        module.register(app)


_register()


def main() -> None:
    try:
        app(prog_name="dmdb")
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort, no traceback for users
        error_line(f"unexpected error: {exc} (run with --debug for the traceback)")
        sys.exit(1)
