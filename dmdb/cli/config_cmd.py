"""dmdb config: the effective settings, where each came from, password redacted."""

from __future__ import annotations

import typer

from dmdb.render import console, print_json, table


def register(app: typer.Typer) -> None:
    @app.command("config")
    def config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON output.")):
        """Print the project file found, the effective settings (flags > environment >
        .env > project file > defaults) and where each came from.

        The password is always shown as ***. Reads files only: starts no server.

        Example: DB_HOST=db.internal dmdb config --json
        """
        from dmdb import resources

        settings = ctx.obj.settings()
        data = settings.redacted()
        data["url"] = settings.url(redact=True) if not settings.embedded else None
        if data["sql_dir"] is None:
            data["sql_dir"] = str(resources.sql_dir())
        data["sources"] = {k: settings.sources.get(k, "default") for k in data
                           if k not in ("url", "embedded")}
        if as_json:
            print_json(data)
            return
        out = console()
        if settings.project_file is not None:
            out.print(f"project file: {settings.project_file}", markup=False)
        else:
            out.print("no project file (dmdb.toml or [tool.dmdb] in pyproject.toml) in this "
                      "directory or above: using the shipped SQL tree and the per-user home",
                      markup=False)
        rows = [(k, "" if v is None else v, data["sources"].get(k, ""))
                for k, v in data.items() if k not in ("url", "sources", "project_file")]
        out.print(table("Effective settings", ("setting", "value", "from"), rows))
        if settings.embedded:
            out.print("No server configured: dmdb uses its embedded PostgreSQL "
                      f"under {settings.home} (`dmdb server status` tells whether it runs).")
