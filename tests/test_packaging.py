"""The installed wheel, not the checkout: it must carry sql/, templates/ and data/ and work
from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_dmdb


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel and installed into a directory of its own."""
    target = tmp_path_factory.mktemp("wheel") / "site"
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), str(REPO)]
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
