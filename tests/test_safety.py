"""Issue #28, "safe in everyday hands": the right database, the right cluster, no silent
surprises. Each test reproduces one of the issue's failures against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from test_dies_with_client import kill_and_wait_gone, server_pid, wait_for

from conftest import PASSWORD, PASSWORD_ROLE, REPO, popen_dmdb, row_counts, run_dmdb, run_sql
from dmdb.errors import DmdbError
from dmdb.server.embedded import EmbeddedServer

FIRST = "CREATE TABLE first_table (id int PRIMARY KEY);\n"
FIRST_BACK = "DROP TABLE first_table;\n"


def tables(url: str) -> set[str]:
    return {r[0] for r in run_sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def one_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("dmdb: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- 1. know which database before changing it --------------------------------------------


@pytest.fixture
def other_project(sql_tree):
    sql_tree.migration("0001_first_table", FIRST, FIRST_BACK)
    return sql_tree


def test_up_refuses_another_projects_ledger_naming_its_migrations(cli, empty_url, other_project):
    done = cli(["--sql-dir", other_project.root, "up"], url=empty_url)
    assert done.exit_code == 0, done.stderr
    before = tables(empty_url)

    for args in (["up"], ["up", "--dry-run"]):
        refused = cli(["--sql-dir", REPO / "sql", *args], url=empty_url)
        assert refused.exit_code == 1, refused.stdout
        line = one_error(refused)
        assert "0001_first_table" in line and "--allow-foreign-ledger" in line
        assert tables(empty_url) == before  # nothing of this project's 12 migrations

    forced = cli(["--sql-dir", REPO / "sql", "up", "--allow-foreign-ledger"], url=empty_url)
    assert forced.exit_code == 0, forced.stderr
    assert "users" in tables(empty_url) and "first_table" in tables(empty_url)


def test_changing_commands_name_their_target_first_never_the_password(
        cli, pg_settings, embedded_only, databases, other_project):
    name = databases.create(schema=False)
    host = quote(pg_settings.host, safe="")
    url = f"postgresql://{PASSWORD_ROLE}:{quote(PASSWORD)}@/{name}?host={host}"
    for args in (["up"], ["up", "--dry-run"], ["up", "--json"], ["rollback"]):
        result = cli(["--sql-dir", other_project.root, *args], url=url)
        assert result.exit_code == 0, result.stderr
        first = result.stderr.splitlines()[0]
        assert first.startswith("dmdb: target: database ")
        assert f"database {name} on {pg_settings.host}:{pg_settings.port} as {PASSWORD_ROLE} " \
               "(PostgreSQL " in first
        assert PASSWORD not in result.stdout + result.stderr
    quiet = cli(["--sql-dir", other_project.root, "up", "--quiet"], url=url)
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_partitions_indexes_and_seed_name_their_target(cli, schema_url):
    name = urlsplit(schema_url).path.lstrip("/")
    for args in (["partitions", "create", "--ahead", "1", "--dry-run"],
                 ["indexes", "build", "--dry-run"],
                 ["seed", "--users", "2", "--answers", "3", "--dry-run"]):
        result = cli(args, url=schema_url)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.startswith(f"dmdb: target: database {name} on "), args


def test_restore_names_the_database_it_restores_into(cli, schema_url, tmp_path):
    dump = tmp_path / "x.dump"
    assert cli(["backup", "--out", dump], url=schema_url).exit_code == 0
    plan = cli(["restore", dump, "--into", "dmdb_never_made", "--dry-run"], url=schema_url)
    assert plan.exit_code == 0, plan.stderr
    assert plan.stderr.startswith("dmdb: target: database dmdb_never_made on ")


# -- 2. one cluster per home, never shared by accident ------------------------------------


def _project(parent: Path, name: str) -> Path:
    project = parent / name
    project.mkdir()
    (project / "dmdb.toml").write_text("")
    return project


@pytest.mark.skipif(os.geteuid() != 0, reason="as root the home links to the cluster")
def test_a_copied_project_never_uses_or_stops_the_originals_cluster():
    parent = Path(tempfile.mkdtemp(prefix="dmdb-copy-"))
    env: dict = {}
    original = _project(parent, "pA")
    copy = parent / "pB"
    try:
        made = run_dmdb(["server", "start", "--json"], env, cwd=original, timeout=300)
        assert made.returncode == 0, made.stderr
        pid = json.loads(made.stdout)["pid"]
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        link = copy / ".dmdb" / "data"
        assert link.is_symlink()

        for args in (["up"], ["server", "stop"], ["psql", "--", "-c", "SELECT 1"],
                     ["server", "status"]):
            done = run_dmdb(args, env, cwd=copy, timeout=300)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            line = one_error(done)
            assert str(link) in line and str(original / ".dmdb") in line, line
            assert f"rm {link}" in line
        status = run_dmdb(["server", "status", "--json"], env, cwd=original)
        assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid
        assert run_dmdb(["status", "--check"], env, cwd=original).returncode == 1  # nothing applied

        # The original deleted: its (throw-away) cluster goes at the next start, and the
        # copy's commands say so instead of initialising an empty cluster.
        shutil.rmtree(original)  # its server still runs: the next start stops and deletes it
        for args in (["psql", "--", "-c", "SELECT 1"], ["up"]):
            done = run_dmdb(args, env, cwd=copy, timeout=300)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            line = one_error(done)
            assert "no longer exists" in line and f"rm {link}" in line
            assert "initialised and started" not in done.stderr
        assert not Path(os.readlink(link)).parent.exists()

        # The way out the message names: remove the links, and the copy gets its own.
        os.unlink(link)
        os.unlink(copy / ".dmdb" / "postgres.log")
        fresh = run_dmdb(["server", "start"], env, cwd=copy, timeout=300)
        assert fresh.returncode == 0 and "initialised" in fresh.stderr, fresh.stderr
    finally:
        for project in (original, copy):
            if project.exists():
                EmbeddedServer(project / ".dmdb").destroy()
        shutil.rmtree(parent, ignore_errors=True)


def test_a_home_copied_while_its_server_ran_is_refused(tmp_path):
    """Without root the cluster is inside the home: a copy carries the original's
    postmaster.pid, which names the original's data directory (PostgreSQL writes it)."""
    home = tmp_path / "copy" / ".dmdb"
    (home / "data").mkdir(parents=True)
    (home / "data" / "PG_VERSION").write_text("18\n")
    original = tmp_path / "original" / ".dmdb" / "data"
    (home / "data" / "postmaster.pid").write_text(
        f"{os.getpid()}\n{original}\n1700000000\n5432\n{tmp_path}\n\n")
    server = EmbeddedServer(home)
    assert server.info().running is False  # not this home's server
    with pytest.raises(DmdbError) as refused:
        server.start(create=False)
    assert str(original) in str(refused.value) and f"Remove {home}" in str(refused.value)


# -- 3. reset empties only what it lists, and all or nothing -------------------------------

SMALL_SEED = ["--users", "20", "--answers", "15", "--quiet", "--now", "2026-11-20T12:00:00Z"]


def _badges(url: str) -> None:
    """A table of the team's own migration that references users."""
    run_sql(url, "CREATE TABLE badges (user_id bigint NOT NULL REFERENCES users, name text)")
    run_sql(url, "INSERT INTO badges SELECT user_id, 'first' FROM users")


def test_reset_empties_another_table_only_when_named(cli, schema_url):
    assert cli(["seed", *SMALL_SEED], url=schema_url).exit_code == 0
    _badges(schema_url)
    run_sql(schema_url, "INSERT INTO bkt_concept_parameters (concept_id, initial_knowledge, "
                        "learning_rate, guess_parameter, slip_parameter, temporal_decay) "
                        "SELECT concept_id, 0.2, 0.1, 0.2, 0.1, 1 FROM concepts LIMIT 1")
    before = row_counts(schema_url)
    for args in (["reset", "--yes", "--dry-run"], ["reset", "--yes"],
                 ["seed", "--reset", "--yes"]):
        refused = cli([*args, *SMALL_SEED], url=schema_url)
        assert refused.exit_code == 2, refused.stdout
        line = one_error(refused)
        assert "badges" in line and "--also-empty badges" in line and "users" in line
    assert run_sql(schema_url, "SELECT count(*) FROM badges")[0][0] == 20
    assert row_counts(schema_url) == before

    plan = cli(["reset", "--yes", "--dry-run", "--json", "--also-empty", "badges", *SMALL_SEED],
               url=schema_url)
    assert plan.exit_code == 0, plan.stderr
    listed = json.loads(plan.stdout)["tables_to_clear"]
    # everything that will be emptied, bkt_concept_parameters (CASCADE emptied it unlisted)
    # and the named table included
    assert {"users", "learning_events", "bkt_concept_parameters", "rollup_watermarks",
            "badges"} <= set(listed)
    done = cli(["reset", "--yes", "--also-empty", "badges", *SMALL_SEED], url=schema_url)
    assert done.exit_code == 0, done.stderr
    assert run_sql(schema_url, "SELECT count(*) FROM badges")[0][0] == 0
    assert run_sql(schema_url, "SELECT count(*) FROM bkt_concept_parameters")[0][0] == 0
    assert row_counts(schema_url) == before  # the same seed again


def test_reset_with_jobs_is_refused_naming_why(cli, schema_url):
    refused = cli(["reset", "--yes", "--jobs", "2", *SMALL_SEED], url=schema_url)
    assert refused.exit_code == 2 and "one transaction" in one_error(refused)


def _reset_in_flight(url: str):
    """A large reset of a seeded database, caught while it writes its answers."""
    env = {"DATABASE_URL": url}
    seeded = run_dmdb(["seed", *SMALL_SEED], env)
    assert seeded.returncode == 0, seeded.stderr
    before = row_counts(url)
    proc = popen_dmdb(["reset", "--yes", "--users", "3000", "--answers", "100"], env)
    find = server_pid(url, "SELECT count(*) FILTER (WHERE newly_mastered) FROM record_answers")
    pid = wait_for(find, 120, "the reset writing its answers")
    time.sleep(1.0)  # some batches written (uncommitted)
    assert proc.poll() is None, proc.communicate()
    return proc, pid, before


def test_an_interrupted_reset_keeps_the_old_data_and_says_so(schema_url):
    proc, pid, before = _reset_in_flight(schema_url)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = [ln for ln in err.splitlines() if ln.startswith("dmdb: error:")]
    assert len(line) == 1 and "rolled back" in line[0] and "as before" in line[0], err
    assert row_counts(schema_url) == before


def test_a_killed_reset_keeps_the_old_data(schema_url):
    proc, pid, before = _reset_in_flight(schema_url)
    kill_and_wait_gone(schema_url, proc, pid)
    assert row_counts(schema_url) == before
    assert not run_sql(schema_url, "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                   "WHERE c.relname = 'users'")


# -- 9. migration ids in everyday slips -------------------------------------------------------

T1 = "CREATE TABLE t1 (id int PRIMARY KEY);\n"
T2 = "CREATE TABLE t2 (id int PRIMARY KEY REFERENCES t1);\n"


def ledger_ids(url: str) -> list[str]:
    return [r[0] for r in run_sql(url, "SELECT migration_id FROM _yoyo_migration ORDER BY 1")]


@pytest.fixture
def two(sql_tree):
    sql_tree.migration("0001_t1", T1, "DROP TABLE t1;\n")
    sql_tree.migration("0002_t2", T2, "DROP TABLE t2;\n")
    return sql_tree


def test_rollback_to_the_latest_applied_says_so(cli, empty_url, two):
    assert cli(["--sql-dir", two.root, "up"], url=empty_url).exit_code == 0
    done = cli(["--sql-dir", two.root, "rollback", "--to", "0002_t2"], url=empty_url)
    assert done.exit_code == 0, done.stderr
    assert "no migration is applied after 0002_t2" in done.stdout
    assert ledger_ids(empty_url) == ["0001_t1", "0002_t2"]


def test_a_migration_number_alone_is_its_id_and_a_slip_gets_a_did_you_mean(cli, empty_url, two):
    up = cli(["--sql-dir", two.root, "up", "--to", "1"], url=empty_url)
    assert up.exit_code == 0, up.stderr
    assert ledger_ids(empty_url) == ["0001_t1"]
    assert cli(["--sql-dir", two.root, "up"], url=empty_url).exit_code == 0
    back = cli(["--sql-dir", two.root, "rollback", "--to", "0001"], url=empty_url)
    assert back.exit_code == 0, back.stderr
    assert ledger_ids(empty_url) == ["0001_t1"]
    for slip in ("0001_t", "t1"):
        refused = cli(["--sql-dir", two.root, "rollback", "--to", slip], url=empty_url)
        assert refused.exit_code == 2
        assert "did you mean 0001_t1?" in one_error(refused)
    assert ledger_ids(empty_url) == ["0001_t1"]


def test_a_renamed_applied_migration_is_recognised_by_its_checksum(cli, empty_url, two):
    assert cli(["--sql-dir", two.root, "up"], url=empty_url).exit_code == 0
    for sub in ("migrations", "rollbacks"):
        (two.root / sub / "0002_t2.sql").rename(two.root / sub / "0002_second_table.sql")
    status = cli(["--sql-dir", two.root, "status", "--json"], url=empty_url)
    states = {m["id"]: m for m in json.loads(status.stdout)["migrations"]}
    assert set(states) == {"0001_t1", "0002_second_table"}
    assert states["0002_second_table"]["state"] == "applied"
    assert states["0002_second_table"]["renamed_from"] == "0002_t2"
    up = cli(["--sql-dir", two.root, "up"], url=empty_url)
    assert up.exit_code == 0, up.stderr  # was: "relation t2 already exists"
    assert "0002_second_table is 0002_t2 renamed" in up.stdout
    assert ledger_ids(empty_url) == ["0001_t1", "0002_second_table"]
    back = cli(["--sql-dir", two.root, "rollback"], url=empty_url)
    assert back.exit_code == 0, back.stderr
    assert ledger_ids(empty_url) == ["0001_t1"] and "t2" not in tables(empty_url)


def test_an_empty_rollback_is_refused_not_recorded(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t1", T1, "-- the inverse, one day\n")
    refused = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert refused.exit_code == 1 and "no statement" in one_error(refused)
    assert tables(empty_url) == set()

    (sql_tree.root / "rollbacks" / "0001_t1.sql").write_text("DROP TABLE t1;\n")
    assert cli(["--sql-dir", sql_tree.root, "up"], url=empty_url).exit_code == 0
    (sql_tree.root / "rollbacks" / "0001_t1.sql").write_text("-- emptied by mistake\n")
    assert cli(["--sql-dir", sql_tree.root, "repair"], url=empty_url).exit_code == 0
    back = cli(["--sql-dir", sql_tree.root, "rollback"], url=empty_url)
    assert back.exit_code == 1 and "no statement" in one_error(back)
    assert "t1" in tables(empty_url) and ledger_ids(empty_url) == ["0001_t1"]


def test_a_new_projects_first_new_makes_its_sql_tree(cli, tmp_path, monkeypatch):
    project = tmp_path / "fresh"
    project.mkdir()
    (project / "dmdb.toml").write_text("")
    monkeypatch.chdir(project)
    first = cli(["new", "first table"])
    assert first.exit_code == 0, first.stderr
    assert (project / "sql" / "migrations" / "0001_first_table.sql").is_file()
    assert (project / "sql" / "rollbacks" / "0001_first_table.sql").is_file()
    elsewhere = tmp_path / "elsewhere" / "db"
    named = cli(["new", "first table", "--sql-dir", elsewhere])
    assert named.exit_code == 0, named.stderr
    assert (elsewhere / "migrations" / "0001_first_table.sql").is_file()


# -- 4. one meaning per flag: durations --------------------------------------------------------


class HeldLock:
    """A SHARE UPDATE EXCLUSIVE lock on `table` (readers pass, DDL waits), released 0.2 s
    after a statement containing `waiter` starts waiting for it (or after 10 s)."""

    def __init__(self, url: str, table: str, waiter: str):
        self.url, self.table, self.waiter = url, table, waiter

    def __enter__(self):
        self.holder = psycopg.connect(self.url)
        self.holder.execute(f"LOCK TABLE {self.table} IN SHARE UPDATE EXCLUSIVE MODE")
        pid = self.holder.info.backend_pid

        def release() -> None:
            with psycopg.connect(self.url, autocommit=True) as watcher:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY("
                                       "pg_blocking_pids(pid)) AND query ILIKE %s",
                                       (pid, f"%{self.waiter}%")).fetchone()[0]:
                        time.sleep(0.2)
                        break
                    time.sleep(0.01)
            self.holder.rollback()

        self.thread = threading.Thread(target=release)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join()
        self.holder.close()


def test_a_bare_lock_timeout_is_seconds_for_partitions_as_for_up(cli, schema_url):
    with HeldLock(schema_url, "learning_events", "LOCK TABLE"):
        done = cli(["partitions", "create", "--ahead", "4", "--lock-timeout", "2",
                    "--attempts", "1", "--json"], url=schema_url)
    assert done.exit_code == 0, done.stderr  # 2 was 2 ms: the one attempt failed at once
    assert json.loads(done.stdout)["created"]


def test_a_bare_attempt_timeout_is_seconds_and_durations_take_units(cli, schema_url, sql_tree):
    shipped = sorted((REPO / "sql" / "migrations").glob("*.sql"))
    for path in shipped:
        sql_tree.migration(path.stem, path.read_text(),
                           (REPO / "sql" / "rollbacks" / path.name).read_text())
    sql_tree.migration("0099_users_note", "ALTER TABLE users ADD COLUMN note text;\n",
                       "ALTER TABLE users DROP COLUMN note;\n")
    with HeldLock(schema_url, "users", "ALTER TABLE users"):
        done = cli(["--sql-dir", sql_tree.root, "up", "--attempt-timeout", "5", "--attempts", "1",
                    "--lock-timeout", "2s", "--retry-for", "1min", "--backoff", "200ms"],
                   url=schema_url)
    assert done.exit_code == 0, done.stderr  # --lock-timeout 2s was refused; 5 was 5 ms
    assert "0099_users_note" in done.stdout


@pytest.mark.parametrize("args", [
    ["up", "--lock-timeout", "soon"], ["up", "--attempt-timeout", "0"],
    ["partitions", "create", "--lock-timeout", "5000"],
    ["indexes", "build", "--lock-timeout", "1500"], ["up", "--attempt-timeout", "2000"],
])
def test_a_bad_or_ambiguous_duration_is_one_line(cli, schema_url, args):
    refused = cli(args, url=schema_url)
    assert refused.exit_code == 2, refused.stdout
    line = one_error(refused)
    assert args[-1] in line and ("ms" in line or "duration" in line or "limit" in line)


def test_every_duration_option_says_a_bare_number_is_seconds():
    from typer.main import get_command

    from dmdb.cli import app

    def walk(command, path):
        for param in command.params:
            if getattr(param, "metavar", None) == "DURATION":
                yield path, param
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    found = list(walk(get_command(app), "dmdb"))
    assert len(found) >= 8
    for path, param in found:
        assert "bare number is seconds" in (param.help or ""), (path, param.opts)


# -- 10. smaller slips -------------------------------------------------------------------------


def test_indexes_report_lists_each_index_once(cli, schema_url):
    done = cli(["indexes", "report", "--json"], url=schema_url)
    assert done.exit_code == 0, done.stderr
    names = [(i["schema"], i["index"]) for i in json.loads(done.stdout)["indexes"]]
    assert len(names) == len(set(names))
    assert ("public", "concepts_pkey") in names and ("public", "content_pkey") in names


@pytest.mark.parametrize("args", [
    ["partitions", "create"], ["indexes", "build"], ["seed", "--users", "2"],
    ["reset", "--yes", "--users", "2"], ["models", "report"], ["models", "fit"],
    ["maintenance", "refresh"], ["drift"],
])
def test_schema_not_applied_is_one_code_and_one_message(cli, empty_url, args):
    done = cli(args, url=empty_url)
    assert done.exit_code == 1, (done.stdout, done.stderr)
    line = one_error(done)
    assert "has no dmdb schema" in line and "`dmdb up`" in line


def test_lint_names_a_missing_or_empty_rollback(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t1", T1)
    sql_tree.migration("0002_t2", T2, "-- later\n")
    done = cli(["--sql-dir", sql_tree.root, "lint", "--no-trace", "--json"], url=empty_url)
    assert done.exit_code == 1, done.stderr
    rules = {(f["file"], f["rule"]) for f in json.loads(done.stdout)["findings"]}
    assert {("0001_t1", "missing-rollback"), ("0002_t2", "empty-rollback")} <= rules


def test_models_fit_warns_about_a_parameter_pinned_at_its_bound(cli, schema_url):
    from datetime import datetime, timedelta, timezone

    from dmdb.learning import seed, simulation

    with psycopg.connect(schema_url, autocommit=True) as conn:
        ids, _ = seed.load_reference(conn, seed.load_catalogue())
        # unknowing learners answer right 3 times in 4: the fit wants guess 0.75, kept at 0.5
        simulation.simulate(conn, {ids["signs"]: simulation.Truth(0.1, 0.05, 0.75, 0.05)},
                            learners=120, answers=10,
                            start=datetime(2026, 11, 1, tzinfo=timezone.utc),
                            span=timedelta(days=5))
    done = cli(["models", "fit", "--json"], url=schema_url)
    assert done.exit_code == 0, done.stderr
    signs = [c for c in json.loads(done.stdout)["concepts"] if c["concept_code"] == "signs"][0]
    assert signs["guess"] > 0.499
    assert any("pinned at its bound 0.5" in w and w.startswith("guess")
               for w in signs["warnings"])
    assert re.search(r"^dmdb: warning: signs \(fitted\): guess 0\.49\d* pinned at its bound 0\.5",
                     done.stderr, re.MULTILINE)


def test_a_full_rollback_forgets_the_function_files(cli, empty_url, sql_tree):
    sql_tree.migration("0001_t1", T1, "DROP TABLE t1;\n")
    sql_tree.function("count_t1", "CREATE OR REPLACE FUNCTION count_t1() RETURNS bigint "
                      "LANGUAGE sql AS $$ SELECT count(*) FROM t1 $$;\n")
    assert cli(["--sql-dir", sql_tree.root, "up"], url=empty_url).exit_code == 0
    back = cli(["--sql-dir", sql_tree.root, "rollback"], url=empty_url)
    assert back.exit_code == 0, back.stderr
    assert "Forgot function file count_t1" in back.stdout
    status = json.loads(cli(["--sql-dir", sql_tree.root, "status", "--json"],
                            url=empty_url).stdout)
    assert status["functions"][0]["state"] == "pending"
    again = cli(["--sql-dir", sql_tree.root, "up"], url=empty_url)
    assert "Applied function file count_t1" in again.stdout


def test_backup_never_overwrites_without_force(cli, schema_url, tmp_path):
    out = tmp_path / "nightly.dump"
    out.write_text("yesterday's dump")
    refused = cli(["backup", "--out", out], url=schema_url)
    assert refused.exit_code == 2 and "--force" in one_error(refused)
    assert out.read_text() == "yesterday's dump"
    forced = cli(["backup", "--out", out, "--force"], url=schema_url)
    assert forced.exit_code == 0, forced.stderr
    assert out.stat().st_size > 1000


def test_a_declined_reset_says_nothing_was_changed(schema_url):
    import pty

    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DMDB_"))}
    env["DATABASE_URL"] = schema_url
    proc = subprocess.Popen([sys.executable, "-m", "dmdb", "reset"], stdin=child,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    os.close(child)
    os.write(main, b"n\n")
    out, err = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 1, (out, err)
    assert "Aborted" not in out + err
    assert err.strip().splitlines()[-1] == ("dmdb: error: reset not confirmed; nothing was "
                                            "changed (pass --yes to skip the question)")
    assert f"database {urlsplit(schema_url).path.lstrip('/')}" in out  # the prompt names it


def test_baseline_with_nothing_to_record_answers_from_the_ledger(cli, schema_url):
    from conftest import REPO

    newest = sorted(f.stem for f in (REPO / "sql" / "migrations").glob("*.sql"))[-1]
    done = cli(["baseline", "--to", newest.split("_")[0], "--json"], url=schema_url)
    assert done.exit_code == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["marked"] == [] and data["drift"] is None  # no scratch replay, no dumps


# -- 5. repairs agree with the migrations -------------------------------------------------------


def test_a_rebuilt_index_has_the_migrations_names_and_drift_passes(cli, schema_url):
    gin = "learning_events_context_data_gin_idx"
    query = """SELECT c.relname, i.relname FROM pg_inherits h
               JOIN pg_class i ON i.oid = h.inhrelid JOIN pg_index x ON x.indexrelid = i.oid
               JOIN pg_class c ON c.oid = x.indrelid WHERE h.inhparent = %s::regclass"""
    before = dict(run_sql(schema_url, query, (gin,)))
    assert before["learning_events_default"] == "learning_events_default_context_data_idx"
    assert cli(["drift"], url=schema_url).exit_code == 0
    run_sql(schema_url, f"DROP INDEX {gin}")
    built = cli(["indexes", "build"], url=schema_url)
    assert built.exit_code == 0, built.stderr
    assert dict(run_sql(schema_url, query, (gin,))) == before
    drift = cli(["drift"], url=schema_url)
    assert drift.exit_code == 0, drift.stdout + drift.stderr


# -- 8. output that survives a pipe and long work --------------------------------------------


def test_a_table_to_a_pipe_is_not_cut_at_80_columns(schema_url):
    env = {"DATABASE_URL": schema_url}
    assert run_dmdb(["seed", *SMALL_SEED], env).returncode == 0
    done = run_dmdb(["models", "fit"], env)  # stdout is a pipe, as in `models fit | cat`
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    fitted = json.loads(run_dmdb(["models", "fit", "--json"], env).stdout)["concepts"]
    codes = [c["concept_code"] for c in fitted]
    assert codes and all(f"│ {code} " in done.stdout for code in codes)
    assert "too few answers to fit" in done.stdout


def test_monitor_watch_to_a_file_writes_every_frame():
    import io

    from rich.console import Console
    from rich.text import Text

    from dmdb.cli.monitor import watch

    out = io.StringIO()
    frames = iter(range(1, 10))
    shown = watch(lambda h, w: Text(f"frame {next(frames)}"), 1.0, iterations=3,
                  sleep=lambda s: None, console=Console(file=out, width=80))
    assert shown == 3
    assert [ln for ln in out.getvalue().splitlines() if ln] == ["frame 1", "frame 2", "frame 3"]


def _on_a_terminal(args: list, env: dict) -> tuple[int, str]:
    """Run dmdb with its stdout on a pseudo-terminal; (exit code, what it wrote there)."""
    import pty

    main, child = pty.openpty()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DMDB_"))}
    proc = subprocess.Popen([sys.executable, "-m", "dmdb", *map(str, args)], stdout=child,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**full, **env})
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_long_work_shows_progress_on_a_terminal(schema_url, tmp_path):
    env = {"DATABASE_URL": schema_url}
    code, shown = _on_a_terminal(["drift"], env)
    assert code == 0 and "replaying 00" in shown and "in a scratch database" in shown, shown
    code, shown = _on_a_terminal(["backup", "--out", tmp_path / "x.dump"], env)
    assert code == 0 and "pg_dump" in shown, shown
    code, shown = _on_a_terminal(["models", "fit"], env)
    assert code == 0 and "fitting BKT per concept" in shown, shown


def test_cron_commands_have_quiet(cli, schema_url, tmp_path):
    backup = cli(["backup", "--out", tmp_path / "q.dump", "--quiet"], url=schema_url)
    assert backup.exit_code == 0 and backup.stdout == "", backup.stdout
    record = cli(["monitor", "--record", "--quiet"], url=schema_url)
    assert record.exit_code == 0 and record.stdout == "", record.stdout + record.stderr
    assert run_sql(schema_url, "SELECT count(*) FROM dmdb_monitor.snapshots")[0][0] == 1
    alone = cli(["monitor", "--quiet"], url=schema_url)
    assert alone.exit_code == 2 and "--record" in one_error(alone)


# -- 6. dmdb's own checks don't disturb the server ------------------------------------------------


def _checkpoints_requested(url: str) -> int:
    if run_sql(url, "SELECT current_setting('server_version_num')::int")[0][0] >= 170000:
        return run_sql(url, "SELECT num_requested FROM pg_stat_checkpointer")[0][0]
    return run_sql(url, "SELECT checkpoints_req FROM pg_stat_bgwriter")[0][0]


def test_replaying_checks_force_no_checkpoint_on_the_live_server(cli, schema_url, tmp_path):
    from dmdb.server.embedded import embedded_major

    major = run_sql(schema_url, "SELECT current_setting('server_version_num')::int / 10000")[0][0]
    if embedded_major() != major:
        pytest.skip("no throw-away cluster of the server's major at hand")
    change = tmp_path / "0013_note.sql"
    change.write_text("ALTER TABLE users ADD COLUMN note text;\n")
    databases_before = run_sql(schema_url, "SELECT count(*) FROM pg_database")[0][0]
    for args in (["drift"], ["verify"], ["lint", change], ["baseline", "--to", "0011"]):
        before = _checkpoints_requested(schema_url)
        done = cli(args, url=schema_url)
        assert done.exit_code in (0, 1), (args, done.stdout, done.stderr)  # lint: findings
        assert "Traceback" not in done.stderr
        assert _checkpoints_requested(schema_url) == before, args  # a DROP DATABASE forced one
    assert run_sql(schema_url, "SELECT count(*) FROM pg_database")[0][0] == databases_before


def test_on_the_live_server_the_replay_says_it_forced_a_checkpoint(cli, schema_url):
    done = cli(["drift", "--json"], url=schema_url, env={"DMDB_SCRATCH": "server"})
    assert done.exit_code == 0, done.stderr
    assert any("forces a checkpoint" in n for n in json.loads(done.stdout)["notes"])


def test_lint_of_an_applied_migration_runs_against_the_schema_before_it(cli, schema_url):
    applied = REPO / "sql" / "migrations" / "0009_monitor_history.sql"
    # The file of this checkout's tree, linted as a file of that project (an installed
    # dmdb's own project is the tree it ships, which this path is not part of).
    done = cli(["--sql-dir", REPO / "sql", "lint", "--json", applied], url=schema_url)
    data = json.loads(done.stdout)
    assert not [f for f in data["findings"] if f["rule"] == "replay-failed"], data["findings"]
    assert any("0009_monitor_history is applied" in n for n in data["notes"])
    traced = [f for f in data["files"] if f["id"] == "0009_monitor_history"]
    assert traced and traced[0]["statements"]  # traced, statement by statement


# -- 7. roles as designed: the embedded server honours --user / DB_USER ------------------------


def test_the_embedded_server_honours_user(schema_db, pg_settings, embedded_only, tmp_path):
    name, url = schema_db
    role = f"dmdb_reader_{os.getpid()}"
    run_sql(url, f"CREATE ROLE {role} LOGIN IN ROLE dm_readonly")
    try:
        env = {"DMDB_HOME": str(pg_settings.home), "DB_NAME": name}
        who = run_dmdb(["--user", role, "psql", "--", "-Atc", "SELECT current_user"], env,
                       cwd=tmp_path)
        assert who.returncode == 0 and who.stdout.strip() == role, (who.stdout, who.stderr)
        via_env = run_dmdb(["psql", "--", "-Atc", "SELECT current_user"],
                           {**env, "DB_USER": role}, cwd=tmp_path)
        assert via_env.stdout.strip() == role, via_env.stderr
        # the shipped read-only role runs status (its grants, tried locally) ...
        status = run_dmdb(["--user", role, "status", "--check"], env, cwd=tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        # ... and may not write
        write = run_dmdb(["--user", role, "psql", "--", "-c", "DELETE FROM users"], env,
                         cwd=tmp_path)
        assert "permission denied" in write.stderr
        url_of = run_dmdb(["--user", role, "server", "url"], env, cwd=tmp_path)
        assert f"postgresql://{role}@" in url_of.stdout
        unknown = run_dmdb(["--user", "nobody_here", "status"], env, cwd=tmp_path)
        assert unknown.returncode == 1 and "DB_USER" in unknown.stderr
    finally:
        run_sql(url, f"DROP ROLE IF EXISTS {role}")


def test_the_read_only_role_runs_drift_on_the_embedded_server(schema_db, pg_settings,
                                                              embedded_only, tmp_path):
    from dmdb.server.embedded import embedded_major

    if embedded_major() is None:
        pytest.skip("no embedded package")
    name, url = schema_db
    role = f"dmdb_watch_{os.getpid()}"
    run_sql(url, f"CREATE ROLE {role} LOGIN IN ROLE dm_readonly")
    try:
        env = {"DMDB_HOME": str(pg_settings.home), "DB_NAME": name, "DB_USER": role}
        drift = run_dmdb(["drift"], env, cwd=tmp_path)  # it may not CREATE DATABASE there
        assert drift.returncode == 0, drift.stdout + drift.stderr
    finally:
        run_sql(url, f"DROP ROLE IF EXISTS {role}")
