"""dmdb server start|stop|status|url: the embedded PostgreSQL."""

from __future__ import annotations

import typer

from dmdb.render import console, print_json

app = typer.Typer(
    help="Manage the embedded PostgreSQL 18 that dmdb uses when no server is configured.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="JSON output.")


def _server(ctx: typer.Context):
    from dmdb.server.embedded import EmbeddedServer

    return EmbeddedServer(ctx.obj.settings().home)


def _url(info, dbname: str, user: str | None = None) -> str:
    from dmdb.config import Settings

    return Settings(host=info.socket_dir, port=info.port, dbname=dbname,
                    user=user or "postgres").url()


@app.command()
def start(
    ctx: typer.Context,
    as_json: bool = JSON,
    replica: bool = typer.Option(
        False, "--replica",
        help="Also create (pg_basebackup -R) and start a streaming standby on its own socket "
        "and port, for trying read routing (DB_READ_REPLICA_HOST/PORT).",
    ),
):
    """Start the embedded server (initialising it under its home the first time: the
    project's .dmdb/, outside a project the per-user one; `dmdb config` shows it).

    Example: dmdb server start --replica
    """
    from dmdb.db import ensure_embedded

    settings = ctx.obj.settings()
    info = ensure_embedded(settings.home, create=True, dbname=settings.dbname)
    data = {**info.__dict__, "url": _url(info, settings.dbname)}
    if replica:
        from dmdb.server.embedded import EmbeddedReplica

        rinfo = EmbeddedReplica(settings.home).start(dbname=settings.dbname)
        data["replica"] = {**rinfo.__dict__, "url": _url(rinfo, settings.dbname)}
    if as_json:
        print_json(data)
        return
    out = console()
    out.print(f"embedded PostgreSQL {info.version} running (pid {info.pid}) at {data['url']}")
    if replica:
        r = data["replica"]
        out.print(f"replica running (pid {r['pid']}) at {r['url']}\n"
                  f"read from it with: DB_READ_REPLICA_HOST={r['socket_dir']} "
                  f"DB_READ_REPLICA_PORT={r['port']}")


@app.command()
def stop(ctx: typer.Context, as_json: bool = JSON):
    """Stop the embedded server (its data stays under its home's data/).

    Example: dmdb server stop
    """
    from dmdb.server.embedded import EmbeddedReplica

    EmbeddedReplica(ctx.obj.settings().home).stop()
    stopped = _server(ctx).stop()
    if as_json:
        print_json({"stopped": stopped})
    else:
        console().print("stopped" if stopped else "not running")


@app.command()
def status(ctx: typer.Context, as_json: bool = JSON):
    """Whether the embedded server runs, where, and its version. Exit 1 when stopped
    or not created yet (this command never starts or creates one).

    Example: dmdb server status --json
    """
    settings = ctx.obj.settings()
    from dmdb.db import NoEmbeddedServer
    from dmdb.server.embedded import EmbeddedReplica

    server = _server(ctx)
    server.server_dir  # noqa: B018 - a home linked to another home's cluster is refused
    if not (server.data_dir / "PG_VERSION").exists():
        raise NoEmbeddedServer(f"no embedded server at {server.home}; run `dmdb up` or set "
                               "DATABASE_URL")
    info = server.info()
    data = {**info.__dict__, "url": _url(info, settings.dbname) if info.running else None}
    rinfo = EmbeddedReplica(settings.home).info()
    if rinfo.running or rinfo.version:
        data["replica"] = {**rinfo.__dict__,
                           "url": _url(rinfo, settings.dbname) if rinfo.running else None}
    if as_json:
        print_json(data)
    else:
        if info.running:
            console().print(f"running: pid {info.pid}, PostgreSQL {info.version}, "
                            f"data {info.data_dir}, url {data['url']}")
        else:
            console().print(f"not running (data directory {info.data_dir})")
    if not info.running:
        raise typer.Exit(1)


@app.command()
def url(ctx: typer.Context):
    """Print the embedded server's connection URL (starting it when stopped; never
    creating it), for psql & co.

    Example: psql "$(dmdb server url)"
    """
    from dmdb.db import ensure_embedded

    settings = ctx.obj.settings()
    info = ensure_embedded(settings.home, create=False)
    typer.echo(_url(info, settings.dbname, settings.user))


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="server")
