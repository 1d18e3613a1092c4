"""Test fixtures: a real PostgreSQL, one fresh database per test (or per module).

By default the suite starts its own embedded PostgreSQL 18 in a temporary directory
(fsync off: it is thrown away). `DMDB_TEST_DATABASE_URL=postgresql://...` runs the suite
against an existing server instead; its role needs CREATEDB (and superuser for the DDL
audit and the embedded-only tests, which skip themselves elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dmdb.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
PASSWORD_ROLE = "dmdb_pw_test"
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="session")
def pg_settings():
    """Admin settings (dbname 'postgres') for the server the suite runs against."""
    url = os.environ.get("DMDB_TEST_DATABASE_URL")
    if url:
        settings = load_settings({"DATABASE_URL": url})
        yield replace(settings, dbname="postgres")
        return
    from dmdb.server.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="dmdb-test-"))
    server = EmbeddedServer(home, fast=True)
    info = server.start(dbname="postgres")
    # One role that must authenticate with a password, for the wrong-password tests (its
    # line goes first); everything else keeps the embedded server's peer authentication,
    # which admits this OS user as any role.
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\n" + hba.read_text())
    with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(PASSWORD_ROLE), sql.Literal(PASSWORD)))
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield Settings(host=info.socket_dir, port=info.port, dbname="postgres", user="postgres",
                       home=home)
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def managed(tmp_path_factory):
    """The managed-like lane (tests/managed.py): TLS-only PostgreSQL with a non-superuser
    owner, and PgBouncer (transaction pooling) in front; started once, on first use.
    Its PostgreSQL needs a build with OpenSSL, whose bin directory DMDB_TEST_PG_TLS_BINDIR
    names (.ci/run installs one); without it the lane skips, except under CI."""
    from managed import start

    if os.environ.get("DMDB_TEST_DATABASE_URL"):
        # The lane brings its own server: CI runs it once, in the suite's first run.
        pytest.skip("the managed-like lane runs in the suite's own (embedded) run")
    bin_dir = os.environ.get("DMDB_TEST_PG_TLS_BINDIR")
    if not bin_dir:
        reason = ("DMDB_TEST_PG_TLS_BINDIR is not set: the managed lane needs the bin directory "
                  "of a PostgreSQL built with OpenSSL (see .ci/run)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    pgbouncer_binary()
    server = start(tmp_path_factory.mktemp("managed"), Path(bin_dir))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def statements_available(pg_settings):
    """The server preloads pg_stat_statements (the suite's embedded server does; pgserver's
    PostgreSQL 16 has no such extension): the tests of what reads it skip elsewhere."""
    with _admin(pg_settings) as conn:
        ok = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = "
            "'pg_stat_statements') AND current_setting('shared_preload_libraries') "
            "LIKE '%pg_stat_statements%'").fetchone()[0]
    if not ok:
        pytest.skip("pg_stat_statements is not available on this server")


@pytest.fixture(scope="session")
def embedded_only(pg_settings):
    if os.environ.get("DMDB_TEST_DATABASE_URL"):
        pytest.skip("needs the suite's own embedded server")


def _admin(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(**settings.conninfo(), autocommit=True)


def _apply_schema(settings: Settings, dbname: str) -> None:
    from dmdb.migrate import engine

    with psycopg.connect(**settings.conninfo(dbname=dbname), autocommit=True) as conn:
        engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)


class Databases:
    """Creates databases on the test server and drops them again."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.created: list[str] = []
        self._template: str | None = None

    def url(self, dbname: str) -> str:
        return self.settings.url(redact=False, dbname=dbname)

    def template(self) -> str:
        """A database with the whole schema applied, copied for each schema test."""
        if self._template is None:
            name = f"dmdb_tpl_{uuid.uuid4().hex[:8]}"
            with _admin(self.settings) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            self.created.append(name)
            _apply_schema(self.settings, name)
            self._template = name
        return self._template

    def create(self, schema: bool = True) -> str:
        name = f"dmdb_t_{uuid.uuid4().hex[:10]}"
        with _admin(self.settings) as conn:
            if schema:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name), sql.Identifier(self.template())
                    )
                )
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with _admin(self.settings) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.created:
            self.created.remove(name)


@pytest.fixture(scope="session")
def databases(pg_settings):
    dbs = Databases(pg_settings)
    yield dbs
    for name in list(reversed(dbs.created)):
        try:
            dbs.drop(name)
        except psycopg.Error:
            pass


@pytest.fixture(scope="session")
def make_database(databases):
    """Factory: make_database(schema=True) -> URL of a new database (dropped at the end)."""

    def make(schema: bool = True) -> str:
        return databases.url(databases.create(schema=schema))

    return make


@pytest.fixture
def schema_db(databases):
    """(name, URL) of a fresh database with every migration and function applied."""
    name = databases.create(schema=True)
    yield name, databases.url(name)
    databases.drop(name)


@pytest.fixture
def schema_url(schema_db):
    return schema_db[1]


@pytest.fixture
def empty_db(databases):
    name = databases.create(schema=False)
    yield name, databases.url(name)
    databases.drop(name)


@pytest.fixture
def empty_url(empty_db):
    return empty_db[1]


@pytest.fixture
def sql_tree(tmp_path):
    """A scratch SQL tree (migrations/, rollbacks/, functions/) and a helper to write files."""

    class Tree:
        root = tmp_path / "sql"

        def migration(self, file_id: str, forward: str, rollback: str | None = None) -> None:
            (self.root / "migrations" / f"{file_id}.sql").write_text(forward)
            if rollback is not None:
                (self.root / "rollbacks" / f"{file_id}.sql").write_text(rollback)

        def function(self, name: str, body: str) -> None:
            (self.root / "functions" / f"{name}.sql").write_text(body)

    for sub in ("migrations", "rollbacks", "functions"):
        (Tree.root / sub).mkdir(parents=True)
    return Tree()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI in-process: cli(args, url=..., env=...) -> result with exit_code, stdout, stderr."""
    from typer.testing import CliRunner

    from dmdb.cli import app

    monkeypatch.chdir(tmp_path)
    for key in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD",
                "DMDB_SQL_DIR", "DMDB_HOME"):
        monkeypatch.delenv(key, raising=False)

    def run(args, url: str | None = None, env: dict | None = None):
        full_env = dict(env or {})
        if url is not None:
            full_env["DATABASE_URL"] = url
        runner = CliRunner()
        return runner.invoke(app, [str(a) for a in args], env=full_env, catch_exceptions=False)

    return run


def _dmdb_env(env: dict) -> dict:
    """This process's environment without any dmdb setting, plus `env`."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("DB_", "DATABASE_URL", "DMDB_"))}
    full_env.update(env)
    return full_env


def run_dmdb(args, env: dict, cwd: Path | None = None, timeout: float = 120):
    """Run `python -m dmdb` in a subprocess (for concurrency and kill tests)."""
    return subprocess.run(
        [sys.executable, "-m", "dmdb", *map(str, args)],
        capture_output=True, text=True, env=_dmdb_env(env), cwd=cwd, timeout=timeout,
    )


def popen_dmdb(args, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dmdb", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_dmdb_env(env), cwd=cwd,
    )


def without_target(stderr: str) -> str:
    """stderr without the line naming the target, which commands that change a database
    print first (issue #28)."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not line.startswith("dmdb: target: "))


def run_sql(url: str, query: str, params=None) -> list[tuple]:
    """One statement on its own autocommit connection; its rows ([] when it returns none)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


DATA_TABLES = ("users", "concepts", "concept_prerequisites", "content", "knowledge_states",
               "review_schedule", "learning_events", "bandit_arms")


def row_counts(url: str) -> dict[str, int]:
    """Rows of each data table (the tables are constants, not input)."""
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in DATA_TABLES}


def pgbouncer_binary() -> str:
    """Debian's pgbouncer; skip without it, except under CI, which installs it."""
    import shutil

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed; .ci/run installs Debian's package")
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    return binary


def start_pgbouncer(out: Path, probe_url: str) -> subprocess.Popen:
    """Run pgbouncer on `out`/pgbouncer.ini until `probe_url` answers through it.

    PgBouncer refuses to run as root; as root it runs as the embedded server's own OS
    user, the one other user its peer map admits."""
    import pwd
    import shutil
    import time

    from dmdb.server.embedded import SYSTEM_USER

    ini = out / "pgbouncer.ini"
    cmd = [pgbouncer_binary(), str(ini)]
    if os.geteuid() == 0:
        user = next(u for u in (SYSTEM_USER, "postgres", "nobody") if _has_user(pwd, u))
        shutil.chown(out, user)
        for f in out.iterdir():
            shutil.chown(f, user)
        for parent in out.parents:  # let the unprivileged user reach its files
            parent.chmod(parent.stat().st_mode | 0o001)
        cmd = [cmd[0], "-u", user, str(ini)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(100):
        try:
            psycopg.connect(probe_url, connect_timeout=2).close()
            return proc
        except psycopg.OperationalError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"pgbouncer did not start: {proc.communicate()[0]}")


def _has_user(pwd, name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
