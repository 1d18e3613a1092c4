"""Production topology: a real streaming replica, a real PgBouncer, backup and restore."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from conftest import PASSWORD, PASSWORD_ROLE, row_counts, run_dmdb, start_pgbouncer

# -- read replica ---------------------------------------------------------------


@pytest.fixture(scope="module")
def replica_home():
    """An embedded primary with the schema, and its streaming standby.

    Under a directory of our own, not pytest's: another pytest run on the machine resets
    /tmp/pytest-of-<user> to 0700, which the server's system user could then not reach.
    """
    home = Path(tempfile.mkdtemp(prefix="dmdb-topology-")) / "home"
    env = {"DMDB_HOME": str(home)}
    cwd = home.parent
    done = run_dmdb(["up", "--quiet"], env, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    started = run_dmdb(["server", "start", "--replica", "--json"], env, cwd=cwd, timeout=300)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    yield home, info
    from dmdb.server.embedded import EmbeddedServer

    EmbeddedServer(home).destroy()
    shutil.rmtree(home.parent, ignore_errors=True)


def test_write_on_primary_appears_on_replica(replica_home):
    _, info = replica_home
    with psycopg.connect(info["url"], autocommit=True) as primary:
        assert primary.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        primary.execute("INSERT INTO users (email, display_name) VALUES ('r@x.test', 'R')")
    with psycopg.connect(info["replica"]["url"]) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        for _ in range(100):
            found = standby.execute("SELECT count(*) FROM users WHERE email = 'r@x.test'").fetchone()[0]
            if found:
                break
            time.sleep(0.1)
        standby.rollback()
    assert found == 1


def test_reads_route_to_replica_and_fall_back_to_primary(replica_home):
    from dmdb.config import load_settings
    from dmdb.db import connect, connect_read

    home, info = replica_home
    replica = info["replica"]
    settings = load_settings({"DMDB_HOME": str(home), "DB_READ_REPLICA_HOST": replica["socket_dir"],
                              "DB_READ_REPLICA_PORT": str(replica["port"])})
    with connect_read(settings) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    with connect(settings) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False

    warnings = []
    broken = replace(settings, read_replica_host="/nonexistent-socket-dir", read_replica_port=5999)
    with connect_read(broken, warn=warnings.append) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
    assert warnings and "replica unreachable" in warnings[0]


def test_status_reads_from_replica_and_warns_when_it_is_down(replica_home, tmp_path):
    home, info = replica_home
    replica = info["replica"]
    env = {"DMDB_HOME": str(home), "DB_READ_REPLICA_HOST": replica["socket_dir"],
           "DB_READ_REPLICA_PORT": str(replica["port"])}
    done = run_dmdb(["status", "--json"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["up_to_date"] is True
    assert done.stderr == ""
    down = run_dmdb(["status", "--json"], {**env, "DB_READ_REPLICA_PORT": "5999"}, cwd=tmp_path)
    assert down.returncode == 0
    assert "replica unreachable" in down.stderr
    assert json.loads(down.stdout)["summary"]["up_to_date"] is True


# -- PgBouncer -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pgbouncer(schema_db, tmp_path, embedded_only):
    name, url = schema_db
    port = _free_port()
    out = tmp_path / "pgb"
    # The embedded server takes no password (peer): trust is the explicit development opt-in.
    done = run_dmdb(["pgbouncer", "config", "--out-dir", out, "--listen-port", port, "--json",
                     "--auth-type", "trust"],
                    {"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ini = (out / "pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini and f"listen_port = {port}" in ini
    assert oct((out / "userlist.txt").stat().st_mode & 0o777) == "0o600"
    bouncer_url = f"postgresql://postgres@127.0.0.1:{port}/{name}"
    proc = start_pgbouncer(out, bouncer_url)
    yield bouncer_url, url
    proc.terminate()
    proc.wait(timeout=10)


def _catalogue(conn) -> tuple[int, int]:
    conn.execute("INSERT INTO users (email, display_name) VALUES ('b@x.test', 'B')")
    user_id = conn.execute("SELECT user_id FROM users WHERE email = 'b@x.test'").fetchone()[0]
    concept = conn.execute(
        "INSERT INTO concepts (code, name, category) VALUES ('c1', 'Signs', 'traffic_signs') "
        "RETURNING concept_id").fetchone()[0]
    content = conn.execute(
        "INSERT INTO content (concept_id, category, question) VALUES (%s, 'traffic_signs', 'Q?') "
        "RETURNING content_id", (concept,)).fetchone()[0]
    return user_id, content


def test_application_path_through_pgbouncer_transaction_pooling(pgbouncer):
    bouncer_url, direct_url = pgbouncer
    with psycopg.connect(direct_url, autocommit=True) as direct:
        user_id, content_id = _catalogue(direct)
    # Transaction pooling: no server-side prepared statements (PgBouncer < 1.21).
    with psycopg.connect(bouncer_url, autocommit=True, prepare_threshold=None) as app:
        from dmdb.db import behind_pooler

        assert behind_pooler(app)
        for i in range(10):
            row = app.execute("SELECT * FROM record_answer(%s, %s, %s, %s)",
                              (user_id, content_id, i % 2 == 0, 4000)).fetchone()
            assert row is not None
        batch = json.dumps([{"user_id": user_id, "content_id": content_id, "is_correct": True,
                             "response_time_ms": 3000}] * 5)
        assert len(app.execute("SELECT * FROM record_answers(%s::jsonb)", (batch,)).fetchall()) == 5
        app.execute("SELECT * FROM next_questions(%s, 5, now())", (user_id,)).fetchall()
    with psycopg.connect(direct_url) as direct:
        attempts = direct.execute("SELECT attempts FROM knowledge_states WHERE user_id = %s",
                                  (user_id,)).fetchone()[0]
    assert attempts == 15


def test_migrations_refuse_a_transaction_pooler(pgbouncer, tmp_path):
    bouncer_url, _ = pgbouncer
    for args in (["up"], ["rollback"], ["partitions", "rollover", "--ahead", "3"]):
        done = run_dmdb(args, {"DATABASE_URL": bouncer_url}, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        assert "pooler" in done.stderr and "DMDB_DIRECT_URL" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # A dry run takes no lock and sets nothing: it needs no session of its own.
    done = run_dmdb(["rollback", "--dry-run"], {"DATABASE_URL": bouncer_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_commands_through_the_pooler_leave_no_session_state_behind(pgbouncer, tmp_path):
    """Each command the pooler serves returns its server connections as they came: the
    application's writes through the same pool then succeed (issue 24: after `monitor`
    they all failed, "cannot execute UPDATE in a read-only transaction")."""
    bouncer_url, _ = pgbouncer

    def settings_seen() -> set[tuple]:
        """The settings of every server connection in the pool: clients holding a
        transaction open at once each get a server connection of their own."""
        clients = [psycopg.connect(bouncer_url, prepare_threshold=None) for _ in range(8)]
        try:
            return {c.execute(
                "SELECT current_setting('default_transaction_read_only'), "
                "current_setting('lock_timeout'), current_setting('statement_timeout'), "
                "current_setting('TimeZone'), "
                "current_setting('client_connection_check_interval')").fetchone()
                for c in clients}
        finally:
            for c in clients:
                c.close()

    before = settings_seen()
    for args in (["monitor", "--check"], ["status"], ["partitions", "list"],
                 ["up", "--dry-run"], ["indexes", "check"], ["models", "report"]):
        done = run_dmdb(args, {"DATABASE_URL": bouncer_url}, cwd=tmp_path)
        assert done.returncode in (0, 1, 2, 3), (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert settings_seen() == before
    failed = 0
    for i in range(20):
        try:
            with psycopg.connect(bouncer_url, prepare_threshold=None) as app:
                app.execute("INSERT INTO users (email, display_name) VALUES (%s, 'A')",
                            (f"pool-{i}@x.test",))
        except psycopg.Error:
            failed += 1
    assert failed == 0


# -- backup / restore ------------------------------------------------------------------

def test_backup_restore_round_trip_on_seeded_data(schema_db, databases, tmp_path):
    name, url = schema_db
    env = {"DATABASE_URL": url}
    seeded = run_dmdb(["seed", "seed", "--users", "30", "--answers", "20", "--quiet"], env,
                      cwd=tmp_path, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    before = row_counts(url)
    assert before["learning_events"] >= 600

    dump = tmp_path / "seeded.dump"
    done = run_dmdb(["backup", "--out", dump, "--json"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"] == dump.stat().st_size > 0
    assert not list(tmp_path.glob("*.partial"))

    target = f"{name}_restored"
    databases.created.append(target)
    plan = run_dmdb(["restore", dump, "--into", target, "--dry-run", "--json"], env, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["entries"] > 50 and json.loads(plan.stdout)["created"] is True
    with psycopg.connect(url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
    not_a_dump = tmp_path / "notes.txt"
    not_a_dump.write_text("hello")
    bad = run_dmdb(["restore", not_a_dump, "--into", target], env, cwd=tmp_path)
    assert bad.returncode == 1 and "dmdb backup" in bad.stderr

    done = run_dmdb(["restore", dump, "--into", target, "--json"], env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] is True
    restored_url = databases.url(target)
    assert row_counts(restored_url) == before
    status = run_dmdb(["status", "--json", "--check"], {"DATABASE_URL": restored_url}, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr

    again = run_dmdb(["restore", dump, "--into", target], env, cwd=tmp_path)
    assert again.returncode == 1 and "already holds" in again.stderr
    missing = run_dmdb(["restore", tmp_path / "nope.dump"], env, cwd=tmp_path)
    assert missing.returncode == 2


def test_backup_passes_password_through_environment_only(pg_settings, tmp_path, monkeypatch,
                                                        embedded_only):
    """The password never reaches pg_dump's command line (visible in `ps`)."""
    from dmdb.backup import logical

    real_run = subprocess.run
    calls = []

    def spy(args, **kwargs):
        calls.append((list(map(str, args)), dict(kwargs.get("env") or {})))
        return real_run(args, **kwargs)

    settings = replace(pg_settings, user=PASSWORD_ROLE, password=PASSWORD)
    monkeypatch.setattr(logical.subprocess, "run", spy)
    result = logical.backup(settings, tmp_path / "pw.dump")
    assert result.bytes > 0
    dumps = [c for c in calls if c[0][0].endswith("pg_dump") and "--format=custom" in c[0]]
    assert dumps, calls
    for args, env in dumps:
        assert PASSWORD not in " ".join(args)
        assert env["PGPASSWORD"] == PASSWORD


def test_client_tools_match_the_server_major(pg_settings):
    from dmdb.errors import DmdbError
    from dmdb.server import tools

    with psycopg.connect(**pg_settings.conninfo()) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    assert tools.find("pg_restore", major, exact=True).major == major
    assert tools.find("pg_dump", major).major == major
    with pytest.raises(DmdbError) as info:
        tools.find("pg_restore", 9, exact=True)
    assert "DMDB_PG_BINDIR" in str(info.value)
    # pg_dump may be newer than the server: it dumps older servers
    assert tools.find("pg_dump", 9).major >= 9
