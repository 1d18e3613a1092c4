"""`dmdb pgbouncer config`: a pgbouncer.ini and userlist.txt rendered from the settings.

Pool sizes come from DB_MAX_CONNECTIONS, timeouts from DB_IDLE_TIMEOUT and
DB_CONNECT_TIMEOUT. The application path runs through it in transaction pooling; with
PgBouncer older than 1.21 the client must not use server-side prepared statements
(psycopg: `prepare_threshold=None`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from dmdb.config import Settings
from dmdb.errors import ConfigError
from dmdb.scaffold import render

POOL_MODES = ("transaction", "session", "statement")


@dataclass
class PgBouncerConfig:
    ini: str
    userlist: str
    listen_port: int
    pool_mode: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["userlist"] = "(written to file, not printed)"
        return data


def build_config(
    settings: Settings,
    *,
    listen_addr: str = "127.0.0.1",
    listen_port: int = 6432,
    pool_mode: str = "transaction",
    out_dir: Path = Path("."),
    unix_socket_dir: str | None = None,
    admin_users: str | None = None,
) -> PgBouncerConfig:
    if pool_mode not in POOL_MODES:
        raise ConfigError(f"--pool-mode {pool_mode}: use one of {', '.join(POOL_MODES)}")
    if settings.host is None:
        raise ConfigError("no server configured to pool; set DB_HOST/DATABASE_URL "
                          "(or run `dmdb server start` and pass its socket as --host)")
    user = settings.user or "postgres"
    out_dir = out_dir.absolute()
    password = settings.password
    ini = render(
        "pgbouncer.ini.j2",
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dbname=settings.dbname, host=settings.host, port=settings.port,
        server_user=user if settings.user else None,
        listen_addr=listen_addr, listen_port=listen_port, unix_socket_dir=unix_socket_dir,
        auth_type="scram-sha-256" if password else "trust",
        auth_file=str(out_dir / "userlist.txt"), pool_mode=pool_mode,
        default_pool_size=settings.max_connections,
        min_pool_size=max(0, settings.max_connections // 4),
        reserve_pool_size=max(1, settings.max_connections // 10),
        max_client_conn=max(100, settings.max_connections * 10),
        server_idle_timeout=settings.idle_timeout,
        server_connect_timeout=settings.connect_timeout,
        admin_users=admin_users, logfile=str(out_dir / "pgbouncer.log"),
        pidfile=str(out_dir / "pgbouncer.pid"),
    )
    # PgBouncer needs the password itself to log in to PostgreSQL with SCRAM; the file is
    # written 0600 and never printed.
    userlist = render("userlist.txt.j2", users=[(user, password or "")])
    return PgBouncerConfig(ini, userlist, listen_port, pool_mode)


def write_config(config: PgBouncerConfig, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ini, users = out_dir / "pgbouncer.ini", out_dir / "userlist.txt"
    ini.write_text(config.ini)
    fd = os.open(users, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise, password and all
    with os.fdopen(fd, "w") as handle:
        handle.write(config.userlist)
    return ini, users
