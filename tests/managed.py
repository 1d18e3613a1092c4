"""A "managed-like" PostgreSQL for tests: what dmdb sees on RDS, Cloud SQL, Azure or Supabase.

`start(folder, bin_dir)` builds and starts, in `folder`:

- a PostgreSQL (from `bin_dir`, a build with OpenSSL) that admits TLS + SCRAM logins from
  127.0.0.1 only (pg_hba.conf rejects every non-TLS connection, and has no `local` line);
  its bootstrap superuser `provider_admin` is the provider's, not the customer's;
- the customer's roles: `dm_owner` (NOSUPERUSER CREATEDB CREATEROLE, member of pg_monitor,
  owner of database `dmdb`) and `dm_monitor_login` (LOGIN only, for the tests to grant
  dm_readonly to); pg_stat_statements preloaded and created in `dmdb` by the superuser;
- a PgBouncer in transaction-pooling mode in front of it, TLS on both sides (clients must
  use TLS; it verifies the server's certificate and name).

A throw-away CA signs the server's certificate (CN localhost, SAN localhost and 127.0.0.1),
so every URL uses sslmode=verify-full with that CA. `ManagedServer.stop()` stops both;
`load(folder)` finds a running one again (for .ci/managed_server.py stop).

PostgreSQL and PgBouncer refuse to run as root: as root they run as the embedded server's
OS user (dmdb.server.embedded.SYSTEM_USER), which owns the folder's subdirectories; the
directories above `folder` get search permission (o+x, not read) so that it can reach
them, as tests/conftest.py start_pgbouncer does. When that user cannot execute `bin_dir`
(a checkout under /root), the installation is copied into the folder first.

No pytest here: .ci/managed_server.py uses it too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from dmdb.server.embedded import _as_system_user, _system_user

HOST = "127.0.0.1"
ADMIN = "provider_admin"
OWNER = "dm_owner"
MONITOR_LOGIN = "dm_monitor_login"
DBNAME = "dmdb"
STATE_FILE = "managed.json"
START_TIMEOUT = 60

# A throw-away cluster: durability traded for speed, and a small footprint (2-core CI).
SERVER_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "password_encryption": "'scram-sha-256'",
    "ssl": "on",
    "ssl_cert_file": "'{tls}/server.crt'",
    "ssl_key_file": "'{tls}/server.key'",
    "shared_preload_libraries": "'pg_stat_statements'",
    "max_connections": "100",
    "shared_buffers": "'32MB'",
    "maintenance_work_mem": "'32MB'",
    "max_wal_size": "'256MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}

# Loopback only, TLS only, SCRAM only. The `reject` lines come first so that a non-TLS
# login is refused outright (as on RDS with rds.force_ssl=1) instead of falling through
# to "no pg_hba.conf entry". Replication is admitted for the owner, over TLS, once a test
# grants it REPLICATION (it has not by default, as on most providers).
PG_HBA = f"""\
# managed-like lane (tests/managed.py): TLS + SCRAM from loopback, nothing else
hostnossl all         all      0.0.0.0/0     reject
hostnossl all         all      ::/0          reject
hostssl   replication {OWNER} {HOST}/32  scram-sha-256
hostssl   all         all      {HOST}/32  scram-sha-256
"""

# What a provider's pooler does, PgBouncer 1.18 in transaction mode:
# - ignore_startup_parameters = extra_float_digits only, the usual managed setting (JDBC
#   sends it). `options` is NOT ignored: PgBouncer would silently drop `-c lock_timeout=..`
#   and the client would believe it applied; refused, the client learns it must SET it.
# - no Unix socket, no admin console users: the customer only gets the TCP port.
# - server_reset_query is not run in transaction mode (server_reset_query_always = 0):
#   session state leaks between clients, as on a real transaction pooler.
# - server_round_robin = 0 (the default, spelled out: tests/test_managed_server.py relies on
#   it): an idle server connection is reused LIFO, the one a client released last.
PGBOUNCER_INI = """\
[databases]
{dbname} = host={host} port={pg_port} dbname={dbname}
postgres = host={host} port={pg_port} dbname=postgres

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
server_round_robin = 0
max_client_conn = 100
default_pool_size = 10
auth_type = scram-sha-256
auth_file = {run}/userlist.txt
ignore_startup_parameters = extra_float_digits
client_tls_sslmode = require
client_tls_cert_file = {tls}/server.crt
client_tls_key_file = {tls}/server.key
server_tls_sslmode = verify-full
server_tls_ca_file = {tls}/ca.crt
logfile = {run}/pgbouncer.log
pidfile = {run}/pgbouncer.pid
"""


@dataclass
class ManagedServer:
    """A running lane: its URLs (user:password@127.0.0.1, sslmode=verify-full), files, pids."""

    folder: str
    bin_dir: str
    ca_file: str
    pg_port: int
    pooler_port: int
    pg_pid: int
    pooler_pid: int
    passwords: dict[str, str]
    admin_url: str
    owner_url: str
    monitor_url: str
    pooled_owner_url: str
    pooled_monitor_url: str

    def url(self, user: str, password: str, *, pooled: bool = False, dbname: str = DBNAME) -> str:
        """URL for another role or database (one a test made); pooled: through PgBouncer."""
        return _url(user, password, self.pooler_port if pooled else self.pg_port, dbname,
                    Path(self.ca_file))

    def sync_pooler_users(self) -> None:
        """Give PgBouncer the SCRAM secrets of every login role (but the provider's), after a
        test made or changed one, and make it reload them."""
        _write_userlist(Path(self.folder), self.admin_url)
        _reload_pooler(Path(self.folder))

    def stop(self) -> None:
        """Stop PgBouncer, then PostgreSQL (fast shutdown). Safe to call twice."""
        _stop_pooler(Path(self.folder))
        _stop_postgres(Path(self.folder), Path(self.bin_dir))


def start(folder: Path, bin_dir: Path) -> ManagedServer:
    """Build the lane in `folder` (new or empty) with PostgreSQL from `bin_dir`, start it."""
    folder = Path(folder).absolute()
    _prepare_folder(folder)
    bin_dir = _reachable_bin_dir(Path(bin_dir).absolute(), folder)
    passwords = {role: secrets.token_urlsafe(24) for role in (ADMIN, OWNER, MONITOR_LOGIN)}
    _make_certificates(folder / "tls")
    try:
        _initdb(folder, bin_dir, passwords[ADMIN])
        pg_port = _start_postgres(folder, bin_dir)
        ca = folder / "tls" / "ca.crt"
        _provision(pg_port, ca, passwords)
        _write_userlist(folder, _url(ADMIN, passwords[ADMIN], pg_port, DBNAME, ca))
        pooler_port = _start_pooler(folder, pg_port)
    except BaseException:
        _stop_pooler(folder)
        _stop_postgres(folder, bin_dir)
        raise
    server = _describe(folder, bin_dir, passwords, pg_port, pooler_port)
    _write_private(folder / STATE_FILE, json.dumps(asdict(server), indent=2))
    return server


def load(folder: Path) -> ManagedServer:
    """The lane `start` made in `folder` (its state file)."""
    return ManagedServer(**json.loads((Path(folder).absolute() / STATE_FILE).read_text()))


# ----------------------------------------------------------------- the OS user


def _owner() -> tuple[int, int] | None:
    """(uid, gid) the server's files must belong to when that is not us (root)."""
    return _system_user() if os.geteuid() == 0 else None


def _as_server_user() -> dict:
    """subprocess kwargs: run as the server's OS user, with umask 077 so that nothing the
    server tools create is readable by others."""
    extra = _as_system_user() if os.geteuid() == 0 else {}
    return {"umask": 0o077, "cwd": "/", **extra}


def _prepare_folder(folder: Path) -> None:
    """`folder` (ours, 0711: others may only pass through) and its subdirectories, private
    to the server's user: tls/ (certificate, key), data/ (the cluster), run/ (sockets,
    PgBouncer's files, logs)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise RuntimeError(f"{folder} is not empty; the lane needs a new folder")
    folder.chmod(0o711)
    if os.geteuid() == 0:
        for parent in folder.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
    for name in ("tls", "data", "run"):
        path = folder / name
        path.mkdir(mode=0o700)
        if _owner():
            os.chown(path, *_owner())


def _reachable_bin_dir(bin_dir: Path, folder: Path) -> Path:
    """`bin_dir`, or a copy of its installation in `folder` when the server's user cannot
    execute it there (the binaries find lib/ and share/ relative to bin/)."""
    if os.geteuid() != 0 or _runs(bin_dir / "initdb"):
        return bin_dir
    copy = folder / "pginstall"
    shutil.copytree(bin_dir.parent, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("include", "*.a"))
    copy.chmod(0o755)
    if not _runs(copy / "bin" / "initdb"):
        raise RuntimeError(f"the server's OS user cannot run {copy / 'bin' / 'initdb'}")
    return copy / "bin"


def _runs(tool: Path) -> bool:
    try:
        done = subprocess.run([str(tool), "--version"], capture_output=True, timeout=30,
                              **_as_server_user())
    except OSError:
        return False
    return done.returncode == 0


def _write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write `path` 0600 (belonging to `owner`), never through a link: it holds secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        handle.write(text)


def _run(args: list[str], what: str, timeout: float = 120) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          **_as_server_user())
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# ----------------------------------------------------------------- TLS


def _make_certificates(tls: Path) -> None:
    """A throw-away CA (its key deleted once it has signed) and the server's certificate
    for localhost / 127.0.0.1: enough for sslmode=verify-full on both sides."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tls, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=dmdb managed-lane CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tls / "server.ext").write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "extendedKeyUsage = serverAuth\n"
        "basicConstraints = critical, CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "7", "-extfile", "server.ext", "-out", "server.crt")
    for name in ("ca.key", "ca.srl", "server.csr", "server.ext"):
        (tls / name).unlink(missing_ok=True)
    # PostgreSQL wants its key 0600 and its own.
    (tls / "server.key").chmod(0o600)
    for name in ("ca.crt", "server.crt", "server.key"):
        if _owner():
            os.chown(tls / name, *_owner())


# ----------------------------------------------------------------- PostgreSQL


def _initdb(folder: Path, bin_dir: Path, admin_password: str) -> None:
    data, run, tls = folder / "data", folder / "run", folder / "tls"
    pwfile = run / "initdb.pw"
    _write_private(pwfile, admin_password + "\n", _owner())
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", ADMIN, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "--data-checksums", "--encoding=UTF8", "--locale=C",
              "--no-sync", "--no-instructions"], "initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    settings = {k: v.format(tls=tls) for k, v in SERVER_SETTINGS.items()}
    settings["unix_socket_directories"] = f"'{run}'"
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n# managed-like lane (tests/managed.py)\n")
        conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
    with open(data / "pg_hba.conf", "w") as hba:  # keeps the server user's ownership
        hba.write(PG_HBA)


def _start_postgres(folder: Path, bin_dir: Path) -> int:
    """pg_ctl start on a free port (another, should a concurrent process take it first)."""
    data, log = folder / "data", folder / "run" / "postgres.log"
    for attempt in range(3):
        port = _free_port()
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                  "-t", str(START_TIMEOUT), "-o", f"-p {port}", "start"], "pg_ctl start")
            return port
        except RuntimeError as exc:
            taken = log.exists() and "Address already in use" in log.read_text()
            if not taken or attempt == 2:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"{exc}\n{tail}") from None
    raise AssertionError("unreachable")


def _stop_postgres(folder: Path, bin_dir: Path) -> None:
    data = folder / "data"
    try:
        os.kill(int((data / "postmaster.pid").read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return  # no pidfile, or a stale one: nothing runs
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
         "pg_ctl stop")


def _provision(pg_port: int, ca: Path, passwords: dict[str, str]) -> None:
    """What the provider sets up before handing over: the customer's roles and database,
    and pg_stat_statements created by the provider's superuser."""
    with psycopg.connect(_url(ADMIN, passwords[ADMIN], pg_port, "postgres", ca),
                         autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION"
        ).format(sql.Identifier(OWNER), sql.Literal(passwords[OWNER])))
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(OWNER)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(MONITOR_LOGIN), sql.Literal(passwords[MONITOR_LOGIN])))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(DBNAME), sql.Identifier(OWNER)))
    with psycopg.connect(_url(ADMIN, passwords[ADMIN], pg_port, DBNAME, ca),
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")


def _url(user: str, password: str, port: int, dbname: str, ca: Path) -> str:
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{HOST}:{port}/"
            f"{quote(dbname, safe='')}?sslmode=verify-full&sslrootcert={quote(str(ca))}")


# ----------------------------------------------------------------- PgBouncer


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(found):
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    return found


def _write_userlist(folder: Path, admin_url: str) -> None:
    """PgBouncer's auth_file: the SCRAM secrets from pg_authid, as a provider holds them (never
    the plain passwords). With a secret PgBouncer authenticates the client, then logs in to
    the server with the client's proof. The provider's superuser is left out: not through
    the customer's pooler."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin AND rolname <> %s"
            " AND rolpassword LIKE 'SCRAM-SHA-256$%%' ORDER BY rolname", (ADMIN,)).fetchall()
    # auth_file syntax: "name" "secret", a quote inside doubled.
    lines = "".join(f"{_dq(name)} {_dq(secret)}\n" for name, secret in rows)
    _write_private(folder / "run" / "userlist.txt", lines, _owner())


def _dq(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _start_pooler(folder: Path, pg_port: int) -> int:
    """PgBouncer as a daemon (it outlives .ci/managed_server.py start), on a free port,
    once it listens."""
    run, log = folder / "run", folder / "run" / "pgbouncer.log"
    for attempt in range(3):
        port = _free_port()
        ini = PGBOUNCER_INI.format(dbname=DBNAME, host=HOST, port=port, pg_port=pg_port,
                                   run=run, tls=folder / "tls")
        _write_private(run / "pgbouncer.ini", ini, _owner())
        _run([_pgbouncer(), "-d", "-q", str(run / "pgbouncer.ini")], "pgbouncer -d")
        if _listening(port, folder):
            return port
        _stop_pooler(folder)
        taken = log.exists() and "Address already in use" in log.read_text()
        if not taken or attempt == 2:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pgbouncer did not start on port {port}:\n{tail}")
    raise AssertionError("unreachable")


def _listening(port: int, folder: Path) -> bool:
    """Whether PgBouncer comes to accept connections on `port`; not once its daemon has
    gone (given a moment to write its pidfile)."""
    begun = time.monotonic()
    while time.monotonic() - begun < START_TIMEOUT:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() - begun > 2 and _pooler_pid(folder) is None:
                return False
            time.sleep(0.05)
    return False


def _pooler_pid(folder: Path) -> int | None:
    """PgBouncer's pid from its pidfile, if that process is a live pgbouncer (a stale file's
    pid may since belong to something else)."""
    try:
        pid = int((folder / "run" / "pgbouncer.pid").read_text().split()[0])
        status = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError, IndexError):
        return None
    # "pid (comm) state ...": a zombie is as good as gone (no init may reap it here).
    name, state = status[status.index("(") + 1:status.rindex(")")], status.split(")")[-1].split()[0]
    return pid if name == "pgbouncer" and state != "Z" else None


def _reload_pooler(folder: Path) -> None:
    """SIGHUP, and wait until PgBouncer has logged it: it reloads in the same turn of its
    (single-threaded) loop, so the next login sees the new files."""
    log, pid = folder / "run" / "pgbouncer.log", _pooler_pid(folder)
    if pid is None:
        raise RuntimeError(f"pgbouncer is not running (see {log})")
    seen = log.read_text().count(_RELOADED)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while log.read_text().count(_RELOADED) == seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pgbouncer did not reload (see {log})")
        time.sleep(0.02)


_RELOADED = "got SIGHUP, re-reading config"


def _stop_pooler(folder: Path) -> None:
    """SIGTERM: immediate shutdown (SIGINT would wait for clients to finish)."""
    pid = _pooler_pid(folder)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _pooler_pid(folder) == pid:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def _describe(folder: Path, bin_dir: Path, passwords: dict[str, str], pg_port: int,
              pooler_port: int) -> ManagedServer:
    ca = folder / "tls" / "ca.crt"
    pg_pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    return ManagedServer(
        folder=str(folder), bin_dir=str(bin_dir), ca_file=str(ca),
        pg_port=pg_port, pooler_port=pooler_port,
        pg_pid=pg_pid, pooler_pid=_pooler_pid(folder) or 0,
        passwords=passwords,
        admin_url=_url(ADMIN, passwords[ADMIN], pg_port, DBNAME, ca),
        owner_url=_url(OWNER, passwords[OWNER], pg_port, DBNAME, ca),
        monitor_url=_url(MONITOR_LOGIN, passwords[MONITOR_LOGIN], pg_port, DBNAME, ca),
        pooled_owner_url=_url(OWNER, passwords[OWNER], pooler_port, DBNAME, ca),
        pooled_monitor_url=_url(MONITOR_LOGIN, passwords[MONITOR_LOGIN], pooler_port, DBNAME, ca),
    )
