"""The command line without traps: --version, global options after the command, a hint
per connection-failure cause, `dmdb psql`, `dmdb new` into the project's tree, and
--debug showing a traceback for every error (and no traceback without it)."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import quote

import pytest

from conftest import PASSWORD, PASSWORD_ROLE, REPO, run_dmdb


def _pyproject_version() -> str:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_version(cli):
    for args in (["--version"], ["status", "--version"]):
        result = cli(args)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == f"dmdb {_pyproject_version()}"


@pytest.fixture
def one(sql_tree):
    sql_tree.migration("0001_t1", "CREATE TABLE t1 (id int);", "DROP TABLE t1;")
    return sql_tree


def test_global_options_are_accepted_after_the_command(cli, empty_url, one):
    before = cli(["--sql-dir", one.root, "status", "--json"], url=empty_url)
    after = cli(["status", "--json", "--sql-dir", one.root], url=empty_url)
    assert before.exit_code == after.exit_code == 0, after.stderr
    assert json.loads(after.stdout)["migrations"] == json.loads(before.stdout)["migrations"]
    assert [m["id"] for m in json.loads(after.stdout)["migrations"]] == ["0001_t1"]
    # --sql-dir=DIR form, and the flag after the command's own argument
    created = cli(["new", "add badges", f"--sql-dir={one.root}"])
    assert created.exit_code == 0, created.stderr
    assert (one.root / "migrations" / "0002_add_badges.sql").exists()
    # --dbname after the command reaches the connection
    wrong = cli(["status", "--dbname", "no_such_db_after", "--sql-dir", one.root], url=empty_url)
    assert wrong.exit_code == 1 and "no_such_db_after" in wrong.stderr
    # a command's own option written before the command
    swapped = cli(["--json", "--sql-dir", one.root, "status"], url=empty_url)
    assert swapped.exit_code == 0, swapped.stderr
    assert json.loads(swapped.stdout)["summary"]["pending"] == 2


def test_a_command_option_named_like_a_global_stays_with_the_command(cli):
    # `partitions cron --user` is the systemd User=, not the database role
    result = cli(["partitions", "cron", "--user", "cronrunner", "--format", "systemd"])
    assert result.exit_code == 0, result.stderr
    assert "User=cronrunner" in result.stdout


def test_usage_errors_are_one_line_and_a_bare_group_prints_its_help(cli):
    for args in (["--nope", "status"], ["status", "--nope"], ["partitions", "nope"]):
        result = cli(args)
        assert result.exit_code == 2
        assert result.stderr.startswith("dmdb: error: ") and result.stderr.count("\n") == 1, args
    bare = cli(["partitions"])
    assert "Usage:" in bare.stdout and "dmdb: error" not in bare.stderr


def test_a_global_option_after_the_command_without_its_value_is_named(cli):
    # `dmdb status --dbname` used to become `dmdb --dbname status`: "Missing command."
    for args in (["status", "--dbname"], ["partitions", "list", "--sql-dir"]):
        result = cli(args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and args[-1] in result.stderr, result.stderr
        assert "requires an argument" in result.stderr


def test_a_global_option_after_the_command_does_not_take_the_next_option_as_its_value(cli):
    # `dmdb status --dbname --json` used to connect to a database named "--json"
    for args in (["status", "--dbname", "--json"], ["partitions", "list", "--sql-dir", "--json"]):
        result = cli(args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"Option '{args[-2]}' requires an argument." in result.stderr
    # a value that only looks like an option is still given with `=`
    given = cli(["status", "--sql-dir=--no-such-dir"])
    assert "requires an argument" not in given.stderr


def test_new_writes_into_the_project_tree_and_refuses_outside_a_project(cli, tmp_path,
                                                                       monkeypatch):
    outside = cli(["new", "add badges"])
    assert outside.exit_code == 2
    assert "--sql-dir" in outside.stderr and outside.stderr.count("\n") == 1
    project = tmp_path / "proj"
    for sub in ("migrations", "rollbacks"):
        (project / "db" / sub).mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.dmdb]\nsql_dir = "db"\n')
    monkeypatch.chdir(project / "db" / "migrations")
    created = cli(["new", "add badges"])
    assert created.exit_code == 0, created.stderr
    assert (project / "db" / "migrations" / "0001_add_badges.sql").exists()
    assert (project / "db" / "rollbacks" / "0001_add_badges.sql").exists()


# -- connection failures: a hint per cause -------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never answers (the server side of a
    timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _url(settings, *, user=None, password=None, dbname=None) -> str:
    host = quote(settings.host, safe="")
    auth = quote(user or settings.user or "")
    if password:
        auth += ":" + quote(password)
    return (f"postgresql://{auth}@/{dbname or settings.dbname}?host={host}"
            f"&port={settings.port}")


def test_unknown_role_hint(cli, pg_settings, embedded_only):
    result = cli(["status"], url=_url(pg_settings, user="no_such_role_x"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert 'role "no_such_role_x" does not exist' in result.stderr
    assert "no role no_such_role_x" in result.stderr and "DB_USER" in result.stderr


def test_unknown_database_hint(cli, pg_settings):
    url = pg_settings.url(redact=False, dbname="no_such_db_x")
    result = cli(["status"], url=url)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no database no_such_db_x" in result.stderr and "DB_NAME" in result.stderr
    assert "DB_HOST" not in result.stderr


def test_wrong_password_hint(cli, pg_settings, embedded_only):
    result = cli(["status"], url=_url(pg_settings, user=PASSWORD_ROLE, password="Wr0ng-pw-9"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "wrong or missing password" in result.stderr and "DB_PASSWORD" in result.stderr
    assert "Wr0ng-pw-9" not in result.stderr


def test_refused_hint(cli):
    result = cli(["status"], url=f"postgresql://u@127.0.0.1:{_free_port()}/db")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "nothing listens there" in result.stderr and "DB_PORT" in result.stderr


def test_timed_out_hint(cli, silent_port):
    url = f"postgresql://u@127.0.0.1:{silent_port}/db?connect_timeout=2"
    result = cli(["status"], url=url, env={"DB_CONNECT_TIMEOUT": "2"})
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no answer within DB_CONNECT_TIMEOUT=2s" in result.stderr


# -- --debug: a traceback for every error, none without it ---------------------------

def test_debug_shows_a_traceback_for_a_user_error(cli):
    env = {"DB_HOST": "x", "DB_PORT": "not-a-port"}
    plain = cli(["status"], env=env)
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.count("\n") == 1
    for args in (["--debug", "status"], ["status", "--debug"]):
        debug = cli(args, env=env)
        assert debug.exit_code == 2
        assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr
        assert debug.stderr.rstrip().splitlines()[-1].startswith("dmdb: error: DB_PORT")
    usage = cli(["status", "--nope", "--debug"])
    assert usage.exit_code == 2 and "Traceback" in usage.stderr
    # a usage error dmdb raises itself (no `except` around it) shows that error, not None
    missing = cli(["--debug", "status", "--dbname"])
    assert missing.exit_code == 2 and "NoneType: None" not in missing.stderr
    assert "UsageError: Option '--dbname' requires an argument." in missing.stderr


def test_debug_shows_a_traceback_for_an_unexpected_error(cli, monkeypatch):
    import dmdb.config

    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected fault")

    monkeypatch.setattr(dmdb.config, "load_settings", broken)
    plain = cli(["config"])
    assert plain.exit_code == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.count("\n") == 1
    assert "ZeroDivisionError: injected fault" in plain.stderr and "--debug" in plain.stderr
    debug = cli(["config", "--debug"])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "in broken" in debug.stderr


def test_an_unusable_home_is_one_line_and_debug_shows_where(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"DMDB_HOME": str(blocker / "home")}
    plain = run_dmdb(["server", "start"], env, cwd=tmp_path)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.count("\n") == 1 and str(blocker / "home") in plain.stderr
    debug = run_dmdb(["server", "start", "--debug"], env, cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "NotADirectoryError" in debug.stderr


# -- dmdb psql ------------------------------------------------------------------------

def test_psql_runs_on_the_configured_database(empty_db, tmp_path):
    name, url = empty_db
    done = run_dmdb(["psql", "--", "-Atc", "SELECT current_database()"],
                    {"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == name
    failed = run_dmdb(["psql", "--", "-Atc", "SELECT nope"], {"DATABASE_URL": url}, cwd=tmp_path)
    assert failed.returncode != 0 and "nope" in failed.stderr


def test_psql_gets_the_password_through_the_environment(pg_settings, embedded_only, tmp_path):
    from dmdb.config import load_settings
    from dmdb.server.psql import psql_command

    url = _url(pg_settings, user=PASSWORD_ROLE, password=PASSWORD, dbname="postgres")
    command = psql_command(load_settings({"DATABASE_URL": url}, cwd=tmp_path), ["-Atc", "SELECT 1"])
    assert PASSWORD not in " ".join(command.argv)
    assert command.env["PGPASSWORD"] == PASSWORD
    done = run_dmdb(["psql", "--", "-Atc", "SELECT current_user"], {"DATABASE_URL": url},
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == PASSWORD_ROLE


def test_help_lists_the_new_commands(cli):
    result = cli(["--help"])
    for word in ("psql", "reset", "seed", "--version"):
        assert word in result.stdout
