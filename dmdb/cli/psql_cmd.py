"""dmdb psql: an interactive psql on the configured database."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("psql", context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})
    def psql(
        ctx: typer.Context,
        args: list[str] | None = typer.Argument(
            None, metavar="[-- PSQL-ARGS...]", help="Passed to psql, e.g. -- -c 'SELECT 1'."),
    ):
        """Open psql (the embedded package's client) on the configured database.

        The embedded server is started if it exists and is stopped; it is never created
        here (`dmdb up` does that). The password goes through PGPASSWORD.

        Example: dmdb psql -- -Atc 'SELECT count(*) FROM users'
        """
        import signal
        import subprocess

        from dmdb.db import resolve
        from dmdb.server.psql import psql_command

        command = psql_command(resolve(ctx.obj.settings()), [*(args or []), *ctx.args])
        child = subprocess.Popen(command.argv, env=command.env)
        # Ctrl-C belongs to psql (it cancels the running query); dmdb just waits.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            code = child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
        raise typer.Exit(code)
