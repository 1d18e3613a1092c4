"""Helpers of the `dmdb monitor` tests (tests/test_monitor*.py)."""

from __future__ import annotations

import json
import time

import psycopg
import pytest


def run_json(cli, url, *args, env=None):
    result = cli(["monitor", "--json", *args], url=url, env=env)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    return data, {c["name"]: c for c in data["checks"]}


def one(cli, url, name, *args, env=None):
    _, checks = run_json(cli, url, "--only", name, *args, env=env)
    assert list(checks) == [name]
    return checks[name]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def add_user(conn) -> int:
    return conn.execute(
        "INSERT INTO users (email, display_name) VALUES (%s, 'Monitor') RETURNING user_id",
        (f"m{time.monotonic_ns()}@example.com",)).fetchone()[0]


def needs_superuser(url: str) -> None:
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone()[0]:
            pytest.skip("needs a superuser (replication slots, CHECKPOINT)")


def sql_literal(template: str, value: str):
    from psycopg import sql

    return sql.SQL(template).format(sql.Literal(value))
