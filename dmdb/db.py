"""Connections: resolve the settings (starting the embedded server if need be), connect,
set the session up, and turn connection failures into one redacted line.

A connection through a transaction pooler (PgBouncer, Supavisor, RDS Proxy) shares its
server connection with the application: nothing dmdb sets may outlive a transaction
there, and work that needs a session of its own goes to DMDB_DIRECT_URL or is refused.
"""

from __future__ import annotations

import logging
import re
import weakref
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from dmdb.config import Settings
from dmdb.errors import ConnectError, DmdbError, first_line

if TYPE_CHECKING:
    import psycopg

    from dmdb.server.embedded import ServerInfo

# What dmdb did to the embedded server (initialised, started): the CLI prints these
# records as one line on stderr; a library user sees them through logging.
log = logging.getLogger("dmdb.server.embedded")


class NoEmbeddedServer(ConnectError):
    """A read-only command found no embedded cluster: it never creates one."""


def ensure_embedded(home, *, create: bool, dbname: str | None = None) -> ServerInfo:
    """The embedded server under `home`, running: started if stopped, initialised first
    only when `create` (commands that change the database). Logs what it did, once."""
    from pathlib import Path

    from dmdb.server.embedded import DEFAULT_DBNAME, ClusterMissing, EmbeddedServer

    server = EmbeddedServer(Path(home))
    try:
        # Whether a cluster exists is decided under the server's lock, after the clean-up
        # of deleted homes' clusters, and a home linked to another home's cluster (a
        # copied project) or to a deleted one is refused there: never an initdb.
        info = server.start(dbname=dbname or DEFAULT_DBNAME, create=create)
    except ClusterMissing:
        raise NoEmbeddedServer(
            f"no embedded server at {server.home}; run `dmdb up` or set DATABASE_URL"
        ) from None
    except ConnectError:
        raise
    except DmdbError as exc:  # whatever kept it from starting: the server is unreachable
        from dmdb.server.postmaster import ServerStartError

        raise ServerStartError(str(exc), exit_code=exc.exit_code) from None
    if server.started:
        done = "initialised and started a new" if server.initialised else "started"
        log.info("%s embedded PostgreSQL %s at %s (pid %s); stop it with `dmdb server stop`",
                 done, info.version, server.home, info.pid)
    return info


def resolve(settings: Settings) -> Settings:
    """Settings that point at a real server: for the embedded default, start it first
    (initialise it only when `settings.create_embedded`)."""
    if not settings.embedded:
        return settings
    from dmdb.server.embedded import DEFAULT_DBNAME, SUPERUSER

    # Only the default database is created implicitly: a mistyped DB_NAME must be an
    # error, not a new empty database (`dmdb server start` creates a named one on purpose).
    info = ensure_embedded(settings.home, create=settings.create_embedded, dbname=DEFAULT_DBNAME)
    # The owner's OS user may connect as any role (peer, the ident map): DB_USER / --user
    # are honoured, so grants can be tried locally (a login role in dm_readonly, say);
    # without one, the superuser.
    return replace(settings, host=info.socket_dir, port=info.port,
                   user=settings.user or SUPERUSER)


def redact(text: str, settings: Settings | None = None) -> str:
    """Remove passwords from a message: the configured one and any URL's."""
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    # A mistyped URL (`postgresql//u:pw@h`) is quoted whole by libpq's parse error.
    text = re.sub(r"((?:^|[/\s\"'])[^:/@\s\"']+:)(?!\*\*\*@)[^@/\s\"']+@", r"\1***@", text)
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text,
                  flags=re.IGNORECASE)
    if settings is not None and settings.password:
        text = text.replace(settings.password, "***")
    return text


def describe_target(settings: Settings, *, replica: bool = False) -> str:
    host = settings.read_replica_host if replica else settings.host
    port = (settings.read_replica_port or settings.port) if replica else settings.port
    return f"{host}:{port}/{settings.dbname}"


@dataclass(frozen=True)
class Target:
    """The database a command works on, as the connection found it (never the password):
    commands that change a database name it first, as Flyway does."""

    server: str  # host:port (or socket directory:port); the embedded server's home
    database: str
    role: str
    version: str  # server_version, e.g. "18.1"
    embedded: bool = False

    def describe(self) -> str:
        where = (f"the embedded server at {self.server}" if self.embedded else self.server)
        return (f"database {self.database} on {where} as {self.role} "
                f"(PostgreSQL {self.version})")

    def to_dict(self) -> dict:
        return asdict(self)


def target(conn: psycopg.Connection, settings: Settings | None = None) -> Target:
    """What `conn` is connected to: server, database, login role and server version (from
    the connection itself, so DMDB_DIRECT_URL and multi-host URLs show where it went)."""
    info = conn.info
    version = info.parameter_status("server_version") or b""
    version = version.decode() if isinstance(version, bytes) else str(version)
    embedded = settings is not None and settings.embedded
    server = (str(settings.home) if embedded
              else f"{info.host}:{info.port}")
    return Target(server=server, database=info.dbname, role=info.user,
                  version=version.split()[0] if version else "?", embedded=embedded)


# Whether a connection goes through a transaction pooler, found once per connection.
_POOLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def connect(
    settings: Settings,
    *,
    replica: bool = False,
    autocommit: bool = False,
    dbname: str | None = None,
    lock_timeout: str | None = None,
    session: str | None = None,
) -> psycopg.Connection:
    """A psycopg connection with application_name 'dmdb' and, for writers, a lock_timeout.

    `session` names a command that needs a session of its own (advisory locks, session
    settings): it connects to DMDB_DIRECT_URL when one is set, and refuses, in one line,
    a connection that still goes through a transaction pooler. Through a pooler a
    connection carries no session state at all (no lock_timeout, no server-side prepared
    statements): the pooled server connection goes back to the pool as it came."""
    import psycopg

    settings = resolve(settings.session() if session else settings)
    try:
        conn = psycopg.connect(
            **settings.conninfo(replica=replica, dbname=dbname), autocommit=autocommit
        )
    except psycopg.OperationalError as exc:
        first = redact(first_line(exc), settings)
        target = describe_target(settings, replica=replica)
        hint = connect_hint(str(exc), settings, replica=replica)
        raise ConnectError(f"cannot connect to {target}: {first}; {hint}") from None
    if not settings.embedded and behind_pooler(conn):  # the embedded server is never pooled
        if session:
            conn.close()
            raise DmdbError(_session_refusal(session, settings))
        conn.prepare_threshold = None  # prepared statements stay on one server connection
        return conn
    if lock_timeout or settings.lock_timeout:
        conn.execute("SELECT set_config('lock_timeout', %s, false)",
                      (lock_timeout or settings.lock_timeout,))
        if not autocommit:
            conn.commit()
    return conn


def _session_refusal(what: str, settings: Settings) -> str:
    where = "DMDB_DIRECT_URL" if settings.sources.get("direct_url") else "DATABASE_URL"
    return (f"{what} needs a PostgreSQL session of its own (advisory locks, session "
            f"settings, long statements), but {where} "
            f"({describe_target(settings)}) goes through a transaction pooler such as "
            "PgBouncer; set DMDB_DIRECT_URL to the server's own address (Supabase, Neon, "
            "Azure and RDS Proxy give a pooled and a direct one), or run it with --dry-run")


def connect_hint(message: str, settings: Settings, *, replica: bool = False) -> str:
    """The fix for a connection failure, by its cause (libpq's message is all we get:
    a failed connection carries no SQLSTATE); for the read replica, naming its settings."""
    hint = _connect_hint(message, settings)
    if replica:
        hint = (hint.replace("DB_HOST / DB_PORT", "DB_READ_REPLICA_HOST / DB_READ_REPLICA_PORT")
                .replace("fix DB_HOST", "fix DB_READ_REPLICA_HOST"))
    return hint


def _connect_hint(message: str, settings: Settings) -> str:
    text = message.lower()
    user = settings.user or "the login role"
    if "role" in text and "does not exist" in text:
        return (f"the server has no role {user}; create it (CREATE ROLE ... LOGIN) "
                "or fix DB_USER (the URL's user)")
    if "database" in text and "does not exist" in text:
        return (f"the server has no database {settings.dbname}; create it (createdb, or "
                "`dmdb --dbname NAME server start` for the embedded one) or fix DB_NAME")
    if "password authentication failed" in text or "no password supplied" in text:
        return "wrong or missing password; check DB_USER / DB_PASSWORD (or the URL's credentials)"
    if "pg_hba.conf" in text:
        return ("the server's pg_hba.conf does not admit this host/role/database; ask its "
                "administrator for an entry, or check DB_SSLMODE")
    if "timeout expired" in text or "timed out" in text:
        return (f"no answer within DB_CONNECT_TIMEOUT={settings.connect_timeout}s; check "
                "DB_HOST / DB_PORT, a firewall in between, or raise DB_CONNECT_TIMEOUT")
    if "could not translate host name" in text or "name or service not known" in text:
        return "unknown host name; fix DB_HOST (or the URL's host)"
    if "connection refused" in text or "no such file or directory" in text:
        return ("nothing listens there; check DB_HOST / DB_PORT and that the server is "
                "running")
    if "ssl" in text:
        return "TLS failed; check DB_SSLMODE and the server's SSL settings"
    return "check DB_HOST / DB_PORT and that the server is running"


def connect_read(settings: Settings, *, warn=None, **kwargs) -> psycopg.Connection:
    """A connection for read-only work: the replica when one is configured and reachable,
    else the primary (with a warning through `warn`, never a failure)."""
    if settings.read_replica_host:
        try:
            return connect(settings, replica=True, **kwargs)
        except ConnectError as exc:
            if warn is not None:
                warn(f"read replica unreachable, reading from the primary instead ({exc})")
    return connect(settings, **kwargs)


def retry_on_lock_timeout(action, *, attempts: int = 5, base_delay: float = 0.2, on_retry=None):
    """Run `action()`; when it fails with lock_not_available (lock_timeout expired) or a
    deadlock, wait with exponential backoff and try again, up to `attempts` times.

    `action` must open and finish its own transaction, so each attempt starts clean.
    """
    import random
    import time

    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
            if attempt == attempts:
                raise
            delay = base_delay * (2 ** (attempt - 1)) * (1 + random.random() / 2)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            time.sleep(delay)


# How often a long statement's server process checks that its client is still there.
CLIENT_CHECK_INTERVAL = "1s"


def die_with_client(conn: psycopg.Connection, interval: str = CLIENT_CHECK_INTERVAL) -> None:
    """Make the server abandon this session's statement soon after its client is gone.

    A backend notices a vanished client only when it next reads from or writes to the
    socket, so a killed `dmdb` would leave its CREATE INDEX CONCURRENTLY, VACUUM or row
    move running — and its session advisory lock held — until the statement ends.
    `client_connection_check_interval` (PostgreSQL 14+, Linux) polls the socket while a
    statement runs; the statement is cancelled and the session ends, freeing its locks.
    Best effort: platforms without the check refuse a non-zero value, and the work then
    runs as before. For an autocommit connection (the long operations use one).
    """
    import psycopg

    if behind_pooler(conn):
        return  # the pooled server connection is not ours to change, and outlives us
    try:
        conn.execute("SELECT set_config('client_connection_check_interval', %s, false)",
                     (interval,))
    except psycopg.Error:
        if not conn.autocommit:
            conn.rollback()


def try_advisory_lock(conn: psycopg.Connection, key: int, wait_seconds: float = 0.0) -> bool:
    """Take a session advisory lock, polling with backoff for up to `wait_seconds`.

    False when another session still holds it. A session lock is freed by PostgreSQL when
    its session ends, so a killed run never leaves it behind.
    """
    import time

    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.5)


def advisory_unlock(conn: psycopg.Connection, key: int) -> None:
    if not conn.closed:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def behind_pooler(conn: psycopg.Connection) -> bool:
    """True when a connection pooler sits between us and PostgreSQL (found once per
    connection).

    PgBouncer hands its clients a cancel key of its own, so the backend pid that libpq
    received at login is not the pid of the server process that answers queries.
    """
    if conn in _POOLED:
        return _POOLED[conn]
    real = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    if not conn.autocommit:
        conn.rollback()
    _POOLED[conn] = pooled = conn.info.backend_pid != real
    return pooled


def extensions_refused(conn: psycopg.Connection, names, *, keep: bool = True) -> set[str]:
    """The extensions of `names` this role may not create in `conn`'s database (autocommit).
    Each is tried (`keep`: left created for what follows; else rolled back): the privilege
    is tried, not inferred from rolsuper, since rds_superuser, azure_pg_admin and
    cloudsqlsuperuser may create some. Another failure (already there, not available)
    is not a refusal of the role."""
    import psycopg
    from psycopg import sql

    refused = set()
    for name in sorted(names):
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(
                    sql.Identifier(name)))
                if not keep:
                    raise psycopg.Rollback()
        except psycopg.errors.InsufficientPrivilege:
            refused.add(name)
        except psycopg.Error:
            if keep:
                raise
    return refused
