"""The installed wheel, not the checkout: it must carry sql/, templates/ and data/, work
from any directory, and, run inside a checkout, read and write that checkout's SQL tree
(one wheel build for the module)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, run_dmdb


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel and installed into a directory of its own.

    Built from a copy of the sources: setuptools reuses a checkout's build/ directory, so
    a file deleted or renamed since an earlier `pip install .` would still be shipped."""
    base = tmp_path_factory.mktemp("wheel")
    source, target = base / "src", base / "site"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", ".dmdb", ".venv", "venv", ".ci-venv", ".ci-pgtls",
        "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"))
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), str(source)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return target


def _dmdb(site, args, cwd, env=None):
    # PYTHONPATH first: the installed copy shadows the checkout
    return run_dmdb(args, {**(env or {}), "PYTHONPATH": str(site)}, cwd=cwd, timeout=300)


def test_wheel_ships_sql_templates_and_data(installed):
    package = installed / "dmdb"
    shipped = {p.name for p in (package / "sql" / "migrations").glob("*.sql")}
    assert shipped == {p.name for p in (REPO / "sql" / "migrations").glob("*.sql")}
    assert {p.name for p in (package / "sql" / "rollbacks").glob("*.sql")} == shipped
    assert {p.name for p in (package / "sql" / "functions").glob("*.sql")} == {
        p.name for p in (REPO / "sql" / "functions").glob("*.sql")}
    assert (package / "sql" / "queries" / "ledger.sql").exists()
    # `dmdb lint` of the shipped migrations applies the same squawk config as CI
    assert (package / "sql" / "squawk.toml").read_text() == (REPO / "sql" / "squawk.toml").read_text()
    # `dmdb privacy` classifies the user-linked relations by it (issue 27)
    assert (package / "sql" / "privacy.toml").read_text() == (REPO / "sql" / "privacy.toml").read_text()
    assert {p.name for p in (package / "templates").glob("*.j2")} == {
        p.name for p in (REPO / "templates").glob("*.j2")}
    assert (package / "data" / "concepts.csv").exists()
    assert (package / "data" / "content.csv").exists()


def test_installed_dmdb_works_from_any_directory(installed, empty_url, tmp_path):
    where = subprocess.run([sys.executable, "-c", "import dmdb; print(dmdb.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(installed)})
    assert where.stdout.strip().startswith(str(installed))
    up = _dmdb(installed, ["up", "--json"], tmp_path, {"DATABASE_URL": empty_url})
    assert up.returncode == 0, up.stderr
    shipped = sorted(p.stem for p in (REPO / "sql" / "migrations").glob("*.sql"))
    assert json.loads(up.stdout)["migrations"] == shipped
    status = _dmdb(installed, ["status", "--json", "--check"], "/", {"DATABASE_URL": empty_url})
    assert status.returncode == 0, status.stderr
    assert all(m["state"] == "applied" for m in json.loads(status.stdout)["migrations"])
    crontab = _dmdb(installed, ["partitions", "cron"], tmp_path)
    assert crontab.returncode == 0, crontab.stderr
    assert "partitions rollover" in crontab.stdout


def test_write_apply_loop_from_a_subdirectory_of_a_checkout(installed, embedded_only):
    """The issue's day one, with a non-editable install: from sql/ of a checkout, `dmdb
    up` makes the project's embedded server, `dmdb new` writes into the checkout, and
    status/up/rollback read that same tree, not the copy in site-packages."""
    # Not under pytest's tmp dirs: the server's system user must reach it (see test_embedded).
    checkout = Path(tempfile.mkdtemp(prefix="dmdb-checkout-"))
    shutil.copytree(REPO / "sql", checkout / "sql")
    shutil.copy(REPO / "dmdb.toml", checkout / "dmdb.toml")
    shutil.copy(REPO / "pyproject.toml", checkout / "pyproject.toml")
    env = {"HOME": str(checkout / "user"), "XDG_DATA_HOME": str(checkout / "xdg")}
    where = checkout / "sql"
    shipped = sorted(p.stem for p in (REPO / "sql" / "migrations").glob("*.sql"))

    def dmdb(*args):
        done = _dmdb(installed, list(args), where, env)
        assert done.returncode == 0, (args, done.stderr)
        return done

    try:
        up = dmdb("up", "--json")
        assert json.loads(up.stdout)["migrations"] == shipped
        assert str(checkout / ".dmdb") in up.stderr and "dmdb server stop" in up.stderr
        assert (checkout / ".dmdb" / "data" / "PG_VERSION").exists()

        created = dmdb("new", "add badges").stdout
        forward = next(checkout.glob("sql/migrations/*_add_badges.sql"))
        backward = checkout / "sql" / "rollbacks" / forward.name
        assert str(forward) in created and backward.exists()
        file_id = forward.stem
        assert not list((installed / "dmdb" / "sql").glob("*/*_add_badges.sql"))
        with open(forward, "a") as handle:
            handle.write("CREATE TABLE badges (badge_id bigint PRIMARY KEY, name text NOT NULL);\n")
        with open(backward, "a") as handle:
            handle.write("DROP TABLE badges;\n")

        status = json.loads(dmdb("status", "--json").stdout)
        states = {m["id"]: m["state"] for m in status["migrations"]}
        assert states[file_id] == "pending" and status["summary"]["pending"] == 1

        applied = json.loads(dmdb("up", "--json").stdout)
        assert applied["migrations"] == [file_id]

        def badges_table() -> str:
            return dmdb("psql", "--", "-Atc", "SELECT to_regclass('badges') IS NOT NULL").stdout

        assert badges_table().strip() == "t"
        status = json.loads(dmdb("status", "--json", "--check").stdout)
        assert status["summary"]["up_to_date"] is True

        rolled = json.loads(dmdb("rollback", "--json").stdout)
        assert rolled["migrations"] == [file_id]
        assert badges_table().strip() == "f"
        status = json.loads(dmdb("status", "--json").stdout)
        assert {m["id"]: m["state"] for m in status["migrations"]}[file_id] == "pending"
        assert not (checkout / "xdg").exists() and not (where / ".dmdb").exists()
    finally:
        _dmdb(installed, ["server", "stop"], where, env)
        shutil.rmtree(checkout, ignore_errors=True)


def test_installed_version_matches_the_project(installed, tmp_path):
    done = _dmdb(installed, ["--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == f"dmdb {version}"
