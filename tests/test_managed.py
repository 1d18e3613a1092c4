"""dmdb on the servers teams run (issue 24): TLS required, scram passwords, an owner that is
not superuser, pg_stat_statements created by the provider's admin, PgBouncer in
transaction mode in front (tests/managed.py builds it). Each test is a line of the issue's
table, run through the CLI as a team would: it works, or it refuses before changing
anything, in one line naming the cause and the fix; and the application's writes through
the pool keep working after every command.
"""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
from psycopg import sql

from conftest import REPO, run_dmdb


def _env(url: str, **extra: str) -> dict:
    return {"DATABASE_URL": url, **extra}


def _tls_path(managed) -> str:
    """PATH with the TLS-capable client tools first, as a team's system tools would be."""
    return f"{managed.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    """The one error line (a changing command names its target on the line before)."""
    lines = [ln for ln in done.stderr.strip().splitlines()
             if ln.strip() and not ln.startswith("dmdb: target: ")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dmdb: error: "), lines[0]
    return lines[0]


def _pooled_session_state(managed) -> dict:
    """What an application connection through the pool sees: the server connection's
    session settings (one pooled server connection; the pool reuses the last one freed)."""
    with psycopg.connect(managed.pooled_owner_url, prepare_threshold=None,
                         autocommit=True) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("default_transaction_read_only", "lock_timeout",
                             "statement_timeout", "client_connection_check_interval",
                             "TimeZone")}


def _app_writes(managed, count: int = 20) -> int:
    """The application's writes through the pool: how many failed."""
    failed = 0
    for i in range(count):
        try:
            with psycopg.connect(managed.pooled_owner_url, prepare_threshold=None) as conn:
                conn.execute("INSERT INTO users (email, display_name) VALUES (%s, 'app')",
                             (f"app-{os.getpid()}-{i}-{os.urandom(4).hex()}@example.test",))
        except psycopg.Error:
            failed += 1
    return failed


@pytest.fixture(scope="module")
def lane(managed, tmp_path_factory):
    """The lane's database migrated by its owner over the direct URL, once."""
    cwd = tmp_path_factory.mktemp("managed-cli")
    done = run_dmdb(["up"], _env(managed.owner_url), cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(managed.admin_url, autocommit=True) as conn:
        baseline = {name: conn.execute("SELECT reset_val FROM pg_settings WHERE name = %s",
                                       (name,)).fetchone()[0]
                    for name in ("default_transaction_read_only", "lock_timeout")}
    return {"cwd": cwd, "up": done, "baseline": baseline}


def test_up_as_a_non_superuser_shows_what_it_skipped(managed, lane):
    # A database of its own: other modules of the lane may have migrated `dmdb` first.
    with psycopg.connect(managed.owner_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dmdb_notices")
        conn.execute("CREATE DATABASE dmdb_notices")
    url = managed.url("dm_owner", managed.passwords["dm_owner"], dbname="dmdb_notices")
    done = run_dmdb(["up"], _env(url), cwd=lane["cwd"], timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # The DDL audit's event triggers need a superuser: 0005 says so, and the user sees it.
    assert "0005_analytics_and_audit: NOTICE:" in out and "superuser" in out
    with psycopg.connect(url) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                                ).fetchone()[0]
        applied = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0]
    assert applied == len(list((REPO / "sql" / "migrations").glob("*.sql")))


def test_monitor_through_the_pool_leaves_the_app_writing(managed, lane):
    before = _pooled_session_state(managed)
    done = run_dmdb(["monitor", "--check"], _env(managed.pooled_owner_url), cwd=lane["cwd"])
    assert done.returncode in (0, 1, 2, 3), done.stderr
    assert _pooled_session_state(managed) == before
    assert before["default_transaction_read_only"] == "off"
    assert _app_writes(managed) == 0


@pytest.mark.parametrize("args", [
    ["status"],
    ["models", "report"],
    ["partitions", "list"],
    ["up", "--dry-run"],
    ["indexes", "check"],
])
def test_read_commands_through_the_pool_change_no_session(managed, lane, args):
    before = _pooled_session_state(managed)
    done = run_dmdb(args, _env(managed.pooled_owner_url), cwd=lane["cwd"])
    assert done.returncode in (0, 1, 3), done.stdout + done.stderr
    assert _pooled_session_state(managed) == before
    assert _app_writes(managed, 5) == 0


@pytest.mark.parametrize("args", [
    ["up"],
    ["rollback"],
    ["seed", "--users", "5"],
    ["partitions", "rollover"],
    ["indexes", "build"],
    ["maintenance", "vacuum"],
    ["backup", "--out", "pooled.dump"],
])
def test_session_commands_through_the_pool_refuse_before_changing_anything(managed, lane,
                                                                            args):
    with psycopg.connect(managed.owner_url) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        applied = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0]
    done = run_dmdb(args, _env(managed.pooled_owner_url, PATH=_tls_path(managed)),
                    cwd=lane["cwd"])
    assert done.returncode == 1, done.stdout + done.stderr
    line = _one_error_line(done)
    assert "transaction pooler" in line and "DMDB_DIRECT_URL" in line
    assert managed.passwords["dm_owner"] not in done.stdout + done.stderr
    with psycopg.connect(managed.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == users
        assert conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0] == applied
    assert not (lane["cwd"] / "pooled.dump").exists()
    assert _app_writes(managed, 5) == 0


def test_session_commands_use_the_direct_url(managed, lane):
    env = _env(managed.pooled_owner_url, DMDB_DIRECT_URL=managed.owner_url,
               PATH=_tls_path(managed))
    for args in (["up"], ["partitions", "create", "--dry-run"], ["partitions", "rollover"],
                 ["indexes", "build"], ["maintenance", "vacuum"]):
        done = run_dmdb(args, env, cwd=lane["cwd"], timeout=300)
        assert done.returncode in (0, 3), (args, done.stdout, done.stderr)
    assert _app_writes(managed, 5) == 0


def test_an_unknown_url_parameter_is_refused_by_name(managed, lane):
    done = run_dmdb(["status"], _env(managed.owner_url + "&sslrootcrt=x"), cwd=lane["cwd"])
    assert done.returncode == 2
    assert "'sslrootcrt'" in _one_error_line(done)


def test_verify_full_with_the_ca_is_carried_and_a_wrong_ca_fails(managed, lane, tmp_path):
    done = run_dmdb(["status", "--json"], _env(managed.owner_url), cwd=lane["cwd"])
    assert done.returncode == 0, done.stderr
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=other", "-keyout", str(tmp_path / "k.pem"), "-out",
                    str(other)], check=True, capture_output=True)
    wrong = managed.owner_url.replace(managed.ca_file, str(other))
    done = run_dmdb(["status"], _env(wrong), cwd=lane["cwd"])
    assert done.returncode != 0
    assert "certificate" in _one_error_line(done)


def test_tools_that_speak_tls_are_picked_and_their_absence_is_said(managed, lane, tmp_path):
    with_tls = _env(managed.owner_url, PATH=_tls_path(managed))
    dump = tmp_path / "lane.dump"
    done = run_dmdb(["backup", "--out", dump], with_tls, cwd=lane["cwd"], timeout=300)
    assert done.returncode == 0, done.stderr
    assert dump.stat().st_mode & 0o777 == 0o600
    # Without TLS-capable tools of a new-enough major on PATH, one line says what to do.
    bare = _env(managed.owner_url, PATH="/usr/bin:/bin")
    done = run_dmdb(["backup", "--out", tmp_path / "x.dump"], bare, cwd=lane["cwd"])
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "TLS" in line and "DMDB_PG_BINDIR" in line
    assert not (tmp_path / "x.dump").exists()


def test_backup_then_restore_as_the_owner(managed, lane, tmp_path):
    env = _env(managed.owner_url, PATH=_tls_path(managed))
    dump = tmp_path / "r.dump"
    assert run_dmdb(["backup", "--out", dump], env, cwd=lane["cwd"]).returncode == 0
    done = run_dmdb(["restore", dump, "--into", "dmdb_restored", "--no-owner"], env,
                    cwd=lane["cwd"], timeout=300)
    assert done.returncode == 0, done.stderr
    # pg_stat_statements was the provider's: this owner may not create it, and is told.
    assert "left out: EXTENSION pg_stat_statements" in done.stderr
    with psycopg.connect(managed.url("dm_owner", managed.passwords["dm_owner"],
                                     dbname="dmdb_restored")) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                              ).fetchone()[0]
    assert tables > 10


def test_restore_failure_shows_the_real_error(managed, lane, tmp_path):
    env = _env(managed.owner_url, PATH=_tls_path(managed))
    dump = tmp_path / "f.dump"
    assert run_dmdb(["backup", "--out", dump], env, cwd=lane["cwd"]).returncode == 0
    # Without --no-owner the dump's ALTER ... OWNER TO dm_owner works; make it fail on a
    # role the target lacks instead: restore as the monitoring login, which may not create.
    with psycopg.connect(managed.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier("dm_monitor_login")))
    try:
        managed.sync_pooler_users()
        done = run_dmdb(["restore", dump, "--into", "dmdb_by_monitor"],
                        _env(managed.monitor_url, PATH=_tls_path(managed)), cwd=lane["cwd"],
                        timeout=300)
    finally:
        with psycopg.connect(managed.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} NOCREATEDB").format(
                sql.Identifier("dm_monitor_login")))
            conn.execute("DROP DATABASE IF EXISTS dmdb_by_monitor")
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "pg_restore failed" in line and "Command was" not in line
    assert "error" in line.lower()


def test_drift_and_verify_as_the_owner_with_an_admin_made_extension(managed, lane):
    env = _env(managed.owner_url, PATH=_tls_path(managed))
    done = run_dmdb(["drift"], env, cwd=lane["cwd"], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pg_stat_statements" in done.stdout  # named as not compared, not as drift
    done = run_dmdb(["verify"], env, cwd=lane["cwd"], timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lint_as_the_owner_copies_the_schema_without_the_admins_extension(managed, lane,
                                                                            tmp_path):
    project = tmp_path / "proj"
    (project / "sql").mkdir(parents=True)
    for sub in ("migrations", "rollbacks", "functions"):
        src = REPO / "sql" / sub
        dst = project / "sql" / sub
        dst.mkdir()
        for f in src.glob("*.sql"):
            (dst / f.name).write_text(f.read_text())
    (project / "dmdb.toml").write_text("")
    (project / "sql" / "migrations" / "0099_badges.sql").write_text(
        "CREATE TABLE badges (badge_id bigint PRIMARY KEY, name text NOT NULL);\n")
    (project / "sql" / "rollbacks" / "0099_badges.sql").write_text("DROP TABLE badges;\n")
    done = run_dmdb(["lint"], _env(managed.owner_url, PATH=_tls_path(managed)), cwd=project,
                    timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "extension pg_stat_statements left out of the scratch copy" in done.stdout
    assert "lock trace on a scratch copy of the live schema" in done.stdout
    assert "1 file(s)" in done.stdout


def test_a_readonly_login_runs_status_and_monitor(managed, lane):
    with psycopg.connect(managed.admin_url, autocommit=True) as conn:
        conn.execute("GRANT dm_readonly TO dm_monitor_login")
    done = run_dmdb(["status"], _env(managed.monitor_url), cwd=lane["cwd"])
    assert done.returncode == 0, done.stderr
    assert "0012_managed_privileges" in done.stdout
    done = run_dmdb(["monitor", "--check"], _env(managed.pooled_monitor_url), cwd=lane["cwd"])
    assert done.returncode in (0, 1, 2, 3), done.stderr
    assert _app_writes(managed, 5) == 0


def test_a_readonly_login_runs_drift_with_a_scratch_server(managed, lane):
    with psycopg.connect(managed.admin_url, autocommit=True) as conn:
        conn.execute("GRANT dm_readonly TO dm_monitor_login")
    env = _env(managed.monitor_url, PATH=_tls_path(managed))
    # The monitoring login may not create databases: the replay runs in a throw-away
    # cluster of the same major (the embedded package is 18, as this server is).
    done = run_dmdb(["drift"], env, cwd=lane["cwd"], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No drift" in done.stdout
    assert "schema dmdb_privacy: role dm_monitor_login may not use it" in done.stdout
    # Or on a server where a role may create databases (here the owner's login on the
    # same server); the live schema is read by the monitoring login either way.
    done = run_dmdb(["drift", "--scratch-url", managed.owner_url], env, cwd=lane["cwd"],
                    timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No drift" in done.stdout
    # Where neither is at hand, one line says what to do.
    done = run_dmdb(["drift"], {**env, "DMDB_SCRATCH": "server"}, cwd=lane["cwd"],
                    timeout=300)
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "scratch database" in line and "--scratch-url" in line


def test_pgbouncer_config_renders_tls_on_the_server_side(managed, lane, tmp_path):
    env = _env(managed.owner_url)
    done = run_dmdb(["pgbouncer", "config", "--out-dir", tmp_path / "pgb"], env,
                    cwd=lane["cwd"])
    assert done.returncode == 0, done.stderr
    ini = (tmp_path / "pgb" / "pgbouncer.ini").read_text()
    assert "server_tls_sslmode = verify-full" in ini
    assert f"server_tls_ca_file = {managed.ca_file}" in ini
    assert managed.passwords["dm_owner"] not in ini


def test_psql_speaks_tls_to_the_managed_server(managed, lane):
    done = run_dmdb(["psql", "--", "-Atc", "SELECT ssl FROM pg_stat_ssl "
                                           "WHERE pid = pg_backend_pid()"],
                    _env(managed.owner_url, PATH=_tls_path(managed)), cwd=lane["cwd"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "t"
    assert managed.passwords["dm_owner"] not in done.stdout + done.stderr
