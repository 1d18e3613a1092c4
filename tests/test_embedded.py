"""The embedded default: with nothing configured dmdb starts its own PostgreSQL 18 under
the project's .dmdb/ (outside a project the per-user home, or DMDB_HOME), reuses it
between commands, creates it only for commands that change the database, and `dmdb
server` manages it."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, run_dmdb


@pytest.fixture(scope="module")
def home():
    # Not under pytest's tmp dirs: another pytest run resets those to 0700, out of reach
    # of the server's system user.
    path = Path(tempfile.mkdtemp(prefix="dmdb-embedded-")) / "home"
    yield path
    from dmdb.server.embedded import EmbeddedServer

    EmbeddedServer(path).destroy()
    shutil.rmtree(path.parent, ignore_errors=True)


def test_up_on_nothing_configured_starts_embedded_and_applies_schema(home, tmp_path):
    env = {"DMDB_HOME": str(home)}
    done = run_dmdb(["up", "--json"], env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    # one line says what was made, where, and how to stop it
    notice = [ln for ln in done.stderr.splitlines() if "embedded PostgreSQL" in ln]
    assert len(notice) == 1 and "initialised" in notice[0] and str(home) in notice[0]
    assert "PostgreSQL 18" in notice[0] and "dmdb server stop" in notice[0]
    applied = json.loads(done.stdout)["migrations"]
    shipped = sorted(p.stem for p in (REPO / "sql" / "migrations").glob("*.sql"))
    assert applied == shipped

    status = run_dmdb(["server", "status", "--json"], env, cwd=tmp_path)
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["running"] is True and info["version"] == "18"
    assert info["data_dir"] == str(home / "data")

    # Reused, not restarted: the same postmaster answers the next command.
    again = run_dmdb(["status", "--json"], env, cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads(again.stdout)["summary"]["up_to_date"] is True
    assert "embedded PostgreSQL" not in again.stderr  # reused: nothing to say
    status_again = run_dmdb(["server", "status", "--json"], env, cwd=tmp_path)
    assert json.loads(status_again.stdout)["pid"] == info["pid"]


def test_server_url_stop_and_restart(home, tmp_path):
    env = {"DMDB_HOME": str(home)}
    url = run_dmdb(["server", "url"], env, cwd=tmp_path).stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 180000
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert "pg_stat_statements" in preload

    stopped = run_dmdb(["server", "stop"], env, cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    down = run_dmdb(["server", "status"], env, cwd=tmp_path)
    assert down.returncode == 1 and "not running" in down.stdout
    # A stopped, existing cluster: even a read-only command starts it (saying so), with
    # the data kept.
    back = run_dmdb(["status", "--json"], env, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["summary"]["applied"] > 0
    assert "started embedded PostgreSQL 18" in back.stderr and str(home) in back.stderr
    assert "initialised" not in back.stderr


def test_inside_a_project_the_home_is_the_project_root_from_any_subdirectory():
    project = Path(tempfile.mkdtemp(prefix="dmdb-proj-"))
    (project / "dmdb.toml").write_text("")
    (project / "sql" / "migrations").mkdir(parents=True)
    sub = project / "sql" / "migrations"
    env = {"HOME": str(project / "user"), "XDG_DATA_HOME": str(project / "xdg")}
    done = run_dmdb(["server", "start", "--json"], env, cwd=sub, timeout=300)
    try:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["home"] == str(project / ".dmdb")
        assert (project / ".dmdb" / "data" / "PG_VERSION").exists()
        assert not (sub / ".dmdb").exists() and not (project / "xdg").exists()
        assert "initialised" in done.stderr and "dmdb server stop" in done.stderr
        # the same server from the project root
        status = run_dmdb(["server", "status", "--json"], env, cwd=project)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == json.loads(done.stdout)["pid"]
    finally:
        run_dmdb(["server", "stop"], env, cwd=project)
        shutil.rmtree(project, ignore_errors=True)


READ_ONLY = [["status"], ["status", "--json"], ["monitor", "--check"], ["monitor"],
             ["server", "url"], ["server", "status"], ["indexes", "report"],
             ["partitions", "list"], ["psql"], ["up", "--dry-run"], ["server", "stop"],
             ["config"]]


def test_read_only_commands_outside_a_project_create_no_server(tmp_path):
    """In an empty directory outside any project, with a fresh per-user home: nothing is
    created, nothing started; each command names the home and `dmdb up`."""
    empty = Path(tempfile.mkdtemp(prefix="dmdb-empty-"))
    xdg = tmp_path / "xdg"
    env = {"HOME": str(tmp_path / "user"), "XDG_DATA_HOME": str(xdg)}
    try:
        for args in READ_ONLY:
            done = run_dmdb(args, env, cwd=empty)
            if args in (["server", "stop"], ["config"]):
                assert done.returncode == 0, (args, done.stderr)
                continue
            assert done.returncode != 0, args
            out = done.stderr + done.stdout
            assert f"no embedded server at {xdg / 'dmdb'}; run `dmdb up` or set DATABASE_URL" in out
            assert "Traceback" not in out
        assert list(empty.iterdir()) == []
        assert not xdg.exists() and not (tmp_path / "user").exists()
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def test_a_mistyped_database_name_is_an_error_not_a_new_database(home, tmp_path):
    env = {"DMDB_HOME": str(home), "DB_NAME": "dmdb_typo"}
    done = run_dmdb(["status"], env, cwd=tmp_path)
    assert done.returncode == 1
    assert "dmdb_typo" in done.stderr and "does not exist" in done.stderr
    url = run_dmdb(["server", "url"], {"DMDB_HOME": str(home)}, cwd=tmp_path).stdout.strip()
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'dmdb_typo'")
        assert found.fetchone()[0] == 0
    # `dmdb server start` creates the configured database on purpose
    assert run_dmdb(["server", "start"], env, cwd=tmp_path).returncode == 0
    assert run_dmdb(["status"], env, cwd=tmp_path).returncode == 0
