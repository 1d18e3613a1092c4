"""Work dies with its client: a SIGKILLed `dmdb indexes build`, `maintenance vacuum`,
`maintenance refresh` or `partitions create` stops on the server within seconds
(client_connection_check_interval), so its locks and its advisory lock are free for the
next run, and nothing is half-done.

Each command is made to wait on the server (a lock held by an open transaction, or a
pause inside the transaction) so that it is still working when it is killed; without
the check its server process would keep waiting for the whole of that wait (the
holders here keep it up far longer than the bounds polled for)."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from conftest import popen_dmdb, run_dmdb, run_sql
from dmdb.indexes import BUILD_LOCK_KEY
from dmdb.partitions import PARTITION_LOCK_KEY, add_months, month_bounds, partition_name

GONE_WITHIN = 20.0  # seconds: generous on a loaded machine; the check polls every second


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} not within {timeout:g} s")


def server_pid(url: str, query_start: str, wait: str | None = None):
    """The backend running a statement that starts with `query_start` (waiting on a
    `wait` event when given), or None."""
    def find():
        rows = run_sql(url, "SELECT pid FROM pg_stat_activity WHERE query LIKE %s "
                       "AND state = 'active' AND (%s::text IS NULL OR wait_event_type = %s "
                       "OR wait_event = %s) AND pid <> pg_backend_pid()",
                       (query_start + "%", wait, wait, wait))
        return rows[0][0] if rows else None
    return find


def kill_and_wait_gone(url: str, proc, pid: int) -> float:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    killed = time.monotonic()
    wait_for(lambda: not run_sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)),
             GONE_WITHIN, f"the server process {pid} of the killed run ending")
    return time.monotonic() - killed


def advisory_free(url: str, key: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return True
    return False


def test_killed_index_build_stops_and_a_rerun_starts(schema_url):
    env = {"DATABASE_URL": schema_url}
    run_sql(schema_url, "DROP INDEX content_concept_idx")
    with psycopg.connect(schema_url) as writer:
        # An open writer: CREATE INDEX CONCURRENTLY waits for it before building.
        writer.execute("LOCK TABLE content IN ROW EXCLUSIVE MODE")
        proc = popen_dmdb(["indexes", "build", "--table", "content", "--quiet"], env)
        pid = wait_for(server_pid(schema_url, "CREATE INDEX CONCURRENTLY", "Lock"), 60,
                       "the build waiting")
        assert not advisory_free(schema_url, BUILD_LOCK_KEY)
        kill_and_wait_gone(schema_url, proc, pid)
        wait_for(lambda: advisory_free(schema_url, BUILD_LOCK_KEY), GONE_WITHIN,
                 "the build's advisory lock free")
        writer.rollback()
    rerun = run_dmdb(["indexes", "build", "--table", "content", "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    check = run_dmdb(["indexes", "check"], env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert run_sql(schema_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                   "'content_concept_idx'::regclass") == [(True,)]


def test_killed_vacuum_stops_on_the_server(schema_url):
    env = {"DATABASE_URL": schema_url, "DMDB_LOCK_TIMEOUT": "120s"}
    with psycopg.connect(schema_url) as holder:
        holder.execute("LOCK TABLE content IN SHARE UPDATE EXCLUSIVE MODE")  # VACUUM waits
        proc = popen_dmdb(["maintenance", "vacuum", "--table", "content", "--quiet"], env)
        pid = wait_for(server_pid(schema_url, "VACUUM", "Lock"), 60, "the vacuum waiting")
        kill_and_wait_gone(schema_url, proc, pid)
        holder.rollback()


def test_killed_refresh_stops_on_the_server(schema_url):
    env = {"DATABASE_URL": schema_url, "DMDB_LOCK_TIMEOUT": "120s"}
    with psycopg.connect(schema_url) as holder:
        # A refresh in an open transaction holds ACCESS EXCLUSIVE on the view (LOCK TABLE
        # refuses materialized views): dmdb's REFRESH ... CONCURRENTLY waits for it.
        holder.execute("REFRESH MATERIALIZED VIEW content_performance")
        proc = popen_dmdb(["maintenance", "refresh", "--quiet"], env)
        pid = wait_for(server_pid(schema_url, "REFRESH MATERIALIZED VIEW", "Lock"), 60,
                       "the refresh waiting")
        kill_and_wait_gone(schema_url, proc, pid)
        holder.rollback()


def test_killed_partition_create_rolls_back_and_frees_its_lock(schema_url):
    env = {"DATABASE_URL": schema_url}
    m0 = run_sql(schema_url, "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")[0][0]
    month = add_months(m0, 6)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        uid = conn.execute("INSERT INTO users (email, display_name) VALUES "
                           "('k@example.com', 'K') RETURNING user_id").fetchone()[0]
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, %s, 'session_started')", (uid, month_bounds(month)[0]))
        # The row move pauses for two minutes: the run is killed in the middle of it.
        conn.execute("CREATE FUNCTION dmdb_test_pause() RETURNS trigger LANGUAGE plpgsql "
                     "AS $$ BEGIN PERFORM pg_sleep(120); RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER dmdb_test_pause AFTER DELETE ON learning_events_default "
                     "FOR EACH STATEMENT EXECUTE FUNCTION dmdb_test_pause()")
    proc = popen_dmdb(["partitions", "create", "--from", month.strftime("%Y-%m"),
                       "--ahead", "0"], env)
    pid = wait_for(server_pid(schema_url, "WITH moved AS", "PgSleep"), 60, "the row move")
    kill_and_wait_gone(schema_url, proc, pid)
    wait_for(lambda: advisory_free(schema_url, PARTITION_LOCK_KEY), GONE_WITHIN,
             "the partitions advisory lock free")
    # Nothing half-done: no partition, the row still in DEFAULT; the next run does it.
    target = partition_name("learning_events", month)
    assert run_sql(schema_url, "SELECT to_regclass(%s)", (target,)) == [(None,)]
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default") == [(1,)]
    run_sql(schema_url, "DROP TRIGGER dmdb_test_pause ON learning_events_default")
    rerun = run_dmdb(["partitions", "create", "--from", month.strftime("%Y-%m"), "--ahead", "0"],
                     env)
    assert rerun.returncode == 0, rerun.stderr
    assert run_sql(schema_url, f'SELECT count(*) FROM "{target}"') == [(1,)]
