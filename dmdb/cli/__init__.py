"""The `dmdb` command: a thin Typer layer over the library.

Each command parses its options, calls one library function and renders what it returns.
Errors a user can cause end as one line on stderr and a non-zero exit (2 usage/config,
1 operation failed); `--debug` adds the traceback, to every error.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import typer
from typer.core import TyperGroup

from dmdb.errors import DmdbError, first_line
from dmdb.render import error_line

try:  # Typer >= 0.26 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older Typer on click
    from click import get_current_context
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

# Commands that change the database: the only ones that may initialise a new embedded
# cluster (unless run with --dry-run). Every other command needs an existing one (it may
# start it when stopped) and otherwise fails naming the home and `dmdb up`.
CHANGES_DATABASE = frozenset({
    "up", "rollback", "repair", "seed", "reset", "restore", "server start",
    "partitions create", "partitions rollover", "indexes build", "maintenance vacuum",
    "maintenance refresh",
})
_HELP = ("-h", "--help")


def _argv_debug(args) -> bool:
    return "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args


class DmdbGroup(TyperGroup):
    """The root group: global options anywhere on the line, and every error as one line
    (with the traceback under --debug)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from dmdb.cli.coercion import install

        install(self)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        self._debug = _argv_debug(args)
        if ctx.parent is None and args:
            args = self._normalise(ctx, list(args))
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            self._usage_error(exc)

    def _normalise(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Global options (--sql-dir, --dbname, --debug, ...) after the command move in
        front of it, unless that command has an option of the same name; a command's own
        options written before it (`dmdb --json status`) move after it."""
        takes_value = {}
        for param in self.params:
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("-") and opt not in _HELP:
                    takes_value[opt] = not getattr(param, "is_flag", False)

        def is_global(token: str) -> bool:
            return token.split("=", 1)[0] in takes_value

        front, misplaced = [], []
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
            token = args[i]
            target = front if is_global(token) else misplaced
            target.append(token)
            i += 1
            if "=" in token or i >= len(args) or args[i].startswith("-"):
                continue
            needs_value = (takes_value.get(token, False) if target is front
                           else self.get_command(ctx, args[i]) is None)
            if needs_value:
                target.append(args[i])
                i += 1
        command, path = self, []
        while i < len(args) and isinstance(command, TyperGroup):
            sub = command.get_command(ctx, args[i])
            if sub is None:
                break
            command, path = sub, [*path, args[i]]
            i += 1
        own = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        rest = []
        while i < len(args):
            token = args[i]
            if token == "--":
                rest.extend(args[i:])
                break
            name = token.split("=", 1)[0]
            if path and name in takes_value and name not in own:
                front.append(token)
                i += 1
                if takes_value[name] and "=" not in token and (
                        i >= len(args) or args[i].startswith("--")):
                    # Moved in front as is, it would take the command as its value; and
                    # `--dbname --json` must not name a database "--json" (`=` gives one).
                    self._usage_error(UsageError(f"Option '{name}' requires an argument.", ctx))
                if takes_value[name] and "=" not in token and i < len(args):
                    front.append(args[i])
                    i += 1
                continue
            rest.append(token)
            i += 1
        return [*front, *path, *misplaced, *rest]

    def _usage_error(self, exc: UsageError):
        if getattr(self, "_debug", False):
            # the exception itself: it may be raised here, outside any `except` block
            traceback.print_exception(exc)
        path = exc.ctx.command_path if exc.ctx is not None else "dmdb"
        error_line(f"{exc.format_message()} (see `{path} --help`)")
        sys.exit(2)

    def invoke(self, ctx: typer.Context):
        state = ctx.find_object(AppState)
        debug = bool(state is not None and state.debug) or getattr(self, "_debug", False)

        def fail(message: str, code: int):
            if debug:
                traceback.print_exc()
            error_line(message)
            ctx.exit(code)

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except NoArgsIsHelpError as exc:
            # A group without its subcommand: its help, not an error line holding the help.
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            ctx.exit(2)
        except UsageError as exc:
            # One line, like every other user error, instead of Click's usage block.
            path = exc.ctx.command_path if exc.ctx is not None else "dmdb"
            fail(f"{exc.format_message()} (see `{path} --help`)", 2)
        except ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except DmdbError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; a transaction in progress was rolled back", 130)
        except BrokenPipeError:
            # The reader went away (`dmdb status | head -1`): nobody to tell.
            import os

            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            ctx.exit(1)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}; check that the path exists and is writable "
                 "(DMDB_HOME, --sql-dir, the project file)", 1)
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):  # database errors that escaped
                from dmdb.db import redact

                try:
                    settings = state.settings() if state is not None else None
                except DmdbError:
                    settings = None
                fail(f"database error: {redact(first_line(exc), settings)}", 1)
            hint = "" if debug else " (run with --debug for the traceback)"
            fail(f"unexpected error: {type(exc).__name__}: {first_line(exc)}{hint}", 1)


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
        """Effective settings: flags > environment > .env > project file > defaults; a new
        embedded cluster allowed only for a command that changes the database."""
        if self._settings is None:
            import os

            from dmdb.config import load_settings

            env = dict(os.environ)
            if self.database_url:
                env["DATABASE_URL"] = self.database_url
            settings = load_settings(env)
            self._settings = settings.with_overrides(
                host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                sql_dir=self.sql_dir,
            )
        return _with_create_policy(self._settings)

    def project(self):
        from dmdb.migrate.engine import Project

        return Project(self.settings().sql_dir)


def _with_create_policy(settings):
    from dataclasses import replace

    ctx = get_current_context(silent=True)
    name = " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""
    create = name in CHANGES_DATABASE and not (ctx.params.get("dry_run") if ctx else False)
    return replace(settings, create_embedded=create)


class _StderrLine(logging.Handler):
    """The library's notes on the embedded server, as `dmdb: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"dmdb: {record.getMessage()}\n")
        sys.stderr.flush()


def _log_to_stderr() -> None:
    logger = logging.getLogger("dmdb.server.embedded")
    if not any(isinstance(h, _StderrLine) for h in logger.handlers):
        logger.addHandler(_StderrLine())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _version(value: bool) -> None:
    if value:
        from dmdb import __version__

        typer.echo(f"dmdb {__version__}")
        raise typer.Exit()


_APP_SETTINGS = dict(
    cls=DmdbGroup,
    name="dmdb",
    help=(
        "DriveMaster's PostgreSQL toolkit: schema migrations with paired rollbacks, "
        "partitions, indexes, maintenance, monitoring and sample data.\n\n"
        "Settings: flags > environment > .env > the project file (dmdb.toml or "
        "[tool.dmdb] in pyproject.toml, found upward from here) > defaults; `dmdb config` "
        "shows them. Global options may follow the command.\n\n"
        "With no server configured (DATABASE_URL or DB_HOST), dmdb uses an embedded "
        "PostgreSQL 18 under the project's .dmdb/ (outside a project: ~/.local/share/dmdb, "
        "or $DMDB_HOME). Only commands that change the database create it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": list(_HELP)},
)


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
        "the project's (sql_dir in the project file, else its sql/), outside a project "
        "the one shipped with dmdb.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of any error."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print dmdb's version and exit."),
):
    _log_to_stderr()
    ctx.obj = AppState(database_url, host, port, dbname, user, sql_dir, debug)


# The modules that register commands, in the order of `dmdb --help`, and the top-level
# command names each one adds: a command line needs only its command's module, so
# `dmdb status` neither imports nor builds the other twenty commands
# (tests/test_cli.py checks this table against what the modules register).
_MODULES = ("migrate", "migrate_checks", "config_cmd", "server", "psql_cmd", "partitions",
            "indexes", "maintenance", "monitor", "seed", "pgbouncer", "backup", "models",
            "citus", "privacy", "optimize", "events")
_OPTIONAL = frozenset(_MODULES[5:])
_COMMAND_MODULE = {
    **dict.fromkeys(("up", "rollback", "status", "new", "verify", "repair"), "migrate"),
    **dict.fromkeys(("lint", "drift", "baseline"), "migrate_checks"),
    "config": "config_cmd", "server": "server", "psql": "psql_cmd",
    "partitions": "partitions", "indexes": "indexes", "maintenance": "maintenance",
    "monitor": "monitor", "seed": "seed", "reset": "seed", "pgbouncer": "pgbouncer",
    "backup": "backup", "restore": "backup", "models": "models", "citus": "citus",
    "privacy": "privacy", "optimize": "optimize", "events": "events",
}
# The root options that take a value (their value is never the command).
_ROOT_VALUE_OPTIONS = frozenset(("--database-url", "--host", "--port", "--dbname", "--user",
                                 "--sql-dir"))


def _make_app(modules=_MODULES) -> typer.Typer:
    """The root Typer app with the commands of `modules`."""
    root_app = typer.Typer(**_APP_SETTINGS)
    root_app.callback()(root)
    for name in modules:
        try:
            module = __import__(f"dmdb.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if name in _OPTIONAL and exc.name == f"dmdb.cli.{name}":
                continue
            raise
        module.register(root_app)
    return root_app


def _modules_for(args: list[str]) -> tuple[str, ...]:
    """The one module a command line needs, when its first word is a known command (after
    root options and their values); every module otherwise (help, a typo, a command's
    option with its value written before the command)."""
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            if token in _ROOT_VALUE_OPTIONS:
                i += 1
            i += 1
            continue
        module = _COMMAND_MODULE.get(token)
        return (module,) if module is not None else _MODULES
    return _MODULES


def __getattr__(name: str):
    # `dmdb.cli.app`, the whole command tree (for CliRunner), built on first use.
    if name == "app":
        globals()["app"] = built = _make_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    try:
        _make_app(_modules_for(sys.argv[1:]))(prog_name="dmdb")
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort, outside any command
        if _argv_debug(sys.argv[1:]):
            traceback.print_exc()
        error_line(f"unexpected error: {type(exc).__name__}: {first_line(exc)} "
                   "(run with --debug for the traceback)")
        sys.exit(1)
