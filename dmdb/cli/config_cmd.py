"""dmdb config: the effective settings, password redacted."""

from __future__ import annotations

import typer

from dmdb.render import console, print_json, table


def register(app: typer.Typer) -> None:
    @app.command("config")
    def config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON output.")):
        """Print the effective settings (flags > environment > .env) and where each came from.

        The password is always shown as ***.

        Example: DB_HOST=db.internal dmdb config --json
        """
        settings = ctx.obj.settings()
        data = settings.redacted()
        data["url"] = settings.url(redact=True) if not settings.embedded else None
        if as_json:
            print_json(data)
            return
        rows = [(k, "" if v is None else v, settings.sources.get(k, "default"))
                for k, v in data.items() if k not in ("url",)]
        console().print(table("Effective settings", ("setting", "value", "from"), rows))
        if settings.embedded:
            console().print("No server configured: dmdb uses its embedded PostgreSQL "
                            f"under {settings.home} (`dmdb server url` prints its URL).")
