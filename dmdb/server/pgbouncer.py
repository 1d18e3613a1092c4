"""`dmdb pgbouncer config`: a pgbouncer.ini and userlist.txt rendered from the settings.

Pool sizes come from DB_MAX_CONNECTIONS, timeouts from DB_IDLE_TIMEOUT and
DB_CONNECT_TIMEOUT. The application path runs through it in transaction pooling; with
PgBouncer older than 1.21 the client must not use server-side prepared statements
(psycopg: `prepare_threshold=None`).

Every value is escaped by PgBouncer's own rules or refused: connection-string values in
single quotes with '' for a quote, userlist fields in double quotes with "" for a quote,
no control character anywhere (its files are line-based), and database names limited to
the characters PgBouncer reads unquoted (1.18 rejects a quoted name as a syntax error).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from dmdb.config import Settings
from dmdb.errors import ConfigError
from dmdb.files import private_dir, refuse_control, write_private
from dmdb.resources import render_template

POOL_MODES = ("transaction", "session", "statement")
AUTH_TYPES = ("scram-sha-256", "trust")
_DB_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_PLAIN_CONN_VALUE = re.compile(r"[^\s']+")


def db_key(name: str) -> str:
    """A [databases] key: the name clients ask for."""
    if not _DB_KEY.fullmatch(name):
        raise ConfigError(f"database name {name!r} cannot be a PgBouncer [databases] key "
                          "(letters, digits, _ . - only); rename the database or write "
                          "that line by hand")
    return name


def conn_value(value: str, what: str) -> str:
    """A value in a [databases] connection string: bare when it has no space or quote,
    else in single quotes with '' for a quote."""
    refuse_control(value, what)
    if not value:
        raise ConfigError(f"{what} is empty; PgBouncer refuses an empty value")
    if _PLAIN_CONN_VALUE.fullmatch(value):
        return value
    return "'" + value.replace("'", "''") + "'"


def ini_value(value: str, what: str) -> str:
    """A [pgbouncer] value: the rest of its line, trimmed, so no control character and no
    surrounding space."""
    refuse_control(value, what)
    if value != value.strip():
        raise ConfigError(f"{what} {value!r} starts or ends with a space; remove it")
    return value


def userlist_field(value: str, what: str) -> str:
    """A userlist.txt field: in double quotes, with "" for a quote."""
    refuse_control(value, what)
    return '"' + value.replace('"', '""') + '"'


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
    auth_type: str | None = None,
    client_tls_cert: Path | None = None,
    client_tls_key: Path | None = None,
) -> PgBouncerConfig:
    if pool_mode not in POOL_MODES:
        raise ConfigError(f"--pool-mode {pool_mode}: use one of {', '.join(POOL_MODES)}")
    if auth_type is not None and auth_type not in AUTH_TYPES:
        raise ConfigError(f"--auth-type {auth_type}: use one of {', '.join(AUTH_TYPES)}")
    if settings.host is None:
        raise ConfigError("no server configured to pool; set DB_HOST/DATABASE_URL "
                          "(or run `dmdb server start` and pass its socket as --host)")
    user = settings.user or "postgres"
    out_dir = out_dir.absolute()
    password = settings.password
    admins = None
    if admin_users:
        admins = ",".join(ini_value(name.strip(), "--admin-users entry")
                          for name in admin_users.split(",") if name.strip())
    values = dict(
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        db_key=db_key(settings.dbname),
        host=conn_value(str(settings.host), "DB_HOST"),
        port=conn_value(str(settings.port), "DB_PORT"),
        dbname=conn_value(settings.dbname, "DB_NAME"),
        server_user=conn_value(user, "DB_USER") if settings.user else None,
        listen_addr=ini_value(listen_addr, "--listen-addr"), listen_port=listen_port,
        unix_socket_dir=ini_value(unix_socket_dir, "--unix-socket-dir") if unix_socket_dir
        else None,
        auth_file=ini_value(str(out_dir / "userlist.txt"), "--out-dir"), pool_mode=pool_mode,
        default_pool_size=settings.max_connections,
        min_pool_size=max(0, settings.max_connections // 4),
        reserve_pool_size=max(1, settings.max_connections // 10),
        max_client_conn=max(100, settings.max_connections * 10),
        server_idle_timeout=settings.idle_timeout,
        server_connect_timeout=settings.connect_timeout,
        admin_users=admins, logfile=ini_value(str(out_dir / "pgbouncer.log"), "--out-dir"),
        pidfile=ini_value(str(out_dir / "pgbouncer.pid"), "--out-dir"),
    )
    values.update(_tls(settings, client_tls_cert, client_tls_key))
    # Checked after every value is known to be clean, so the message can name them.
    auth = _auth_type(auth_type, password, values["listen_addr"], listen_port)
    ini = render_template("pgbouncer.ini.j2", auth_type=auth, **values)
    # PgBouncer needs the password itself to log in to PostgreSQL with SCRAM; the file is
    # written 0600 and never printed (nor is the password in an error).
    try:
        secret = userlist_field(password or "", "DB_PASSWORD")
    except ConfigError:
        raise ConfigError("DB_PASSWORD holds a control character (newline, tab...), which "
                          "a userlist.txt line cannot carry; change the password") from None
    userlist = render_template("userlist.txt.j2", users=[(userlist_field(user, "DB_USER"), secret)])
    return PgBouncerConfig(ini, userlist, listen_port, pool_mode)


def _tls(settings: Settings, cert: Path | None, key: Path | None) -> dict:
    """PgBouncer's TLS from the same settings dmdb connects with: to the server, its sslmode
    and CA (and client certificate); to the clients, the certificate and key given."""
    libpq = dict(settings.libpq)
    out: dict = {"server_tls": None, "client_tls": None}
    if settings.sslmode and settings.sslmode != "disable":
        server = {"sslmode": ini_value(settings.sslmode, "DB_SSLMODE"), "ca_file": None,
                  "cert_file": None, "key_file": None}
        for name, key_name in (("ca_file", "sslrootcert"), ("cert_file", "sslcert"),
                               ("key_file", "sslkey")):
            value = libpq.get(key_name)
            if value and value != "system":  # PgBouncer's default is the system's store
                server[name] = ini_value(str(Path(value).absolute()), f"DB_{key_name.upper()}")
        out["server_tls"] = server
    elif any(k in libpq for k in ("sslrootcert", "sslcert", "sslkey")):
        raise ConfigError("DB_SSLROOTCERT/DB_SSLCERT/DB_SSLKEY are set but DB_SSLMODE is not: "
                          "set DB_SSLMODE (e.g. verify-full) so PgBouncer uses TLS to the server")
    if (cert is None) != (key is None):
        raise ConfigError("--client-tls-cert and --client-tls-key go together; give both")
    if cert is not None and key is not None:
        out["client_tls"] = {
            "cert_file": ini_value(str(cert.absolute()), "--client-tls-cert"),
            "key_file": ini_value(str(key.absolute()), "--client-tls-key"),
        }
    return out


def check_auth(settings: Settings, auth_type: str | None, listen_addr: str,
               listen_port: int) -> str:
    """The auth_type to render, or the refusal; callable before any server is touched."""
    if auth_type is not None and auth_type not in AUTH_TYPES:
        raise ConfigError(f"--auth-type {auth_type}: use one of {', '.join(AUTH_TYPES)}")
    return _auth_type(auth_type, settings.password, ini_value(listen_addr, "--listen-addr"),
                      listen_port)


def _auth_type(chosen: str | None, password: str | None, listen_addr: str,
               listen_port: int) -> str:
    """scram-sha-256 needs the password; `trust` lets anyone who reaches the listening
    address in as the pooled role (with the embedded server, a superuser), so it is only
    rendered when asked for by name."""
    if chosen == "trust":
        return chosen
    if not password:
        wanted = "--auth-type scram-sha-256 needs" if chosen else "PgBouncer needs"
        raise ConfigError(
            f"DB_PASSWORD is not set: {wanted} it to authenticate clients (without it anyone "
            f"reaching {listen_addr}:{listen_port} would get in as the pooled role); set "
            "DB_PASSWORD, or pass --auth-type trust for a private development setup (see docs/security.md)")
    return "scram-sha-256"


def write_config(config: PgBouncerConfig, out_dir: Path) -> tuple[Path, Path]:
    private_dir(out_dir)
    ini, users = out_dir / "pgbouncer.ini", out_dir / "userlist.txt"
    write_private(ini, config.ini, mode=0o644)  # no secret in it; never through a link
    write_private(users, config.userlist)
    return ini, users
