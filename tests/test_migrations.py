"""The migration engine through the CLI, against a real PostgreSQL: every command and
every failure mode the foundation issue names."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import psycopg
import pytest

from conftest import PASSWORD, PASSWORD_ROLE, popen_dmdb, run_dmdb, run_sql, without_target

T1 = "-- first table\nCREATE TABLE t1 (id int PRIMARY KEY, note text);\n"
T1_BACK = "DROP TABLE t1;\n"
T2 = "CREATE TABLE t2 (id int PRIMARY KEY REFERENCES t1);\nCREATE INDEX t2_id_idx ON t2 (id);\n"
T2_BACK = "DROP TABLE t2;\n"


def tables(url: str) -> set[str]:
    return {r[0] for r in run_sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def ledger(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('_yoyo_migration')").fetchone()[0] is None:
            return []
        return [r[0] for r in conn.execute(
            "SELECT migration_id FROM _yoyo_migration ORDER BY migration_id").fetchall()]


@pytest.fixture
def two(sql_tree):
    sql_tree.migration("0001_t1", T1, T1_BACK)
    sql_tree.migration("0002_t2", T2, T2_BACK)
    return sql_tree


def test_up_applies_in_order_and_records_each(cli, empty_url, two):
    result = cli(["--sql-dir", two.root, "up"], url=empty_url)
    assert result.exit_code == 0, result.stderr
    assert "0001_t1" in result.stdout and "0002_t2" in result.stdout
    assert {"t1", "t2"} <= tables(empty_url)
    assert ledger(empty_url) == ["0001_t1", "0002_t2"]

    again = cli(["--sql-dir", two.root, "up"], url=empty_url)
    assert again.exit_code == 0
    assert "up to date" in again.stdout


def test_status_json_lists_applied_and_pending(cli, empty_url, two):
    cli(["--sql-dir", two.root, "up", "--to", "0001_t1"], url=empty_url)
    result = cli(["--sql-dir", two.root, "status", "--json"], url=empty_url)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    states = {m["id"]: m for m in data["migrations"]}
    assert states["0001_t1"]["state"] == "applied"
    assert states["0001_t1"]["applied_at"]
    assert states["0001_t1"]["description"] == "first table"
    assert states["0002_t2"]["state"] == "pending"
    assert data["summary"] == {"applied": 1, "pending": 1, "edited": 0, "missing_rollback": 0,
                               "functions_pending": 0, "interrupted": 0, "up_to_date": False}
    assert cli(["--sql-dir", two.root, "status", "--check"], url=empty_url).exit_code == 1
    cli(["--sql-dir", two.root, "up"], url=empty_url)
    assert cli(["--sql-dir", two.root, "status", "--check"], url=empty_url).exit_code == 0


def test_dry_run_prints_sql_and_changes_nothing(cli, empty_url, two):
    result = cli(["--sql-dir", two.root, "up", "--dry-run"], url=empty_url)
    assert result.exit_code == 0
    assert "CREATE TABLE t1" in result.stdout and "CREATE TABLE t2" in result.stdout
    assert tables(empty_url) == set()  # not even the ledger

    cli(["--sql-dir", two.root, "up"], url=empty_url)
    result = cli(["--sql-dir", two.root, "rollback", "--dry-run"], url=empty_url)
    assert result.exit_code == 0
    assert "DROP TABLE t2" in result.stdout and "DROP TABLE t1" not in result.stdout
    assert ledger(empty_url) == ["0001_t1", "0002_t2"]


def test_rollback_steps_and_to(cli, empty_url, sql_tree):
    for i in range(1, 5):
        sql_tree.migration(f"000{i}_m{i}", f"CREATE TABLE m{i} (id int);",
                           f"DROP TABLE m{i};")
    cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    result = cli(["--sql-dir", sql_tree.root, "rollback"], url=empty_url)
    assert result.exit_code == 0
    assert ledger(empty_url) == ["0001_m1", "0002_m2", "0003_m3"]
    cli(["--sql-dir", sql_tree.root, "rollback", "--to", "0001_m1"], url=empty_url)
    assert ledger(empty_url) == ["0001_m1"]
    assert tables(empty_url) >= {"m1"} and not tables(empty_url) & {"m2", "m3", "m4"}
    cli(["--sql-dir", sql_tree.root, "rollback", "--steps", "5"], url=empty_url)
    assert ledger(empty_url) == []
    assert "m1" not in tables(empty_url)


def test_bad_sql_leaves_database_unchanged_and_names_file_and_line(cli, empty_url, sql_tree):
    sql_tree.migration("0001_ok", "CREATE TABLE ok (id int);", "DROP TABLE ok;")
    sql_tree.migration(
        "0002_bad",
        "CREATE TABLE half (id int);\n\n-- then a typo\nINSERT INTO half\nVALUES (nope);\n",
        "DROP TABLE half;",
    )
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 1
    lines = without_target(result.stderr).strip().splitlines()
    assert len(lines) == 1
    assert "0002_bad.sql:5:" in lines[0]
    assert 'column "nope" does not exist' in lines[0]
    assert "Traceback" not in result.stderr
    assert "half" not in tables(empty_url)
    assert ledger(empty_url) == ["0001_ok"]


def test_missing_rollback_is_refused_before_anything_runs(cli, empty_url, sql_tree):
    sql_tree.migration("0001_a", "CREATE TABLE a (id int);", "DROP TABLE a;")
    sql_tree.migration("0002_b", "CREATE TABLE b (id int);")  # no rollback
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 1
    assert "0002_b" in result.stderr and "rollback" in result.stderr
    assert ledger(empty_url) == []
    status = json.loads(cli(["--sql-dir", sql_tree.root, "status", "--json"], url=empty_url).stdout)
    assert [m["missing_rollback"] for m in status["migrations"]] == [False, True]


def test_edited_applied_migration_is_refused_until_repaired(cli, empty_url, two):
    cli(["--sql-dir", two.root, "up", "--to", "0001_t1"], url=empty_url)
    path = two.root / "migrations" / "0001_t1.sql"
    path.write_text(path.read_text() + "-- an edit\n")

    status = json.loads(cli(["--sql-dir", two.root, "status", "--json"], url=empty_url).stdout)
    assert status["migrations"][0]["edited"] is True
    result = cli(["--sql-dir", two.root, "up"], url=empty_url)
    assert result.exit_code == 1
    assert "0001_t1" in result.stderr and "dmdb repair" in result.stderr
    assert ledger(empty_url) == ["0001_t1"]  # 0002 not applied either

    preview = cli(["--sql-dir", two.root, "repair", "--dry-run", "--json"], url=empty_url)
    assert json.loads(preview.stdout) == {"accepted": ["0001_t1"], "dry_run": True}
    assert cli(["--sql-dir", two.root, "up"], url=empty_url).exit_code == 1  # still refused
    repaired = cli(["--sql-dir", two.root, "repair", "--json"], url=empty_url)
    assert json.loads(repaired.stdout) == {"accepted": ["0001_t1"], "dry_run": False}
    assert cli(["--sql-dir", two.root, "up"], url=empty_url).exit_code == 0
    assert ledger(empty_url) == ["0001_t1", "0002_t2"]


def test_edited_rollback_is_reported(cli, empty_url, two):
    cli(["--sql-dir", two.root, "up"], url=empty_url)
    (two.root / "rollbacks" / "0002_t2.sql").write_text("DROP TABLE IF EXISTS t2;\n")
    status = json.loads(cli(["--sql-dir", two.root, "status", "--json"], url=empty_url).stdout)
    assert status["migrations"][1]["rollback_edited"] is True
    result = cli(["--sql-dir", two.root, "rollback"], url=empty_url)
    assert result.exit_code == 1 and "0002_t2" in result.stderr
    assert "t2" in tables(empty_url)


@pytest.mark.parametrize("command", [["up", "--to", "0009_nope"], ["rollback", "--to", "0009_nope"]])
def test_unknown_to_is_a_usage_error(cli, empty_url, two, command):
    result = cli(["--sql-dir", two.root, *command], url=empty_url)
    assert result.exit_code == 2
    assert "0009_nope" in result.stderr
    assert tables(empty_url) == set()


def test_unreachable_server_one_line_no_password(cli):
    url = "postgresql://someone:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2"
    result = cli(["status"], url=url)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect" in result.stderr and "DB_HOST" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_wrong_password_is_named_and_never_printed(cli, pg_settings, embedded_only):
    from urllib.parse import quote

    host = quote(pg_settings.host, safe="")
    wrong = "Wr0ng-Pa55word-xyz"
    url = f"postgresql://{PASSWORD_ROLE}:{wrong}@/postgres?host={host}"
    for args in (["status"], ["status", "--json"], ["up", "--dry-run"], ["config"],
                 ["config", "--json"]):
        result = cli(args, url=url)
        text = result.stdout + result.stderr
        assert wrong not in text, args
        assert PASSWORD not in text
    result = cli(["status"], url=url)
    assert result.exit_code == 1
    assert "password authentication failed" in result.stderr
    assert "DB_PASSWORD" in result.stderr

    right = f"postgresql://{PASSWORD_ROLE}:{quote(PASSWORD)}@/postgres?host={host}"
    result = cli(["config", "--json"], url=right)
    assert PASSWORD not in result.stdout
    assert json.loads(result.stdout)["password"] == "***"


def test_non_transactional_migration_recorded_after_success(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t", "CREATE TABLE t (id int, v int);", "DROP TABLE t;")
    sql_tree.migration(
        "0002_idx",
        "-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx ON t (v);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n",
        "-- transactional: false\nDROP INDEX CONCURRENTLY IF EXISTS t_id_idx;\n"
        "DROP INDEX CONCURRENTLY IF EXISTS t_v_idx;\n",
    )
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 0, result.stderr
    with psycopg.connect(empty_url) as conn:
        idx = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename='t'")}
    assert idx == {"t_v_idx", "t_id_idx"}
    assert ledger(empty_url) == ["0001_t", "0002_idx"]
    assert cli(["--sql-dir", sql_tree.root, "rollback"], url=empty_url).exit_code == 0
    assert ledger(empty_url) == ["0001_t"]


def test_failed_non_transactional_migration_is_not_recorded(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (1);",
                       "DROP TABLE t;")
    sql_tree.migration(
        "0002_uniq",
        "-- transactional: false\nCREATE UNIQUE INDEX CONCURRENTLY t_v_key ON t (v);\n",
        "-- transactional: false\nDROP INDEX CONCURRENTLY IF EXISTS t_v_key;\n",
    )
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 1
    assert "0002_uniq.sql:2:" in result.stderr and "non-transactional" in result.stderr
    assert ledger(empty_url) == ["0001_t"]


def test_function_files_are_repeatable(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    sql_tree.function("answer", "CREATE OR REPLACE FUNCTION answer() RETURNS int "
                                "LANGUAGE sql IMMUTABLE AS $$ SELECT 41 $$;")
    first = cli(["--sql-dir", sql_tree.root, "up", "--json"], url=empty_url)
    assert json.loads(first.stdout)["functions"] == ["answer"]
    second = cli(["--sql-dir", sql_tree.root, "up", "--json"], url=empty_url)
    assert json.loads(second.stdout)["functions"] == []

    sql_tree.function("answer", "CREATE OR REPLACE FUNCTION answer() RETURNS int "
                                "LANGUAGE sql IMMUTABLE AS $$ SELECT 42 $$;")
    status = json.loads(cli(["--sql-dir", sql_tree.root, "status", "--json"], url=empty_url).stdout)
    assert status["functions"][0]["state"] == "changed"
    third = cli(["--sql-dir", sql_tree.root, "up", "--json"], url=empty_url)
    assert json.loads(third.stdout)["functions"] == ["answer"]
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT answer()").fetchone()[0] == 42


def test_verify_passes_exact_inverses_and_names_the_first_that_is_not(cli, empty_url, two):
    result = cli(["--sql-dir", two.root, "verify", "--json"], url=empty_url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [s["id"] for s in data["steps"]] == ["0001_t1", "0002_t2"]

    two.migration("0003_leaky", "CREATE TABLE t3 (id int); CREATE INDEX t3_id_idx ON t3 (id);",
                  "DROP INDEX t3_id_idx;")  # forgets the table
    two.migration("0004_after", "CREATE TABLE t4 (id int);", "DROP TABLE t4;")
    result = cli(["--sql-dir", two.root, "verify"], url=empty_url)
    assert result.exit_code == 1
    assert "0003_leaky" in result.stderr
    assert "t3" in result.stdout  # the diff shows what was left behind
    assert "0004_after" not in result.stdout
    # verify works in a scratch database: the target is untouched
    assert tables(empty_url) == set()
    with psycopg.connect(empty_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'dmdb_verify_%'")
        assert left.fetchone()[0] == 0


def test_new_creates_next_numbered_pair(cli, two):
    result = cli(["--sql-dir", two.root, "new", "Add  badges"])
    assert result.exit_code == 0, result.stderr
    forward = two.root / "migrations" / "0003_add_badges.sql"
    backward = two.root / "rollbacks" / "0003_add_badges.sql"
    assert forward.exists() and backward.exists()
    assert "Add badges" in forward.read_text()
    assert "0003_add_badges" in backward.read_text()
    bad = cli(["--sql-dir", two.root, "new", "!!!"])
    assert bad.exit_code == 2


def test_misnamed_migration_file_is_a_usage_error(cli, empty_url, sql_tree):
    sql_tree.migration("create_stuff", "SELECT 1;", "SELECT 1;")
    result = cli(["--sql-dir", sql_tree.root, "status"], url=empty_url)
    assert result.exit_code == 2 and "NNNN_" in result.stderr


def _sql_env(url, tree):
    return {"DATABASE_URL": url, "DMDB_SQL_DIR": str(tree.root)}


def test_concurrent_up_applies_each_migration_once(empty_url, sql_tree, tmp_path):
    sql_tree.migration("0001_a", "CREATE TABLE a (id int); SELECT pg_sleep(0.5);", "DROP TABLE a;")
    sql_tree.migration("0002_b", "CREATE TABLE b (id int); SELECT pg_sleep(0.5);", "DROP TABLE b;")
    sql_tree.migration("0003_c", "CREATE TABLE c (id int);", "DROP TABLE c;")
    sql_tree.function("f", "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;")
    procs = [popen_dmdb(["up", "--json"], _sql_env(empty_url, sql_tree), cwd=tmp_path)
             for _ in range(6)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [o[1] for o in outputs]
    applied = [m for out, _ in outputs for m in json.loads(out)["migrations"]]
    assert sorted(applied) == ["0001_a", "0002_b", "0003_c"]  # each exactly once, in total
    functions = [f for out, _ in outputs for f in json.loads(out)["functions"]]
    assert functions == ["f"]
    with psycopg.connect(empty_url) as conn:
        log = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' "
            "GROUP BY 1 ORDER BY 1").fetchall()
    assert log == [("0001_a", 1), ("0002_b", 1), ("0003_c", 1)]


def test_lock_wait_is_bounded(empty_url, sql_tree, tmp_path):
    from dmdb.migrate.engine import MIGRATION_LOCK_KEY

    sql_tree.migration("0001_a", "CREATE TABLE a (id int);", "DROP TABLE a;")
    with psycopg.connect(empty_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        done = run_dmdb(["up", "--lock-timeout", "1"], _sql_env(empty_url, sql_tree), cwd=tmp_path)
    assert done.returncode == 1
    assert "migration lock" in done.stderr and "--lock-timeout" in done.stderr
    assert ledger(empty_url) == []


def test_up_during_a_rollback_waits_for_it_and_reapplies(empty_url, sql_tree, tmp_path):
    """`up` finding nothing pending while another run holds the migration lock does not
    decide without the lock: a rollback under way is taking migrations away (issue 29:
    `up` said "nothing to do", 8 of 8 races left the database behind the code)."""
    from dmdb.migrate import engine
    from dmdb.migrate.engine import MIGRATION_LOCK_KEY, Project

    for i, name in enumerate(("a", "b", "c"), 1):
        sql_tree.migration(f"000{i}_{name}", f"CREATE TABLE {name} (id int);",
                           f"DROP TABLE {name};")
    env = _sql_env(empty_url, sql_tree)
    assert run_dmdb(["up"], env, cwd=tmp_path).returncode == 0
    with psycopg.connect(empty_url, autocommit=True) as rollback_run:
        rollback_run.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        proc = popen_dmdb(["up"], env, cwd=tmp_path)
        try:
            with psycopg.connect(empty_url, autocommit=True) as watch:
                for _ in range(300):  # until `up` has read the ledger and polls the lock
                    polling = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE query LIKE 'SELECT pg_try_advisory_lock%%' AND pid <> %s",
                        (rollback_run.info.backend_pid,)).fetchone()[0]
                    if polling or proc.poll() is not None:
                        break
                    time.sleep(0.05)
            # The rollback this session stands for: the lock is re-entrant for it.
            engine.rollback(rollback_run, Project(sql_tree.root), steps=2, lock_wait=5)
        finally:
            rollback_run.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Applied 0002_b" in out and "Applied 0003_c" in out
    assert ledger(empty_url) == ["0001_a", "0002_b", "0003_c"]


def test_sigkill_mid_migration_then_clean_up(empty_url, sql_tree, tmp_path):
    slow = ("CREATE TABLE big (id int);\nINSERT INTO big SELECT generate_series(1, 1000);\n"
            "SELECT pg_sleep(60);\nCREATE TABLE after_sleep (id int);\n")
    sql_tree.migration("0001_first", "CREATE TABLE first (id int);", "DROP TABLE first;")
    sql_tree.migration("0002_slow", slow, "DROP TABLE after_sleep; DROP TABLE big;")
    proc = popen_dmdb(["up"], _sql_env(empty_url, sql_tree), cwd=tmp_path)
    try:
        with psycopg.connect(empty_url, autocommit=True) as watch:
            for _ in range(300):
                running = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%%'"
                ).fetchone()[0]
                if running:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the slow migration never started")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The killed run's transaction is gone: before 0002, never between.
    sql_tree.migration("0002_slow", slow.replace("SELECT pg_sleep(60);\n", ""),
                       "DROP TABLE after_sleep; DROP TABLE big;")
    assert ledger(empty_url) == ["0001_first"]
    done = run_dmdb(["up", "--lock-timeout", "30"], _sql_env(empty_url, sql_tree), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ledger(empty_url) == ["0001_first", "0002_slow"]
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT count(*) FROM big").fetchone()[0] == 1000


def test_a_killed_non_transactional_migration_is_shown_half_applied(empty_url, sql_tree,
                                                                    tmp_path):
    """Its first statements are committed, its record is not: `status` flags it and `drift`
    says that running the same `up` again completes it (issue 29)."""
    half = ("-- transactional: false\n"
            "CREATE TABLE IF NOT EXISTS first_half (id int);\n"
            "SELECT pg_sleep(60) WHERE to_regclass('go_on') IS NULL;\n"
            "CREATE TABLE IF NOT EXISTS second_half (id int);\n")
    sql_tree.migration("0001_first", "CREATE TABLE first (id int);", "DROP TABLE first;")
    env = _sql_env(empty_url, sql_tree)
    assert run_dmdb(["up"], env, cwd=tmp_path).returncode == 0
    sql_tree.migration("0002_half", half, "DROP TABLE IF EXISTS second_half;\n"
                       "DROP TABLE IF EXISTS first_half;")
    proc = popen_dmdb(["up"], env, cwd=tmp_path)
    try:
        with psycopg.connect(empty_url, autocommit=True) as watch:
            for _ in range(300):
                if watch.execute("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE query LIKE 'SELECT pg_sleep(60)%%'").fetchone()[0]:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the migration never reached its second statement")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    run_sql(empty_url, "CREATE TABLE go_on ()")

    done = run_dmdb(["status"], env, cwd=tmp_path)
    assert "INTERRUPTED apply" in done.stdout
    assert "interrupted: 0002_half: interrupted half-way through its apply" in done.stdout
    assert "run `dmdb up` again" in done.stdout
    data = json.loads(run_dmdb(["status", "--json"], env, cwd=tmp_path).stdout)
    assert data["summary"]["interrupted"] == 1 and not data["summary"]["up_to_date"]
    done = run_dmdb(["drift"], env, cwd=tmp_path)
    assert "0002_half: interrupted half-way" in done.stdout + done.stderr

    assert run_dmdb(["up"], env, cwd=tmp_path).returncode == 0
    data = json.loads(run_dmdb(["status", "--json"], env, cwd=tmp_path).stdout)
    assert data["summary"]["interrupted"] == 0 and data["summary"]["up_to_date"]
    assert run_sql(empty_url, "SELECT to_regclass('second_half') IS NOT NULL") == [(True,)]


@pytest.mark.parametrize("argv", [None, ["--help"], ["status", "--help"], ["partitions", "--help"]])
def test_help_does_not_import_the_database_stack(argv):
    """Importing the CLI, and any --help, loads no database driver, migration engine,
    template engine, nor pydantic (Typer's option coercion)."""
    import subprocess
    import sys

    run = "" if argv is None else (
        f"sys.argv = ['dmdb', *{argv!r}]\n"
        "try:\n    dmdb.cli.main()\nexcept SystemExit as exc:\n    assert not exc.code\n")
    code = ("import sys; import dmdb.cli\n" + run +
            "sys.stderr.write('LOADED:' + ','.join(m for m in ('psycopg', 'yoyo', 'sqlparse',"
            " 'jinja2', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert argv is None or "Usage: dmdb" in done.stdout
    assert done.stderr.rsplit("LOADED:", 1)[1] == ""


# -- busy databases: retries, non-transactional files, truthful errors (issue 14) --------


@pytest.fixture
def shipped_tree(tmp_path):
    """A copy of the shipped SQL tree, to add migrations to."""
    import shutil

    from conftest import REPO

    root = tmp_path / "shipped" / "sql"
    shutil.copytree(REPO / "sql", root)

    class Tree:
        def migration(self, file_id: str, forward: str, rollback: str) -> None:
            (root / "migrations" / f"{file_id}.sql").write_text(forward)
            (root / "rollbacks" / f"{file_id}.sql").write_text(rollback)

    Tree.root = root
    return Tree()


def _wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_busy_table_alter_retries_without_stalling_writers(schema_url, shipped_tree, tmp_path):
    import threading

    attempt = 0.5  # seconds: the per-attempt lock_timeout under test
    shipped_tree.migration("9001_nickname", "ALTER TABLE users ADD COLUMN nickname text;\n",
                           "ALTER TABLE users DROP COLUMN nickname;\n")
    user_id = run_sql(schema_url, "INSERT INTO users (email, display_name) VALUES "
                                  "('w@example.org', 'w') RETURNING user_id")[0][0]
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(schema_url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("UPDATE users SET xp = xp + 1 WHERE user_id = %s", (user_id,))
                waits.append(time.monotonic() - started)
                time.sleep(0.02)

    holder = psycopg.connect(schema_url, autocommit=False, application_name="long_report")
    holder.execute("SELECT count(*) FROM users").fetchone()  # ACCESS SHARE until commit
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    env = {**_sql_env(schema_url, shipped_tree), "DMDB_MIGRATE_BACKOFF_MAX": "1"}
    proc = popen_dmdb(["up", "--attempt-timeout", f"{int(attempt * 1000)}ms"], env, cwd=tmp_path)
    try:
        time.sleep(8)
        assert proc.poll() is None, "up finished while the holder still held its lock"
        holder_pid = holder.info.backend_pid
        holder.rollback()
        holder_ended = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=10)
        holder.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() >= holder_ended
    assert ledger(schema_url)[-1] == "9001_nickname"
    assert run_sql(schema_url, "SELECT count(*) FROM information_schema.columns "
                               "WHERE table_name = 'users' AND column_name = 'nickname'")[0][0] == 1
    # While retrying, dmdb named the blocker.
    assert f"pid {holder_pid}" in err and "long_report" in err and "SELECT count(*) FROM users" in err
    # The writer kept going: no single write waited much more than one attempt's timeout
    # (without retries it would have queued behind the ALTER for the holder's 8 s).
    assert len(waits) > 20
    assert max(waits) < attempt * 3, sorted(waits)[-5:]


def test_retries_exhausted_names_the_blocker_not_the_file(schema_url, shipped_tree, tmp_path):
    shipped_tree.migration("9001_nickname", "ALTER TABLE users ADD COLUMN nickname text;\n",
                           "ALTER TABLE users DROP COLUMN nickname;\n")
    with psycopg.connect(schema_url, application_name="stuck_job") as holder:
        holder.execute("SELECT count(*) FROM users").fetchone()
        done = run_dmdb(["up", "--attempt-timeout", "200ms", "--attempts", "2", "--backoff", "0.1"],
                        _sql_env(schema_url, shipped_tree), cwd=tmp_path)
        holder_pid = holder.info.backend_pid
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dmdb: error: 9001_nickname: could not take the locks")
    assert f"pid {holder_pid}" in last and "stuck_job" in last
    assert "not the file's fault" in last and "fix it" not in last
    assert "9001_nickname" not in ledger(schema_url)


@pytest.mark.parametrize("args,env,named", [
    (["up", "--attempt-timeout", "0"], {}, "--attempt-timeout"),
    (["rollback", "--attempt-timeout", "0"], {}, "--attempt-timeout"),
    (["up", "--statement-timeout", "0ms"], {}, "--statement-timeout"),
    (["up"], {"DMDB_MIGRATE_LOCK_TIMEOUT": "0"}, "DMDB_MIGRATE_LOCK_TIMEOUT"),
    (["status"], {"DMDB_LOCK_TIMEOUT": "0"}, "DMDB_LOCK_TIMEOUT"),
])
def test_unlimited_lock_timeout_is_refused(cli, empty_url, two, args, env, named):
    result = cli(["--sql-dir", two.root, *args], url=empty_url, env=env)
    assert result.exit_code == 2, result.stdout
    # The error names the flag or variable the user actually set (`up` also has an
    # unrelated --lock-timeout, so naming that one would send them to the wrong knob).
    assert "limit" in result.stderr and named in result.stderr
    assert named == "--lock-timeout" or "--lock-timeout" not in result.stderr
    assert ledger(empty_url) == []


def test_killed_concurrent_build_leaves_no_invalid_index(empty_url, sql_tree, tmp_path):
    sql_tree.migration("0001_t", "CREATE TABLE t (id int PRIMARY KEY, v int);\n"
                                 "INSERT INTO t SELECT g, g % 7 FROM generate_series(1, 2000) g;\n",
                       "DROP TABLE t;\n")
    sql_tree.migration("0002_t_v", "-- transactional: false\n"
                                   "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx ON t (v);\n",
                       "-- transactional: false\nDROP INDEX CONCURRENTLY IF EXISTS t_v_idx;\n")
    env = _sql_env(empty_url, sql_tree)
    assert run_dmdb(["up", "--to", "0001_t"], env, cwd=tmp_path).returncode == 0

    def building() -> bool:
        return bool(run_sql(empty_url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND query LIKE '%%CREATE INDEX CONCURRENTLY%%' "
                                       "AND pid <> pg_backend_pid()"))

    with psycopg.connect(empty_url) as writer:  # an open writer: the build waits for it
        writer.execute("INSERT INTO t VALUES (0, 0)")
        proc = popen_dmdb(["up"], env, cwd=tmp_path)
        try:
            _wait_until(building, what="the CONCURRENTLY build to wait")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        _wait_until(lambda: not building(), what="the killed run's backend to end")
        writer.rollback()
    invalid = "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indexrelid = 't_v_idx'::regclass"
    assert run_sql(empty_url, invalid)[0][0] == 1  # what an earlier killed run leaves
    assert ledger(empty_url) == ["0001_t"]

    done = run_dmdb(["up"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "INVALID index public.t_v_idx" in done.stdout
    assert run_sql(empty_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")[0][0] == 0
    assert run_sql(empty_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 't_v_idx'")[0][0] == 1
    assert ledger(empty_url) == ["0001_t", "0002_t_v"]


def test_failed_concurrent_unique_build_drops_its_invalid_index(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t", "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (1);",
                       "DROP TABLE t;")
    sql_tree.migration("0002_uniq", "-- transactional: false\n"
                                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_v_key ON t (v);\n",
                       "-- transactional: false\nDROP INDEX CONCURRENTLY IF EXISTS t_v_key;\n")
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 1
    assert "Key (v)=(1)" in result.stderr  # PostgreSQL's DETAIL
    assert run_sql(empty_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 't_v_key'")[0][0] == 0


def test_detail_and_hint_are_shown_on_one_line(cli, empty_url, sql_tree):
    sql_tree.migration("0001_dup", "CREATE TABLE d (id int PRIMARY KEY);\n"
                                   "INSERT INTO d VALUES (1), (1);\n", "DROP TABLE d;")
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert result.exit_code == 1
    lines = without_target(result.stderr).strip().splitlines()
    assert len(lines) == 1
    assert "0001_dup.sql:2:" in lines[0] and "Key (id)=(1) already exists" in lines[0]
    assert "fix it and run `dmdb up` again" in lines[0]

    sql_tree.migration("0001_dup", "SELECT * FROM pg_class WHERE relname = 1;\n", "SELECT 1;")
    result = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert "hint:" in result.stderr and "explicit type casts" in result.stderr


def test_lost_connection_is_not_blamed_on_the_file(empty_url, sql_tree, tmp_path):
    sql_tree.migration("0001_slow", "CREATE TABLE s (id int);\nSELECT pg_sleep(30);\n",
                       "DROP TABLE s;")
    proc = popen_dmdb(["up"], _sql_env(empty_url, sql_tree), cwd=tmp_path)
    sleeping = ("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%%' "
                "AND pid <> pg_backend_pid()")
    _wait_until(lambda: bool(run_sql(empty_url, sleeping)), what="the migration to run")
    run_sql(empty_url, f"SELECT pg_terminate_backend(pid) FROM ({sleeping}) s")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert "lost the connection" in last and "0001_slow is not applied" in last
    assert "fix it" not in last and ".sql:" not in last
    assert "s" not in tables(empty_url)


def test_partial_rollback_says_what_was_undone(cli, empty_url, sql_tree):
    sql_tree.migration("0001_a", "CREATE TABLE a (id int);", "DROP TABLE a;")
    sql_tree.migration("0002_b", "CREATE TABLE b (id int);", "DROP TABLE b; DROP TABLE nope;")
    sql_tree.migration("0003_c", "CREATE TABLE c (id int);", "DROP TABLE c;")
    assert cli(["--sql-dir", sql_tree.root, "up"], url=empty_url).exit_code == 0
    result = cli(["--sql-dir", sql_tree.root, "rollback", "--steps", "3"], url=empty_url)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "0002_b.sql:1:" in line and "rolled back before it in this run: 0003_c" in line
    assert "0002_b stays applied" in line
    assert ledger(empty_url) == ["0001_a", "0002_b"]


def test_retry_policy_flags_over_environment_and_session_cap():
    from dmdb.errors import ConfigError
    from dmdb.migrate.retry import RetryPolicy

    env = {"DMDB_MIGRATE_ATTEMPTS": "7", "DMDB_MIGRATE_LOCK_TIMEOUT": "300ms",
           "DMDB_MIGRATE_BACKOFF": "0.2", "DMDB_MIGRATE_BACKOFF_MAX": "1"}
    policy = RetryPolicy.build(env, attempts=3)
    assert (policy.attempts, policy.lock_timeout) == (3, "300ms")
    # A lower DMDB_LOCK_TIMEOUT caps the per-attempt default; a higher one does not raise it.
    assert RetryPolicy.build({}, session_lock_timeout="200ms").lock_timeout == "200ms"
    assert RetryPolicy.build({}, session_lock_timeout="5s").lock_timeout == RetryPolicy().lock_timeout
    for attempt in range(1, 12):  # jittered exponential pauses, never above the cap
        expected = min(policy.backoff * 2 ** (attempt - 1), policy.backoff_max)
        assert expected / 2 <= policy.delay(attempt) <= expected
    for bad in ({"DMDB_MIGRATE_ATTEMPTS": "0"}, {"DMDB_MIGRATE_RETRY_FOR": "soon"},
                {"DMDB_MIGRATE_STATEMENT_TIMEOUT": "0s"}):
        with pytest.raises(ConfigError):
            RetryPolicy.build(bad)


@pytest.mark.parametrize("statement,name", [
    ("CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx ON t (v)", "t_v_idx"),
    ("-- why\ncreate unique index concurrently app.\"T v\" on app.t (v)", "app.\"T v\""),
    ("CREATE INDEX t_v_idx ON t (v)", None),
    ("DROP INDEX CONCURRENTLY IF EXISTS t_v_idx", None),
])
def test_concurrent_index_name(statement, name):
    from dmdb.migrate.engine import concurrent_index_name

    assert concurrent_index_name(statement) == name


def test_verify_and_drift_do_not_replay_cluster_wide_statements(cli, empty_url, sql_tree):
    # verify and drift replay in a scratch database of the same server: a rollback's
    # DROP ROLE replayed there would drop the live role every database shares.
    role = f"dmdb_test_reader_{uuid.uuid4().hex[:8]}"
    sql_tree.migration("0001_reader",
                       f"CREATE ROLE {role} NOLOGIN;\nCREATE TABLE t (id int);\n"
                       f"GRANT SELECT ON t TO {role};\n",
                       f"REVOKE SELECT ON t FROM {role};\nDROP TABLE t;\nDROP ROLE {role};\n")
    assert cli(["--sql-dir", sql_tree.root, "up"], url=empty_url).exit_code == 0
    try:
        verified = cli(["--sql-dir", sql_tree.root, "verify", "--json"], url=empty_url)
        assert verified.exit_code == 0, verified.stderr
        not_replayed = json.loads(verified.stdout)["not_replayed"]
        assert [n.split(": ", 1)[1] for n in not_replayed] == [
            f"CREATE ROLE {role} NOLOGIN;", f"DROP ROLE {role};"]
        drifted = cli(["--sql-dir", sql_tree.root, "drift", "--json"], url=empty_url)
        assert drifted.exit_code == 0, drifted.stdout + drifted.stderr
        assert any(f"CREATE ROLE {role}" in n for n in json.loads(drifted.stdout)["notes"])
        with psycopg.connect(empty_url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                                (role,)).fetchone()[0] == 1
            assert conn.execute("SELECT has_table_privilege(%s, 't', 'SELECT')",
                                (role,)).fetchone()[0] is True
    finally:
        with psycopg.connect(empty_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS t; DROP ROLE IF EXISTS {role}")
