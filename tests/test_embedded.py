"""The embedded default: with nothing configured dmdb starts its own PostgreSQL 18 under
.dmdb/ (or DMDB_HOME), reuses it between commands, and `dmdb server` manages it."""

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
    from dmdb.embedded import EmbeddedServer

    EmbeddedServer(path).destroy()
    shutil.rmtree(path.parent, ignore_errors=True)


def test_up_on_nothing_configured_starts_embedded_and_applies_schema(home, tmp_path):
    env = {"DMDB_HOME": str(home)}
    done = run_dmdb(["up", "--json"], env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
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
    # Any command brings it back, with the data kept.
    back = run_dmdb(["status", "--json"], env, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["summary"]["applied"] > 0


def test_default_home_is_dot_dmdb_in_the_working_directory():
    workdir = Path(tempfile.mkdtemp(prefix="dmdb-cwd-"))
    done = run_dmdb(["server", "start", "--json"], {}, cwd=workdir, timeout=300)
    try:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["home"] == str(workdir / ".dmdb")
        assert (workdir / ".dmdb" / "data" / "PG_VERSION").exists()
    finally:
        run_dmdb(["server", "stop"], {}, cwd=workdir)
        shutil.rmtree(workdir, ignore_errors=True)


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
