"""dmdb pgbouncer config."""

from __future__ import annotations

from pathlib import Path

import typer

from dmdb.render import console, print_json

app = typer.Typer(help="PgBouncer in front of the application path.", no_args_is_help=True)


@app.command("config")
def config_cmd(
    ctx: typer.Context,
    out_dir: Path = typer.Option(Path("pgbouncer"), "--out-dir", metavar="DIR",
                                 help="Where to write pgbouncer.ini and userlist.txt (0600)."),
    listen_addr: str = typer.Option("127.0.0.1", "--listen-addr"),
    listen_port: int = typer.Option(6432, "--listen-port", min=1, max=65535),
    pool_mode: str = typer.Option("transaction", "--pool-mode",
                                  help="transaction (the app path), session or statement."),
    unix_socket_dir: str | None = typer.Option(None, "--unix-socket-dir"),
    admin_users: str | None = typer.Option(None, "--admin-users",
                                              help="Users allowed on the admin console."),
    auth_type: str | None = typer.Option(
        None, "--auth-type", metavar="scram-sha-256|trust",
        help="How PgBouncer authenticates clients. Default scram-sha-256, which needs "
             "DB_PASSWORD. trust admits anyone who reaches --listen-addr as the configured "
             "role: development only (docs/security.md)."),
    client_tls_cert: Path | None = typer.Option(
        None, "--client-tls-cert", metavar="FILE",
        help="Certificate PgBouncer presents to its clients; with --client-tls-key, clients "
             "must use TLS (client_tls_sslmode = require)."),
    client_tls_key: Path | None = typer.Option(None, "--client-tls-key", metavar="FILE",
                                                  help="The key of --client-tls-cert."),
    stdout: bool = typer.Option(False, "--stdout", help="Print pgbouncer.ini instead of writing."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
):
    """Render pgbouncer.ini and userlist.txt from the settings (pool size from
    DB_MAX_CONNECTIONS, timeouts from DB_IDLE_TIMEOUT and DB_CONNECT_TIMEOUT).

    TLS to the server follows DB_SSLMODE / sslmode and DB_SSLROOTCERT, DB_SSLCERT,
    DB_SSLKEY (or the same parameters of DATABASE_URL); TLS from the clients needs
    --client-tls-cert and --client-tls-key.

    Example: DB_HOST=10.0.0.5 dmdb pgbouncer config --out-dir /etc/pgbouncer
    """
    from dmdb.db import resolve
    from dmdb.server.pgbouncer import build_config, check_auth, write_config

    settings = ctx.obj.settings()
    if settings.embedded:
        # Refuse before starting the embedded server only to render nothing.
        check_auth(settings, auth_type, listen_addr, listen_port)
        settings = resolve(settings)
    config = build_config(settings, listen_addr=listen_addr, listen_port=listen_port,
                          pool_mode=pool_mode, out_dir=out_dir, unix_socket_dir=unix_socket_dir,
                          admin_users=admin_users, auth_type=auth_type,
                          client_tls_cert=client_tls_cert, client_tls_key=client_tls_key)
    if stdout:
        typer.echo(config.ini, nl=False)
        return
    ini, users = write_config(config, out_dir)
    if as_json:
        print_json({"ini": str(ini), "userlist": str(users), "pool_mode": pool_mode,
                    "listen_port": listen_port})
    else:
        console().print(f"Wrote {ini} and {users}; start with: pgbouncer {ini}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="pgbouncer")
