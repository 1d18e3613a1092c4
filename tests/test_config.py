"""Settings precedence (flags > environment > .env), DATABASE_URL, redaction, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmdb.config import load_settings
from dmdb.db import redact
from dmdb.errors import ConfigError


def test_env_beats_dotenv_and_dotenv_fills_the_rest(tmp_path: Path):
    (tmp_path / ".env").write_text("DB_HOST=from-dotenv\nDB_PORT=6000\nDB_NAME=fromfile\n")
    settings = load_settings({"DB_HOST": "from-env"}, cwd=tmp_path)
    assert settings.host == "from-env"
    assert settings.port == 6000
    assert settings.dbname == "fromfile"
    assert settings.sources["host"] == "env"
    assert settings.sources["port"] == ".env"


def test_flags_beat_environment(tmp_path: Path):
    settings = load_settings({"DB_HOST": "env-host", "DB_PORT": "6000"}, cwd=tmp_path)
    flagged = settings.with_overrides(host="flag-host", port=None)
    assert flagged.host == "flag-host" and flagged.port == 6000
    assert flagged.sources["host"] == "flag"


def test_database_url_overrides_db_keys(tmp_path: Path):
    env = {"DB_HOST": "ignored", "DB_USER": "ignored", "DB_NAME": "ignored",
           "DATABASE_URL": "postgresql://app:p%40ss@db.example:6543/drive?sslmode=require"}
    settings = load_settings(env, cwd=tmp_path)
    assert (settings.host, settings.port, settings.user, settings.dbname) == (
        "db.example", 6543, "app", "drive")
    assert settings.password == "p@ss"
    assert settings.sslmode == "require"
    assert "p@ss" not in settings.url() and "***" in settings.url()
    assert settings.url(redact=False).startswith("postgresql://app:p%40ss@db.example:6543/drive")


def test_socket_url_round_trips(tmp_path: Path):
    settings = load_settings({"DATABASE_URL": "postgresql://postgres@/dm?host=/tmp/sock&port=5433"},
                             cwd=tmp_path)
    assert settings.host == "/tmp/sock" and settings.port == 5433
    again = load_settings({"DATABASE_URL": settings.url(redact=False)}, cwd=tmp_path)
    assert (again.host, again.port, again.dbname, again.user) == ("/tmp/sock", 5433, "dm", "postgres")


def test_nothing_configured_means_embedded(tmp_path: Path):
    settings = load_settings({}, cwd=tmp_path)
    assert settings.embedded
    assert settings.home == tmp_path / ".dmdb"
    assert load_settings({"DMDB_HOME": str(tmp_path / "x")}, cwd=tmp_path).home == tmp_path / "x"
    assert not load_settings({"DB_HOST": "h"}, cwd=tmp_path).embedded


@pytest.mark.parametrize("env, needle", [
    ({"DB_PORT": "abc"}, "DB_PORT"),
    ({"DB_PORT": "70000"}, "port"),
    ({"DB_SSLMODE": "sometimes"}, "DB_SSLMODE"),
    ({"DATABASE_URL": "mysql://x@y/z"}, "postgresql://"),
    ({"DATABASE_URL": "postgresql:///nohost"}, "no host"),
    ({"DB_CONNECT_TIMEOUT": "soon"}, "DB_CONNECT_TIMEOUT"),
])
def test_bad_settings_are_config_errors(tmp_path: Path, env, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(env, cwd=tmp_path)
    assert needle in str(info.value)
    assert info.value.exit_code == 2


def test_redact_removes_passwords():
    assert "hunter2" not in redact("postgresql://u:hunter2@h/db failed")
    assert "hunter2" not in redact("password=hunter2 host=x")
    assert redact("plain message") == "plain message"


def test_config_command_redacts_and_reports_sources(cli, tmp_path: Path):
    (tmp_path / ".env").write_text("DB_PASSWORD=dotenv-secret-123\nDB_PORT=6001\n")
    result = cli(["config", "--json"], env={"DB_HOST": "db.internal", "DB_USER": "app"})
    assert result.exit_code == 0, result.stderr
    assert "dotenv-secret-123" not in result.stdout
    data = json.loads(result.stdout)
    assert data["host"] == "db.internal" and data["port"] == 6001
    assert data["password"] == "***"
    assert data["embedded"] is False
    assert "***" in data["url"]
    table = cli(["config"], env={"DB_HOST": "db.internal"})
    assert "dotenv-secret-123" not in table.stdout and ".env" in table.stdout
    flagged = cli(["--host", "other", "config", "--json"], env={"DB_HOST": "db.internal"})
    assert json.loads(flagged.stdout)["host"] == "other"


def test_bad_config_exits_2_with_one_line(cli):
    result = cli(["status"], env={"DB_HOST": "x", "DB_PORT": "not-a-port"})
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DB_PORT" in result.stderr
