"""When the embedded server cannot start (#29 items 2 and 3): the monitor keeps its
contract (`--check` UNKNOWN, exit 3; Prometheus `dmdb_up 0`), a failed start says why in
the server log's own words with the fix, and a postmaster killed with SIGKILL — a zombie
nobody reaps, or a stale postmaster.pid naming another process — is not "running":
`server start` starts it again. Each test runs its own throw-away embedded server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from conftest import run_dmdb
from dmdb.server.embedded import EmbeddedServer
from dmdb.server.postmaster import is_zombie

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="zombies and working directories are read from /proc")


@pytest.fixture
def server():
    # Not under pytest's tmp dirs: another pytest run resets those to 0700, out of reach
    # of the server's system user (as in test_embedded).
    root = Path(tempfile.mkdtemp(prefix="dmdb-faults-"))
    srv = EmbeddedServer(root / "home", fast=True)
    srv.start(dbname="postgres")
    yield srv
    srv.destroy()
    shutil.rmtree(root, ignore_errors=True)


def dmdb(srv: EmbeddedServer, *args, cwd: Path | None = None):
    return run_dmdb(list(args), {"DMDB_HOME": str(srv.home)}, cwd=cwd or srv.home.parent)


def prometheus(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: [s.value for s in f.samples] for f in text_string_to_metric_families(text)}


def kill_postmaster(srv: EmbeddedServer) -> int:
    """SIGKILL the postmaster; returns once it has died (a zombie, or reaped)."""
    pid = srv.info().pid
    os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists() and not is_zombie(pid):
        time.sleep(0.005)
    return pid


def assert_down(srv: EmbeddedServer, *needles: str) -> None:
    """monitor --check: UNKNOWN (exit 3) with the log's reason; Prometheus: dmdb_up 0."""
    check = dmdb(srv, "monitor", "--check")
    assert check.returncode == 3, (check.stdout, check.stderr)
    line = check.stdout.strip()
    assert line.startswith("UNKNOWN: the embedded PostgreSQL cannot start: FATAL: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "Examine the log output" not in line
    prom = dmdb(srv, "monitor", "--format", "prometheus")
    assert prom.returncode == 0, prom.stderr
    families = prometheus(prom.stdout)
    assert families["dmdb_up"] == [0] and families["dmdb_monitor_status"] == [3]
    data = json.loads(dmdb(srv, "monitor", "--json").stdout)
    assert data["up"] is False and data["error"].startswith("the embedded PostgreSQL cannot")


def test_a_bad_setting_keeps_the_server_down_and_the_monitor_says_why(server):
    server.stop()
    auto = server.data_dir / "postgresql.auto.conf"
    before = auto.read_text()
    with open(auto, "a") as handle:
        handle.write("max_connections = 'plenty'\n")

    assert_down(server, 'invalid value for parameter "max_connections": "plenty"',
                "postgresql.auto.conf")
    start = dmdb(server, "server", "start")
    assert start.returncode == 1
    err = start.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dmdb: error: the embedded PostgreSQL cannot "
                                               "start: FATAL: configuration file")
    assert '"max_connections": "plenty"' in err[0] and "correct or remove that setting" in err[0]

    auto.write_text(before)
    again = dmdb(server, "server", "start")
    assert again.returncode == 0, again.stderr
    assert server.info().running


def test_an_orphaned_backend_keeps_the_server_down_and_is_named(server):
    """The postmaster killed while a backend runs a long statement: the backend keeps the
    shared memory, so no new server may start on the directory (PostgreSQL's own check).
    The monitor is UNKNOWN at once; `server start` names the process and the way out."""
    info = server.info()
    busy = psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                           dbname="postgres", autocommit=True)
    backend = busy.info.backend_pid
    running = threading.Event()

    def spin() -> None:
        running.set()
        try:  # pure computation: it never waits, so it never notices the postmaster died
            busy.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
        except psycopg.Error:
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    running.wait()
    time.sleep(0.3)
    try:
        kill_postmaster(server)
        assert_down(server, "pre-existing shared memory block", f"kill {backend}")
        start = dmdb(server, "server", "start")
        assert start.returncode == 1
        assert f"PIDs: {backend} (postgres:" in start.stderr
        assert "shared memory block" in start.stderr
    finally:
        os.kill(backend, signal.SIGKILL)
        thread.join(30)
        busy.close()
    # The way out taken: the server starts.
    while Path(f"/proc/{backend}").exists() and not is_zombie(backend):
        time.sleep(0.01)
    start = dmdb(server, "server", "start")
    assert start.returncode == 0, start.stderr


def test_server_start_after_sigkill_of_the_postmaster(server):
    old = kill_postmaster(server)
    assert server.info().running is False  # a zombie is not running
    started = dmdb(server, "server", "start")
    assert started.returncode == 0, started.stderr
    info = server.info()
    assert info.running and info.pid != old
    with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                         dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("leftover", ["zombie", "another process"])
def test_a_stale_postmaster_pid_is_not_a_running_server(server, leftover):
    """postmaster.pid (and the socket's lock file) naming a process that is no server of
    this directory: a zombie — a killed postmaster that nothing reaps, made here
    deterministically with a child of this test that is never waited for — or a live
    program that got the id since. PostgreSQL takes either for a running postmaster;
    dmdb used to as well, then waited 30 s for connections and failed."""
    info = server.info()
    pidfile = server.pg_data / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    server.stop()
    child = subprocess.Popen(["sleep", "600"])
    try:
        if leftover == "zombie":
            os.kill(child.pid, signal.SIGKILL)
            while not is_zombie(child.pid):
                time.sleep(0.005)
        lines[0] = str(child.pid)
        pidfile.write_text("\n".join(lines) + "\n")
        socket_lock = Path(info.socket_dir) / f".s.PGSQL.{info.port}.lock"
        socket_lock.write_text(f"{child.pid}\n")
        assert server.info().running is False

        status = dmdb(server, "server", "status")
        assert status.returncode == 1 and "not running" in status.stdout
        # The monitor starts it (it used to wait 30 s for connections, then fail).
        check = dmdb(server, "monitor", "--check", "--only", "pgbouncer")
        assert check.returncode == 0, (check.stdout, check.stderr)
        info = server.info()
        assert info.running and info.pid != child.pid
    finally:
        child.kill()
        child.wait()


def test_the_reason_is_the_logs_last_fatal_or_panic_since_the_start(tmp_path):
    """A full disk, read from a log as PostgreSQL writes it: the last FATAL/PANIC line
    written since the start began (an older one before `offset` is not this start's)."""
    from dmdb.server.postmaster import start_error

    log = tmp_path / "postgres.log"
    log.write_text(
        "2026-01-01 10:00:00.000 UTC [10] FATAL:  an old failure, already fixed\n")
    offset = log.stat().st_size
    with open(log, "a") as handle:
        handle.write(
            "2026-01-01 11:00:00.000 UTC [20] LOG:  database system was interrupted\n"
            "2026-01-01 11:00:00.100 UTC [21] PANIC:  could not write to file "
            '"pg_wal/xlogtemp.21": No space left on device\n'
            "2026-01-01 11:00:00.200 UTC [20] LOG:  startup process (PID 21) was terminated "
            "by signal 6: Aborted\n"
            "2026-01-01 11:00:00.300 UTC [20] LOG:  aborting startup due to startup process "
            "failure\n")
    error = start_error("the embedded PostgreSQL", tmp_path, tmp_path / "data", log, log,
                        offset, "fallback")
    text = str(error)
    assert text.startswith('the embedded PostgreSQL cannot start: PANIC: could not write to '
                           'file "pg_wal/xlogtemp.21": No space left on device; free space on '
                           f"the file system of {tmp_path / 'data'}")
    assert "old failure" not in text and error.exit_code == 1
    # Nothing since the start began: the caller's own words.
    assert str(start_error("x", tmp_path, tmp_path, log, log, log.stat().st_size,
                           "fallback")) == "fallback"


@pytest.mark.skipif(os.geteuid() != 0, reason="squatting as another OS user needs root")
def test_a_squatted_fallback_socket_directory_is_left_alone_and_another_is_used(caplog):
    """A home whose run/ path is too long for a Unix socket puts the socket in
    /tmp/dmdb-<hash of the home>, a name anyone can compute. Someone else's directory
    there used to stop the server from starting ("not a directory of this user's; remove
    it" — which the victim cannot); now it is left alone, the server gets a private
    directory of its own beside it, and the warning says where and why."""
    import logging
    import pwd

    class LongRunName(EmbeddedServer):  # as a home with a long path: run/ too long
        _run_name = "run-" + "x" * 120

    root = Path(tempfile.mkdtemp(prefix="dmdb-faults-"))
    srv = LongRunName(root / "home", fast=True)
    squatted = srv.socket_dir
    assert squatted.parent == Path(tempfile.gettempdir())  # the fallback, by name
    nobody = pwd.getpwnam("nobody")
    squatted.mkdir(mode=0o755)
    os.chown(squatted, nobody.pw_uid, nobody.pw_gid)
    try:
        with caplog.at_level(logging.WARNING, logger="dmdb.server.embedded"):
            info = srv.start(dbname="postgres")
        used = Path(info.socket_dir)
        assert used != squatted and used.name.startswith(squatted.name + "-")
        assert stat.S_IMODE(used.stat().st_mode) == 0o700
        assert used.stat().st_uid == EmbeddedServer(root / "home").pg_data.stat().st_uid
        assert list(squatted.iterdir()) == [] and squatted.stat().st_uid == nobody.pw_uid
        with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                             dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        warning = " ".join(r.getMessage() for r in caplog.records)
        assert f"{squatted} belongs to user nobody" in warning and str(used) in warning
        srv.stop()
        assert Path(srv.start(dbname="postgres").socket_dir) == used  # reused, not another
    finally:
        srv.destroy()
        for path in (squatted, *Path(tempfile.gettempdir()).glob(squatted.name + "-*")):
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
