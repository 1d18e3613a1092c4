"""Security (issue 13): the embedded server admits its owner (and root) only, nothing above
its home changes mode, files with secrets or personal data are private from creation,
and nothing dmdb renders can be injected into.

The "other user" tests act as `nobody` in a subprocess, so they need root (as CI and a
container run them); elsewhere they skip saying so.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import _dmdb_env, run_dmdb

OTHER_USER = "nobody"
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="acting as a second OS user (nobody) needs root")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _dmdb(args, env: dict, cwd: Path, umask: int | None = None):
    """`python -m dmdb` in a subprocess, optionally under a given umask."""
    return subprocess.run([sys.executable, "-m", "dmdb", *map(str, args)], capture_output=True,
                          text=True, env=_dmdb_env(env), cwd=cwd, timeout=300,
                          umask=-1 if umask is None else umask)


def _as_other(args: list[str]) -> subprocess.CompletedProcess:
    entry = pwd.getpwnam(OTHER_USER)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30,
                          user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/",
                          env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"})


def _psql() -> str:
    from dmdb.server.embedded import pg_tool

    return str(pg_tool("psql"))


def _other_connects(conninfo: str) -> subprocess.CompletedProcess:
    return _as_other([_psql(), "-X", "-w", "-Atc", "SELECT current_user", conninfo])


def _alive(pid: int) -> bool:
    """A running process (a zombie no init reaps, as in some containers, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _ancestor_modes(path: Path) -> dict[str, tuple[int, int, bool]]:
    """(mode, owner, has an access ACL) of every directory above `path`."""
    out = {}
    for parent in path.parents:
        st = os.stat(parent)
        try:
            acl = "system.posix_acl_access" in os.listxattr(parent)
        except OSError:
            acl = False
        out[str(parent)] = (stat.S_IMODE(st.st_mode), st.st_uid, acl)
    return out


@pytest.fixture(scope="module")
def private_home():
    """As root: DMDB_HOME under a 0700 directory; `dmdb up` and `dmdb backup` run there under
    umask 000; the backup lands in a directory everyone may enter."""
    if os.geteuid() != 0:
        pytest.skip("acting as a second OS user (nobody) needs root")
    parent = Path(tempfile.mkdtemp(prefix="dmdb-security-"))
    parent.chmod(0o700)
    home = parent / "h"
    open_dir = Path(tempfile.mkdtemp(prefix="dmdb-security-open-"))
    open_dir.chmod(0o755)
    before = _ancestor_modes(home)
    env = {"DMDB_HOME": str(home)}
    up = _dmdb(["up"], env, cwd=open_dir, umask=0)
    assert up.returncode == 0, up.stderr
    dump = open_dir / "users.dump"
    done = _dmdb(["backup", "--out", dump], env, cwd=open_dir, umask=0)
    assert done.returncode == 0, done.stderr
    url = run_dmdb(["server", "url"], env, cwd=open_dir).stdout.strip()
    from dmdb.server.embedded import EmbeddedServer

    yield {"home": home, "parent": parent, "before": before, "dump": dump, "url": url,
           "server": EmbeddedServer(home), "env": env, "cwd": open_dir}
    EmbeddedServer(home).destroy()
    shutil.rmtree(parent, ignore_errors=True)
    shutil.rmtree(open_dir, ignore_errors=True)


# -- the embedded server ----------------------------------------------------------


@needs_root
def test_no_directory_above_the_home_changes_mode(private_home):
    assert _mode(private_home["parent"]) == 0o700
    assert _ancestor_modes(private_home["home"]) == private_home["before"]


@needs_root
def test_the_owner_connects_with_the_url_psql_and_pg_dump(private_home):
    url = private_home["url"]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"
    from dmdb.server.embedded import pg_tool

    psql = subprocess.run([_psql(), "-X", "-Atc", "SELECT 1", url], capture_output=True,
                          text=True, timeout=30)
    assert psql.returncode == 0 and psql.stdout.strip() == "1", psql.stderr
    dump = subprocess.run([str(pg_tool("pg_dump")), "--schema-only", "-t", "users", url],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "CREATE TABLE public.users" in dump.stdout, dump.stderr


@needs_root
def test_another_user_cannot_connect_by_socket(private_home):
    info = private_home["server"].info()
    done = _other_connects(f"host={info.socket_dir} port={info.port} user=postgres dbname=dmdb")
    assert done.returncode != 0
    assert "Permission denied" in done.stderr, done.stderr
    assert _mode(Path(info.socket_dir)) == 0o700
    assert _mode(Path(info.socket_dir) / f".s.PGSQL.{info.port}") == 0o700


@needs_root
def test_another_user_cannot_connect_by_tcp(private_home):
    info = private_home["server"].info()
    for host in ("127.0.0.1", "localhost"):
        done = _other_connects(f"host={host} port={info.port} user=postgres dbname=dmdb")
        assert done.returncode != 0
        assert "refused" in done.stderr or "could not connect" in done.stderr, done.stderr
    with psycopg.connect(private_home["url"]) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""
        # Even with a listener, no pg_hba line would admit a TCP connection.
        rules = conn.execute("SELECT DISTINCT type FROM pg_hba_file_rules").fetchall()
        assert {r[0] for r in rules} == {"local"}


@needs_root
def test_authentication_does_not_rely_on_the_socket_mode(private_home):
    """Opened up on purpose, the socket still refuses another OS user: peer authentication
    with a map that names only the owner, root and the server's own user."""
    server = private_home["server"]
    info = server.info()
    sock_dir = Path(info.socket_dir)
    socket_file = sock_dir / f".s.PGSQL.{info.port}"
    opened = [p for p in (server.server_dir, sock_dir) if p != server.home] + [socket_file]
    saved = {p: _mode(p) for p in opened}
    try:
        for path in opened:
            path.chmod(0o777 if path == socket_file else 0o711)
        done = _other_connects(f"host={sock_dir} port={info.port} user=postgres dbname=dmdb")
    finally:
        for path, mode in saved.items():
            path.chmod(mode)
    assert done.returncode != 0
    assert "Peer authentication failed" in done.stderr, done.stderr


@needs_root
def test_another_user_cannot_read_the_log_or_a_backup(private_home):
    server = private_home["server"]
    log, dump = server.server_log, private_home["dump"]
    assert _mode(log) == 0o600 and _mode(dump) == 0o600
    assert _mode(private_home["home"]) == 0o700
    for path in (log, server.log_file, dump):
        done = _as_other(["cat", str(path)])
        assert done.returncode != 0 and "Permission denied" in done.stderr, (path, done.stderr)


@needs_root
def test_the_replica_is_as_private_as_the_primary(private_home):
    from dmdb.server.embedded import EmbeddedReplica

    replica = EmbeddedReplica(private_home["home"])
    info = replica.start()
    try:
        assert _mode(Path(info.socket_dir)) == 0o700 and _mode(replica.server_log) == 0o600
        for conninfo in (f"host={info.socket_dir} port={info.port} user=postgres dbname=dmdb",
                         f"host=127.0.0.1 port={info.port} user=postgres dbname=dmdb"):
            done = _other_connects(conninfo)
            assert done.returncode != 0, done.stdout
        with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                             dbname="dmdb") as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert _mode(private_home["parent"]) == 0o700
    finally:
        replica.stop()


def test_a_backup_is_private_whatever_the_umask(make_database, tmp_path):
    url = make_database(schema=False)
    out = tmp_path / "b.dump"
    done = _dmdb(["backup", "--out", out], {"DATABASE_URL": url}, cwd=tmp_path, umask=0)
    assert done.returncode == 0, done.stderr
    assert _mode(out) == 0o600


# -- injection into rendered files -------------------------------------------------


def _one_error_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmdb: error: "), done.stderr
    return lines[0]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["x\nDROP TABLE users;", "transactional: false",
                                  "depends: 0001_initial", "a\rb", "add badges; DROP", "!!!"])
def test_dmdb_new_refuses_a_name_that_is_not_a_slug(name, tmp_path):
    (tmp_path / "sql" / "migrations").mkdir(parents=True)
    before = _files(tmp_path)
    done = run_dmdb(["--sql-dir", tmp_path / "sql", "new", name], {}, cwd=tmp_path)
    assert done.returncode == 2
    assert "letters, digits" in _one_error_line(done)
    assert _files(tmp_path) == before


def test_dmdb_new_renders_the_slug_as_a_plain_comment(tmp_path):
    (tmp_path / "sql" / "migrations").mkdir(parents=True)
    done = run_dmdb(["--sql-dir", tmp_path / "sql", "new", "add badges-v2"], {}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from dmdb.migrate.engine import read_sql_file

    for kind in ("migrations", "rollbacks"):
        path = tmp_path / "sql" / kind / "0001_add_badges_v2.sql"
        parsed = read_sql_file(path)
        assert parsed.transactional and parsed.statements == ()


CRON_INJECTIONS = [
    ("--archive-schema", "archive\n* * * * * root id > /tmp/p"),
    ("--workdir", "/srv\nExecStartPre=/bin/id"),
    ("--user", "dmdb\nExecStartPre=/bin/id"),
    ("--env-file", "/etc/dmdb/env\nExecStartPre=/bin/id"),
    ("--user", "dmdb ExecStartPre=/bin/id"),
    ("--env-file", "-/etc/dmdb/env"),
    ("--schedule", "17 * * * *\n* * * * * id"),
    ("--on-calendar", "daily\nOnCalendar=minutely"),
]


@pytest.mark.parametrize("option, value", CRON_INJECTIONS)
def test_partitions_cron_refuses_control_characters_and_bad_values(option, value, tmp_path):
    extra = ["--retain", "12"] + ([] if option == "--archive-schema" else ["--drop"])
    done = run_dmdb(["partitions", "cron", *extra, option, value], {}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert option in _one_error_line(done)
    assert done.stdout == ""
    assert _files(tmp_path) == []


def _systemd_words(line: str) -> list[str]:
    """ExecStart= words as systemd splits them: double quotes with C escapes, %% and $$."""
    words = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', line)
    out = []
    for quoted, bare in words:
        word = re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
        out.append(word.replace("%%", "%").replace("$$", "$"))
    return out


def test_partitions_cron_quotes_what_it_accepts(tmp_path):
    import shlex

    from dmdb.partitions.cron import render_cron

    schema = 'arch ive"$HOME%'
    files = render_cron(ahead=1, retain=3, archive_schema=schema, dmdb=["/opt/my dmdb/dmdb"],
                        workdir="/srv/a b%", env_file="/etc/dm db/env", user="dmdb")
    exec_start = next(ln for ln in files.service.splitlines() if ln.startswith("ExecStart="))
    assert _systemd_words(exec_start[len("ExecStart="):]) == files.command
    assert "WorkingDirectory=/srv/a b%%" in files.service.splitlines()
    cron_line = files.crontab.strip().splitlines()[-1]
    command = cron_line.split(" ", 5)[5]
    # cron turns a bare % into a newline and drops the backslash of \%: none may be bare.
    assert not re.search(r"(?<!\\)%", command)
    words = shlex.split(command.replace("\\%", "%"))
    assert words[:3] == ["cd", "/srv/a b%", "&&"] and words[3:] == files.command


def _userlist_fields(line: str) -> list[str]:
    """A userlist.txt line as PgBouncer reads it: double-quoted fields, "" for a quote."""
    return [f.replace('""', '"') for f in re.findall(r'"((?:[^"]|"")*)"', line)]


def test_pgbouncer_escapes_userlist_and_connection_string(tmp_path):
    env = {"DB_HOST": "/run/pg sock", "DB_USER": "o'neil", "DB_PASSWORD": 'pa"ss w0rd'}
    done = run_dmdb(["pgbouncer", "config", "--out-dir", tmp_path / "pgb"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "pgb" / "userlist.txt").read_text().splitlines()
    assert len(lines) == 1 and _userlist_fields(lines[0]) == ["o'neil", 'pa"ss w0rd']
    assert 'pa"ss' not in done.stdout + done.stderr
    ini = (tmp_path / "pgb" / "pgbouncer.ini").read_text()
    assert "dmdb = host='/run/pg sock' port=5432 dbname=dmdb user='o''neil'" in ini.splitlines()
    assert _mode(tmp_path / "pgb") == 0o700 and _mode(tmp_path / "pgb" / "userlist.txt") == 0o600


@pytest.mark.parametrize("env, what", [
    ({"DB_HOST": "/tmp", "DB_PASSWORD": "pa\nss"}, "DB_PASSWORD"),
    ({"DB_HOST": "/tmp", "DB_USER": "u\nadmin_users = u"}, "DB_USER"),
    ({"DB_HOST": "/tmp\nlisten_addr = *"}, "DB_HOST"),
    ({"DB_HOST": "/tmp", "DB_NAME": "x = host=evil"}, "database name"),
])
def test_pgbouncer_refuses_what_it_cannot_escape(env, what, tmp_path):
    done = run_dmdb(["pgbouncer", "config", "--out-dir", tmp_path / "pgb"], env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    line = _one_error_line(done)
    assert what in line and "pa\nss" not in line
    assert not (tmp_path / "pgb").exists()


def test_pgbouncer_config_never_writes_through_a_planted_link(tmp_path):
    """--out-dir in a shared place: a pgbouncer.ini that is a link to another file is not
    followed (as root that would overwrite any file of the system)."""
    out = tmp_path / "pgb"
    out.mkdir()
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (out / "pgbouncer.ini").symlink_to(target)
    env = {"DB_HOST": "/tmp", "DB_PASSWORD": "s3cret"}
    done = run_dmdb(["pgbouncer", "config", "--out-dir", out], env, cwd=tmp_path)
    assert done.returncode != 0
    _one_error_line(done)
    assert target.read_text() == "keep me\n" and not (out / "userlist.txt").exists()


def test_pgbouncer_without_a_password_refuses_trust_unless_asked(tmp_path):
    """Without DB_PASSWORD the safe default is a refusal, not auth_type = trust (anyone
    reaching listen_addr would enter as the role); trust is rendered only by name."""
    env = {"DB_HOST": "/tmp", "DB_PASSWORD": ""}
    for extra in ([], ["--auth-type", "scram-sha-256"], ["--stdout"]):
        done = run_dmdb(["pgbouncer", "config", "--out-dir", tmp_path / "pgb", *extra], env,
                        cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        line = _one_error_line(done)
        assert "DB_PASSWORD" in line and "--auth-type trust" in line
        assert "auth_type" not in done.stdout and not (tmp_path / "pgb").exists()
    done = run_dmdb(["pgbouncer", "config", "--out-dir", tmp_path / "pgb", "--auth-type",
                     "trust"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "auth_type = trust" in (tmp_path / "pgb" / "pgbouncer.ini").read_text().splitlines()
    done = run_dmdb(["pgbouncer", "config", "--stdout"], {**env, "DB_PASSWORD": "s3cret"},
                    cwd=tmp_path)
    assert done.returncode == 0 and "auth_type = scram-sha-256" in done.stdout.splitlines()
    done = run_dmdb(["pgbouncer", "config", "--stdout", "--auth-type", "md5"], env, cwd=tmp_path)
    assert done.returncode == 2 and "--auth-type md5" in _one_error_line(done)
    # With the embedded server: refused before any server is created or started.
    home = tmp_path / "home"
    done = run_dmdb(["pgbouncer", "config", "--stdout"], {"DMDB_HOME": str(home)}, cwd=tmp_path)
    assert done.returncode == 2 and "DB_PASSWORD" in _one_error_line(done)
    assert not home.exists()


def test_a_real_pgbouncer_reads_the_escaped_files(tmp_path):
    """PgBouncer itself parses what dmdb escaped: the quoted role logs in with the quoted
    password, and the socket directory with a space arrives whole."""
    import socket
    import time

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed; .ci/run installs Debian's package")
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user, password = "o'ne\"il", "pa\"ss' w0rd"
    out = tmp_path / "pgb"
    env = {"DB_HOST": "/run/pg sock", "DB_USER": user, "DB_PASSWORD": password}
    done = run_dmdb(["pgbouncer", "config", "--out-dir", out, "--listen-port", port,
                     "--admin-users", user], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cmd = [binary, str(out / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses root: hand it its files as nobody
        entry = pwd.getpwnam(OTHER_USER)
        for path in (out, *out.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in out.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                parent.chmod(_mode(parent) | stat.S_IXOTH)
        cmd = [binary, "-u", OTHER_USER, str(out / "pgbouncer.ini")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(50):
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, dbname="pgbouncer",
                                       user=user, password=password, autocommit=True,
                                       prepare_threshold=None, connect_timeout=2)
                break
            except psycopg.OperationalError:
                if proc.poll() is not None:
                    pytest.fail(f"pgbouncer refused the config: {proc.communicate()[0]}")
                time.sleep(0.1)
        else:
            pytest.fail("pgbouncer did not accept the escaped role and password")
        with conn:
            cur = conn.cursor()
            cur.execute("SHOW DATABASES")
            cols = [c.name for c in cur.description]
            rows = {r[cols.index("name")]: dict(zip(cols, r)) for r in cur.fetchall()}
        assert rows["dmdb"]["host"] == "/run/pg sock"
        assert rows["dmdb"]["force_user"] == user
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_root
def test_a_deleted_home_takes_its_cluster_with_it():
    """As root the cluster lives outside the home: `rm -rf` of the home still ends it (a
    home made again at that path starts empty; a throw-away one's files go)."""
    from dmdb.server.embedded import SYSTEM_HOME, EmbeddedServer

    parent = Path(tempfile.mkdtemp(prefix="dmdb-security-rm-"))
    home = parent / "h"
    info = EmbeddedServer(home, fast=True).start(dbname="postgres")
    server_dir = EmbeddedServer(home).server_dir
    assert SYSTEM_HOME in server_dir.parents
    with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE TABLE before_rm ()")
    shutil.rmtree(home)
    home.mkdir()
    again = EmbeddedServer(home, fast=True).start(dbname="postgres")
    with psycopg.connect(host=again.socket_dir, port=again.port, user="postgres",
                         dbname="postgres") as conn:
        assert conn.execute("SELECT to_regclass('before_rm')").fetchone()[0] is None
    assert not _alive(info.pid)
    shutil.rmtree(parent)
    other = parent.with_name(parent.name + "-other") / "h"
    try:
        EmbeddedServer(other, fast=True).start(dbname="postgres")
        assert not server_dir.exists()
        assert not _alive(again.pid)
    finally:
        EmbeddedServer(other).destroy()
        shutil.rmtree(other.parent, ignore_errors=True)
