"""Settings precedence (flags > environment > .env), DATABASE_URL, redaction, validation."""

from __future__ import annotations

import json
import os
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


def test_nothing_configured_means_embedded_in_the_per_user_home(tmp_path: Path):
    settings = load_settings({"HOME": str(tmp_path / "me")}, cwd=tmp_path)
    assert settings.embedded
    assert settings.home == tmp_path / "me" / ".local" / "share" / "dmdb"
    assert settings.project_file is None and settings.sql_dir is None  # the shipped tree
    xdg = load_settings({"HOME": str(tmp_path / "me"), "XDG_DATA_HOME": str(tmp_path / "xdg")},
                        cwd=tmp_path)
    assert xdg.home == tmp_path / "xdg" / "dmdb"
    assert load_settings({"DMDB_HOME": str(tmp_path / "x")}, cwd=tmp_path).home == tmp_path / "x"
    assert not load_settings({"DB_HOST": "h"}, cwd=tmp_path).embedded


def _project(root: Path, text: str, name: str = "dmdb.toml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    (root / "sql" / "migrations").mkdir(parents=True, exist_ok=True)
    deep = root / "a" / "b"
    deep.mkdir(parents=True, exist_ok=True)
    return deep


def test_project_file_is_found_upward_and_its_paths_are_relative_to_it(tmp_path: Path):
    deep = _project(tmp_path / "proj", 'dbname = "from_project"\nport = 6100\n')
    settings = load_settings({"HOME": str(tmp_path / "me")}, cwd=deep)
    assert settings.project_file == tmp_path / "proj" / "dmdb.toml"
    assert settings.sql_dir == tmp_path / "proj" / "sql"
    assert settings.home == tmp_path / "proj" / ".dmdb"
    assert (settings.dbname, settings.port) == ("from_project", 6100)
    assert settings.sources["dbname"] == "dmdb.toml"
    assert settings.sources["home"].startswith("default")

    custom = _project(tmp_path / "other", 'sql_dir = "db/schema"\nhome = "var/pg"\n')
    settings = load_settings({}, cwd=custom)
    assert settings.sql_dir == tmp_path / "other" / "db" / "schema"
    assert settings.home == tmp_path / "other" / "var" / "pg"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to give a file to another user")
@pytest.mark.parametrize("name, text", [
    ("dmdb.toml", 'sql_dir = "evil"\n'),
    ("pyproject.toml", '[tool.dmdb]\nsql_dir = "evil"\n'),
    (".env", "DATABASE_URL=postgresql://u@evil.example/x\n"),
])
def test_files_another_user_owns_are_refused(tmp_path: Path, name, text):
    """A project file or .env found upward (e.g. /tmp/dmdb.toml, which anyone can create)
    decides which SQL `dmdb up` runs as you, and where: one another user owns is refused,
    as git refuses a repository of dubious ownership."""
    import pwd

    shared = tmp_path / "shared"
    work = shared / "mine"
    work.mkdir(parents=True)
    planted = shared / name
    planted.write_text(text)
    if name == ".env":  # read from the working directory or the project root
        (shared / "dmdb.toml").write_text("")
    os.chown(planted, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(ConfigError) as info:
        load_settings({"HOME": str(tmp_path / "me")}, cwd=work)
    assert str(planted) in str(info.value) and "another user" in str(info.value)
    os.chown(planted, os.geteuid(), -1)  # the same file, yours: used
    assert load_settings({"HOME": str(tmp_path / "me")}, cwd=work).project_file is not None


def test_pyproject_tool_dmdb_counts_and_a_pyproject_without_it_does_not(tmp_path: Path):
    outer = tmp_path / "outer"
    _project(outer, '[tool.dmdb]\ndbname = "outer_db"\n', name="pyproject.toml")
    inner = outer / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "unrelated"\n')
    settings = load_settings({}, cwd=inner)
    assert settings.project_file == outer / "pyproject.toml"
    assert settings.dbname == "outer_db"
    assert settings.sources["dbname"] == "pyproject.toml [tool.dmdb]"


def test_precedence_flags_env_dotenv_project_file_defaults(tmp_path: Path):
    deep = _project(tmp_path / "proj",
                    'dbname = "p_db"\nuser = "p_user"\nport = 6001\nhost = "p_host"\n'
                    'connect_timeout = 9\n')
    # .env in the project root is read from a subdirectory too
    (tmp_path / "proj" / ".env").write_text("DB_USER=dotenv_user\nDB_PORT=6002\nDB_HOST=dotenv_host\n")
    settings = load_settings({"DB_PORT": "6003", "DB_HOST": "env_host"}, cwd=deep)
    assert settings.connect_timeout == 9 and settings.sources["connect_timeout"] == "dmdb.toml"
    assert settings.dbname == "p_db" and settings.sources["dbname"] == "dmdb.toml"
    assert settings.user == "dotenv_user" and settings.sources["user"] == ".env"
    assert settings.port == 6003 and settings.sources["port"] == "env"
    flagged = settings.with_overrides(host="flag_host")
    assert flagged.host == "flag_host" and flagged.sources["host"] == "flag"
    assert load_settings({}, cwd=tmp_path).dbname == "dmdb"  # outside it: the default


def test_env_sql_dir_and_home_beat_the_project_file(tmp_path: Path):
    deep = _project(tmp_path / "proj", 'sql_dir = "sql"\n')
    settings = load_settings({"DMDB_SQL_DIR": "mine", "DMDB_HOME": "h"}, cwd=deep)
    assert settings.sql_dir == deep / "mine" and settings.sources["sql_dir"] == "env"
    assert settings.home == deep / "h" and settings.sources["home"] == "env"


@pytest.mark.parametrize("text, needle", [
    ('password = "hunter2"\n', "password"),
    ('database_url = "postgresql://u:p@h/d"\n', "database_url"),
    ('dbnmae = "typo"\n', "dbnmae"),
    ('port = "5432"\n', "port"),
    ('dbname = \n', "TOML"),
])
def test_bad_project_files_are_config_errors_naming_the_file(tmp_path: Path, text, needle):
    deep = _project(tmp_path / "proj", text)
    with pytest.raises(ConfigError) as info:
        load_settings({}, cwd=deep)
    assert needle in str(info.value) and "dmdb.toml" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert info.value.exit_code == 2


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


def test_config_command_names_the_project_file_and_each_source(cli, tmp_path: Path, monkeypatch):
    deep = _project(tmp_path / "proj", 'dbname = "p_db"\n')
    monkeypatch.chdir(deep)
    result = cli(["config", "--json"], env={"DB_USER": "u_env", "HOME": str(tmp_path / "me"),
                                                "XDG_DATA_HOME": None})
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["project_file"] == str(tmp_path / "proj" / "dmdb.toml")
    assert data["sql_dir"] == str(tmp_path / "proj" / "sql")
    assert data["home"] == str(tmp_path / "proj" / ".dmdb")
    assert data["sources"]["dbname"] == "dmdb.toml" and data["sources"]["user"] == "env"
    assert data["sources"]["port"] == "default"
    text = cli(["config"], env={"HOME": str(tmp_path / "me"), "XDG_DATA_HOME": None})
    assert f"project file: {tmp_path / 'proj' / 'dmdb.toml'}" in text.stdout
    # Options after the command, as before it
    flagged = cli(["config", "--json", "--dbname", "flagged", "--sql-dir", "elsewhere"])
    assert flagged.exit_code == 0, flagged.stderr
    data = json.loads(flagged.stdout)
    assert data["dbname"] == "flagged" and data["sources"]["dbname"] == "flag"
    assert data["sql_dir"] == "elsewhere" and data["sources"]["sql_dir"] == "flag"
    assert not (tmp_path / "proj" / ".dmdb").exists()  # config starts nothing


def test_config_outside_any_project_says_so(cli, tmp_path: Path):
    result = cli(["config"], env={"HOME": str(tmp_path / "me"), "XDG_DATA_HOME": None})
    assert result.exit_code == 0, result.stderr
    assert "no project file" in result.stdout
    data = json.loads(cli(["config", "--json"],
                          env={"HOME": str(tmp_path / "me"), "XDG_DATA_HOME": None}).stdout)
    assert data["project_file"] is None
    assert data["home"] == str(tmp_path / "me" / ".local" / "share" / "dmdb")


# -- every libpq parameter, carried (issue 24) -----------------------------------------

def test_every_libpq_parameter_of_the_url_reaches_the_connection(tmp_path: Path):
    url = ("postgresql://app:pw@db.example:6543/dm?sslmode=verify-full&sslrootcert=/etc/ca.pem"
           "&sslcert=/c.crt&sslkey=/c.key&channel_binding=require&target_session_attrs=read-write"
           "&options=-c%20statement_timeout%3D5s&connect_timeout=9")
    s = load_settings({"DATABASE_URL": url}, cwd=tmp_path)
    info = s.conninfo()
    assert {k: info[k] for k in ("host", "port", "dbname", "user", "password", "sslmode",
                                 "connect_timeout")} == {
        "host": "db.example", "port": 6543, "dbname": "dm", "user": "app", "password": "pw",
        "sslmode": "verify-full", "connect_timeout": 9}
    assert {k: info[k] for k in ("sslrootcert", "sslcert", "sslkey", "channel_binding",
                                 "target_session_attrs", "options")} == {
        "sslrootcert": "/etc/ca.pem", "sslcert": "/c.crt", "sslkey": "/c.key",
        "channel_binding": "require", "target_session_attrs": "read-write",
        "options": "-c statement_timeout=5s"}
    # The URL dmdb shows round-trips through libpq's own parser, password hidden.
    from psycopg.conninfo import conninfo_to_dict

    shown = conninfo_to_dict(s.url(redact=False))
    assert shown["sslrootcert"] == "/etc/ca.pem" and shown["options"] == "-c statement_timeout=5s"
    assert "pw" not in s.url()


def test_a_multi_host_url_keeps_every_host_and_port(tmp_path: Path):
    s = load_settings({"DATABASE_URL": "postgresql://u@h1:5432,h2:5433/dm"
                                       "?target_session_attrs=primary"}, cwd=tmp_path)
    info = s.conninfo()
    assert (info["host"], info["port"], info["target_session_attrs"]) == (
        "h1,h2", "5432,5433", "primary")
    from psycopg.conninfo import conninfo_to_dict

    assert conninfo_to_dict(s.url())["port"] == "5432,5433"


@pytest.mark.parametrize("query, needle", [
    ("sslrootcrt=/ca.pem", "'sslrootcrt' is not a libpq connection parameter"),
    ("application_name=x", "application_name=dmdb"),
    ("replication=database", "ordinary sessions"),
])
def test_an_unknown_or_conflicting_url_parameter_is_refused_by_name(tmp_path: Path, query,
                                                                     needle):
    with pytest.raises(ConfigError, match=needle):
        load_settings({"DATABASE_URL": f"postgresql://u@h/dm?{query}"}, cwd=tmp_path)


def test_db_ssl_keys_and_the_project_file_carry_tls_settings(tmp_path: Path):
    (tmp_path / "dmdb.toml").write_text('sslrootcert = "certs/ca.pem"\nsslmode = "verify-ca"\n')
    s = load_settings({"DB_HOST": "h", "DB_CHANNEL_BINDING": "require"}, cwd=tmp_path)
    info = s.conninfo()
    assert info["sslrootcert"] == str(tmp_path / "certs" / "ca.pem")
    assert (info["sslmode"], info["channel_binding"]) == ("verify-ca", "require")
    # The URL's parameters beat the DB_* keys, as its host beats DB_HOST.
    s = load_settings({"DB_SSLROOTCERT": "/a.pem",
                       "DATABASE_URL": "postgresql://u@h/dm?sslrootcert=/b.pem"}, cwd=tmp_path)
    assert s.conninfo()["sslrootcert"] == "/b.pem"


def test_the_direct_url_serves_sessions_and_keeps_the_tls_settings(tmp_path: Path):
    s = load_settings({"DATABASE_URL": "postgresql://u:pw@pooler:6543/dm?sslmode=require",
                       "DB_SSLROOTCERT": "/ca.pem",
                       "DMDB_DIRECT_URL": "postgresql://direct:5432/dm"}, cwd=tmp_path)
    assert s.conninfo()["host"] == "pooler"
    direct = s.session().conninfo()
    assert (direct["host"], direct["port"], direct["user"], direct["password"],
            direct["sslmode"], direct["sslrootcert"]) == (
        "direct", 5432, "u", "pw", "require", "/ca.pem")
    assert load_settings({"DATABASE_URL": "postgresql://u@h/dm"}, cwd=tmp_path).session() \
        == load_settings({"DATABASE_URL": "postgresql://u@h/dm"}, cwd=tmp_path)
    # A direct URL without a port is the server's default port, not the pooler's.
    assert load_settings({"DATABASE_URL": "postgresql://u@pooler:6543/dm",
                          "DMDB_DIRECT_URL": "postgresql://u@direct/dm"},
                         cwd=tmp_path).session().conninfo()["port"] == 5432
    with pytest.raises(ConfigError, match="DMDB_DIRECT_URL parameter 'bogus'"):
        load_settings({"DATABASE_URL": "postgresql://u@h/dm",
                       "DMDB_DIRECT_URL": "postgresql://u@h2/dm?bogus=1"}, cwd=tmp_path)


def test_tools_receive_every_parameter_in_the_environment_never_argv(tmp_path: Path):
    from dmdb.server.tools import tool_env

    s = load_settings({"DATABASE_URL": "postgresql://u:s3cret@h:6543/dm?sslmode=verify-full"
                                       "&sslrootcert=/ca.pem&channel_binding=require"},
                      cwd=tmp_path)
    env = tool_env(s, "other")
    assert (env["PGHOST"], env["PGPORT"], env["PGDATABASE"], env["PGUSER"], env["PGPASSWORD"],
            env["PGSSLMODE"], env["PGSSLROOTCERT"], env["PGCHANNELBINDING"], env["PGAPPNAME"]) \
        == ("h", "6543", "other", "u", "s3cret", "verify-full", "/ca.pem", "require", "dmdb")
    shown = json.dumps(s.redacted())
    assert "s3cret" not in shown
