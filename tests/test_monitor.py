"""`dmdb monitor` against a real PostgreSQL: each check against a situation made for it,
then the output formats and the exit code of --check, the dashboard and the history.
The server-side checks and the truthful status are in test_monitor_server.py."""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg
import pytest
from monitor_helpers import add_user, one, run_json, wait_for

from dmdb.monitor import run
from dmdb.monitor.core import CheckResult, Status, Thresholds, worst

# ------------------------------------------------------------------ a fresh schema

def test_fresh_schema_is_healthy_and_json_is_stable(cli, schema_url):
    data, checks = run_json(cli, schema_url)
    assert set(data) == {"up", "error", "target", "checks", "status", "generated_at", "trends"}
    assert data["up"] is True and data["error"] is None
    assert data["trends"] is None  # no --record yet
    assert list(checks) == list(run.CHECKS)
    for c in data["checks"]:
        assert set(c) >= {"name", "status", "summary", "metrics", "rows"}
        assert c["status"] in ("OK", "WARNING", "CRITICAL", "UNKNOWN")
    caps = checks["capabilities"]
    sees_all = caps["metrics"]["sees_all_sessions"]
    if not os.environ.get("DMDB_TEST_DATABASE_URL"):  # the embedded server's postgres
        assert caps["metrics"]["superuser"] is True and sees_all is True
    blind = set() if sees_all else {"connections", "long_running_queries", "blocked_queries",
                                    "xmin_horizon"}
    for name in ("schema", "capabilities", "sequences", "invalid_indexes",
                 "not_valid_constraints", "duplicate_indexes", "missing_indexes",
                 "index_bloat", "partitions", "replication", "xid_wraparound",
                 "long_running_queries", "pgbouncer"):
        assert checks[name]["status"] == ("UNKNOWN" if name in blind else "OK"), checks[name]
    assert checks["replication"]["summary"] == "no replicas"
    assert checks["schema"]["metrics"]["pending"] == 0
    # every check answers on this server version (pg_stat_checkpointer on 17+,
    # pg_stat_bgwriter on 16; inactive_since of slots on 17+ only)
    assert {n for n, c in checks.items() if c["status"] == "UNKNOWN"} <= blind
    assert checks["pgbouncer"]["metrics"]["configured"] is False
    for name in ("connections", "long_running_queries", "blocked_queries", "xmin_horizon",
                 "replication"):
        assert checks[name]["metrics"]["privileged"] is sees_all, name
    states = {r["feature"]: r["state"] for r in caps["rows"]}
    assert states["other sessions"] == ("visible" if sees_all else "hidden")
    if _statements_available(schema_url):
        assert states["pg_stat_statements"] == "on"
    if caps["metrics"]["superuser"]:  # 0005 ran as a superuser: the DDL audit is on
        assert states["DDL audit"] == "on" and caps["metrics"]["ddl_audit"] is True
    if caps["metrics"]["superuser"] and _statements_available(schema_url):
        assert caps["notes"] == []  # nothing is off
    assert checks["partitions"]["metrics"]["months_ahead"] == {"public.learning_events": 3}
    assert checks["partitions"]["metrics"]["default_partition_rows"] == {
        "public.learning_events_default": 0}
    # sequences behind identity columns are included, with their owning column
    seqs = {r["sequencename"]: r for r in checks["sequences"]["rows"]}
    assert "users_user_id_seq" in seqs and "learning_events_event_id_seq" in seqs
    assert seqs["users_user_id_seq"]["owned_by"] == "users.user_id"
    # the embedded server preloads pg_stat_statements and 0001 installs it; where the
    # server lacks the extension (pgserver's PostgreSQL 16) the check degrades to a note
    top = checks["top_queries"]
    assert top["status"] == "OK"
    assert top["metrics"]["available"] is _statements_available(schema_url)


def _statements_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()[0]


def test_pg_stat_statements_preloaded_not_created_says_create_extension(cli, empty_db,
                                                                      embedded_only):
    """The suite's server preloads pg_stat_statements (as a managed service does); a
    database without the extension needs CREATE EXTENSION there, not postgresql.conf."""
    name, url = empty_db
    with psycopg.connect(url) as conn:
        assert "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    check = one(cli, url, "top_queries")
    assert check["status"] == "OK"
    assert check["metrics"] == {"available": False, "setup": "not_created"}
    assert check["summary"] == (
        f"pg_stat_statements is preloaded but not created in database {name}: run CREATE "
        f"EXTENSION pg_stat_statements in database {name} (as a superuser or your "
        "provider's admin role; migration 0001 does it for a superuser)")
    assert "shared_preload_libraries" not in check["summary"]
    assert check["notes"] == [check["summary"]]


def test_pg_stat_statements_not_on_the_server_says_so():
    from dmdb.monitor.checks_database import StatementsSetup, statements_advice

    state, advice = statements_advice(StatementsSetup("app", None, available=False,
                                                      preloaded=False))
    assert state == "unavailable"
    assert advice.startswith("pg_stat_statements is not available on this server (not in "
                             "pg_available_extensions): install PostgreSQL's contrib modules")
    assert statements_advice(StatementsSetup("app", "public", True, True)) == ("on", None)
    state, advice = statements_advice(StatementsSetup("app", "public", True, True), loaded=False)
    assert state == "not_preloaded" and "shared_preload_libraries" in advice


# ------------------------------------------------------------------------ sessions

def test_idle_in_transaction_session(cli, schema_url):
    with psycopg.connect(schema_url) as idle:
        idle.execute("SELECT 1")  # psycopg opened a transaction: now idle in it
        pid = idle.info.backend_pid
        check = one(cli, schema_url, "connections", "--idle-in-transaction-warn", "1")
        assert check["status"] == "WARNING"
        assert check["metrics"]["idle_in_transaction"] >= 1
        assert pid in [r["pid"] for r in check["rows"]]
        assert "idle in transaction" in check["summary"]
        relaxed = one(cli, schema_url, "connections", "--idle-in-transaction-warn", "1000")
        assert relaxed["status"] == "OK"
        idle.rollback()


def test_blocked_query_and_its_blocker(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as setup:
        uid = add_user(setup)
    holder = psycopg.connect(schema_url)
    waiter = psycopg.connect(schema_url, autocommit=True)
    waiter.execute("SET statement_timeout = '30s'")
    errors: list[Exception] = []

    def update():
        try:
            waiter.execute("UPDATE users SET xp = xp + 1 WHERE user_id = %s", (uid,))
        except psycopg.Error as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        holder.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (uid,))
        thread = threading.Thread(target=update)
        thread.start()
        with psycopg.connect(schema_url, autocommit=True) as probe:
            assert wait_for(lambda: probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                (waiter.info.backend_pid,)).fetchone()[0] == 1)
        check = one(cli, schema_url, "blocked_queries", "--blocked-seconds", "0")
        assert check["status"] == "WARNING"
        pairs = {(r["blocked_pid"], r["blocking_pid"]) for r in check["rows"]}
        assert (waiter.info.backend_pid, holder.info.backend_pid) in pairs
        row = next(r for r in check["rows"] if r["blocked_pid"] == waiter.info.backend_pid)
        assert row["blocked_query"].startswith("UPDATE users")
        assert row["blocking_state"] == "idle in transaction"
        # a short wait under the default 5 s threshold is shown but not a WARNING yet
        lenient = one(cli, schema_url, "blocked_queries", "--blocked-seconds", "3600")
        assert lenient["status"] == "OK" and lenient["metrics"]["count"] >= 1
        holder.rollback()
        thread.join(30)
        assert not errors
    finally:
        holder.close()
        waiter.close()
    assert one(cli, schema_url, "blocked_queries")["metrics"]["count"] == 0


def test_long_running_query(cli, schema_url):
    slow = psycopg.connect(schema_url, autocommit=True)
    cancelled: list[Exception] = []

    def sleep():
        try:
            slow.execute("SELECT pg_sleep(60)")
        except psycopg.errors.QueryCanceled as exc:
            cancelled.append(exc)

    thread = threading.Thread(target=sleep)
    thread.start()
    try:
        pid = slow.info.backend_pid
        seen = {}

        def listed():
            seen.update(one(cli, schema_url, "long_running_queries", "--long-query-seconds", "0.5"))
            return pid in [r["pid"] for r in seen["rows"]]

        assert wait_for(listed, timeout=20)
        assert seen["status"] == "WARNING"
        assert "pg_sleep" in next(r["query"] for r in seen["rows"] if r["pid"] == pid)
    finally:
        slow.cancel_safe()
        thread.join(10)
        slow.close()
    assert cancelled


# -------------------------------------------------------------------------- schema

def test_sequence_near_its_maximum(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE tiny_seq MAXVALUE 100")
        conn.execute("SELECT setval('tiny_seq', 90)")
    check = one(cli, schema_url, "sequences")
    row = next(r for r in check["rows"] if r["sequencename"] == "tiny_seq")
    assert check["status"] == "WARNING" and row["status"] == "WARNING"
    assert row["used_pct"] == pytest.approx(100 * 89 / 99, abs=0.01)
    assert "tiny_seq" in check["summary"]
    assert one(cli, schema_url, "sequences", "--seq-warn", "95")["status"] == "OK"

    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("SELECT setval('tiny_seq', 97)")
    assert one(cli, schema_url, "sequences")["status"] == "CRITICAL"
    result = cli(["monitor", "--check", "--only", "sequences"], url=schema_url)
    assert result.exit_code == 2
    assert result.stdout.startswith("CRITICAL: sequences: ")
    assert result.stdout.count("\n") == 1


def test_bigint_sequence_capped_by_its_integer_column(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE narrow (id integer PRIMARY KEY)")
        conn.execute("CREATE SEQUENCE narrow_id_seq AS bigint OWNED BY narrow.id")
        conn.execute("ALTER TABLE narrow ALTER id SET DEFAULT nextval('narrow_id_seq')")
        conn.execute("SELECT setval('narrow_id_seq', 1900000000)")
    check = one(cli, schema_url, "sequences")
    row = next(r for r in check["rows"] if r["owned_by"] == "narrow.id")
    assert row["max_value"] == 2147483647
    assert row["status"] == "WARNING"  # 88.5 % of the integer column, not of bigint
    assert one(cli, schema_url, "sequences", "--seq-critical", "88")["status"] == "CRITICAL"


def test_invalid_index_and_not_valid_constraint(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE dup (a int)")
        conn.execute("INSERT INTO dup VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_a_uidx ON dup (a)")
        conn.execute("ALTER TABLE dup ADD CONSTRAINT dup_a_positive CHECK (a > 0) NOT VALID")
    _, checks = run_json(cli, schema_url, "--only", "invalid_indexes,not_valid_constraints")
    invalid = checks["invalid_indexes"]
    assert invalid["status"] == "WARNING"
    assert [r["indexrelname"] for r in invalid["rows"]] == ["dup_a_uidx"]
    assert "dup_a_uidx" in invalid["summary"]
    constraints = checks["not_valid_constraints"]
    assert constraints["status"] == "WARNING"
    assert [r["conname"] for r in constraints["rows"]] == ["dup_a_positive"]


def test_unused_and_duplicate_indexes(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE idx_t (a int, b int, c int)")
        conn.execute("CREATE INDEX idx_t_a ON idx_t (a)")
        conn.execute("CREATE INDEX idx_t_a_b ON idx_t (a, b)")
        conn.execute("CREATE INDEX idx_t_a_partial ON idx_t (a) WHERE c > 0")
        conn.execute("CREATE UNIQUE INDEX idx_t_b_uniq ON idx_t (b)")
        conn.execute("CREATE INDEX idx_t_b ON idx_t (b)")
    unused = one(cli, schema_url, "unused_indexes", "--unused-min-size", "0")
    names = {r["index"] for r in unused["rows"]}
    assert unused["status"] == "WARNING"
    assert {"idx_t_a", "idx_t_a_b", "idx_t_b"} <= names
    assert "idx_t_b_uniq" not in names and "users_pkey" not in names
    assert "stats_reset" in unused["metrics"]
    # the default 10 MB floor hides these tiny ones
    assert one(cli, schema_url, "unused_indexes")["status"] == "OK"

    dup = one(cli, schema_url, "duplicate_indexes")
    pairs = {(r["index"], r["covered_by"]) for r in dup["rows"]}
    assert dup["status"] == "WARNING"
    assert pairs == {("idx_t_a", "idx_t_a_b"), ("idx_t_b", "idx_t_b_uniq")}
    # one source of truth: the same indexes as `dmdb indexes report`
    report = cli(["indexes", "report", "--json", "--min-size-mb", "0"], url=schema_url)
    assert report.exit_code == 0, report.stderr
    data = json.loads(report.stdout)
    # (the monitor reads its own history through dmdb_monitor's index: that one is used)
    assert {r["index"] for r in data["unused"]} == names - {"snapshots_taken_at_idx"}
    assert {(r["index"], r["covered_by"]) for r in data["duplicates"]} == pairs


def test_rows_in_default_partition_and_missing_months(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        uid = add_user(conn)
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, '2001-01-01', 'session_started')", (uid,))
        check = one(cli, schema_url, "partitions")
        assert check["status"] == "WARNING"
        assert check["metrics"]["default_partition_rows"] == {"public.learning_events_default": 1}
        assert "DEFAULT partition" in check["summary"]

        conn.execute("DELETE FROM learning_events_default")
        months = conn.execute(
            "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') "
            "+ make_interval(months => g), 'YYYY_MM') FROM generate_series(0, 3) g").fetchall()
        conn.execute(f"DROP TABLE learning_events_{months[2][0]}")
        check = one(cli, schema_url, "partitions")
        assert check["status"] == "WARNING"
        assert check["metrics"]["months_ahead"] == {"public.learning_events": 1}
        assert one(cli, schema_url, "partitions", "--partition-months-ahead", "1")["status"] == "OK"

        conn.execute(f"DROP TABLE learning_events_{months[0][0]}")
        check = one(cli, schema_url, "partitions")
        assert check["status"] == "CRITICAL"
        assert "current month" in check["summary"]


def test_dead_tuples_after_mass_delete(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE churn (id int, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO churn SELECT g, repeat('x', 50) FROM generate_series(1, 5000) g")
        conn.execute("ANALYZE churn")
        conn.execute("DELETE FROM churn")
        conn.execute("SELECT pg_stat_force_next_flush()")
    check = one(cli, schema_url, "dead_tuples")
    row = next(r for r in check["rows"] if r["relname"] == "churn")
    assert check["status"] == "WARNING" and row["status"] == "WARNING"
    assert row["n_dead_tup"] == 5000
    assert row["vacuum_trigger"] == pytest.approx(50 + 0.2 * 5000)
    assert row["autovacuum_enabled"] is False
    assert "autovacuum is off for churn" in check["summary"]
    assert one(cli, schema_url, "dead_tuples", "--dead-tuples-factor", "10")["status"] == "OK"


def test_bloat_estimate_after_deleting_most_rows(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE swiss (id int, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO swiss SELECT g, repeat('y', 100) FROM generate_series(1, 30000) g")
        conn.execute("DELETE FROM swiss WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE swiss")
    check = one(cli, schema_url, "bloat", "--bloat-min-size", "0")
    row = next(r for r in check["rows"] if r["relname"] == "swiss")
    assert check["status"] == "WARNING" and row["status"] == "WARNING"
    assert 5 <= row["bloat_ratio"] <= 15  # ~10x, give or take the estimate's error
    assert row["wasted_bytes"] > 0
    assert one(cli, schema_url, "bloat")["status"] == "OK"  # under the 100 MB floor


def test_xid_age_thresholds_are_flags(cli, schema_url):
    assert one(cli, schema_url, "xid_wraparound", "--xid-warn", "1",
               "--xid-critical", "2e9")["status"] == "WARNING"
    assert one(cli, schema_url, "xid_wraparound", "--xid-warn", "1",
               "--xid-critical", "1")["status"] == "CRITICAL"
    bad = cli(["monitor", "--xid-warn", "5", "--xid-critical", "1"], url=schema_url)
    assert bad.exit_code == 2 and "--xid-warn" in bad.stderr


# ------------------------------------------------------------------ failure & output

def test_a_failing_check_is_unknown_and_the_others_still_run(schema_url, monkeypatch):
    def broken(conn, t):
        raise psycopg.OperationalError("lost postgresql://u:hunter2@h/db\nsecond line")

    monkeypatch.setitem(run.CHECKS, "bloat", broken)
    with psycopg.connect(schema_url) as conn:
        run.prepare(conn)
        report = run.run_checks(conn, Thresholds(), only=["sequences", "bloat", "cache_hit"])
    by = {c.name: c for c in report.checks}
    assert by["bloat"].status is Status.UNKNOWN
    assert by["bloat"].summary.startswith("check failed: ")
    assert "hunter2" not in by["bloat"].summary
    assert by["sequences"].status is Status.OK and by["cache_hit"].status is Status.OK


def test_a_full_run_leaves_the_session_as_it_found_it(schema_url):
    """Each check runs in a transaction of its own (read-only, statement_timeout for that
    transaction): after a full run the connection's session settings are unchanged and it
    can write. Through PgBouncer in transaction mode, the next client gets this server
    connection."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        def session():
            return (conn.execute("SHOW default_transaction_read_only").fetchone()[0],
                    conn.execute("SHOW statement_timeout").fetchone()[0],
                    conn.execute("SELECT name, setting FROM pg_settings "
                                 "WHERE source = 'session' ORDER BY name").fetchall())

        before = session()
        assert before[:2] == ("off", "0")
        run.prepare(conn)
        report = run.run_checks(conn, Thresholds())
        assert [c.name for c in report.checks] == list(run.CHECKS)
        assert [c.summary for c in report.checks
                if c.status is Status.UNKNOWN and not c.cause] == []  # none failed
        assert session() == before
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
        conn.execute("CREATE TABLE after_monitor (a int)")
        conn.execute("INSERT INTO after_monitor VALUES (1)")
        assert conn.execute("SELECT count(*) FROM after_monitor").fetchone()[0] == 1


def test_each_check_is_read_only_and_bounded_on_its_own(schema_url, monkeypatch):
    """The monitor's guarantees hold per check: a check that writes fails (read-only
    transaction), one that runs past the statement_timeout is cancelled; both turn UNKNOWN,
    their transactions are rolled back and the checks after them still run."""
    def writes(conn, t):
        conn.execute("CREATE TABLE nope (a int)")

    def sleeps(conn, t):
        conn.execute("SELECT pg_sleep(5)")

    monkeypatch.setitem(run.CHECKS, "bloat", writes)
    monkeypatch.setitem(run.CHECKS, "index_bloat", sleeps)
    with psycopg.connect(schema_url) as conn:
        run.prepare(conn)
        report = run.run_checks(conn, Thresholds(), statement_timeout="200ms",
                                only=["sequences", "bloat", "index_bloat", "cache_hit"])
        assert conn.execute("SELECT to_regclass('nope')").fetchone()[0] is None
    by = {c.name: c for c in report.checks}
    assert by["bloat"].status is Status.UNKNOWN
    assert "ReadOnlySqlTransaction" in by["bloat"].summary
    assert by["index_bloat"].status is Status.UNKNOWN
    assert "statement timeout" in by["index_bloat"].summary
    assert by["sequences"].status is Status.OK and by["cache_hit"].status is Status.OK


def test_check_exit_code_follows_the_worst_verdict(cli, schema_url):
    data, _ = run_json(cli, schema_url)
    result = cli(["monitor", "--check"], url=schema_url)
    assert result.exit_code == Status[data["status"]].value
    assert result.stdout.startswith(data["status"] + ":")

    ok = cli(["monitor", "--check", "--only", "sequences,invalid_indexes"], url=schema_url)
    assert (ok.exit_code, ok.stdout) == (0, "OK: 2 checks OK\n")
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE half_seq MAXVALUE 100")
        conn.execute("SELECT setval('half_seq', 90)")
    warn = cli(["monitor", "--check", "--only", "sequences,invalid_indexes"], url=schema_url)
    assert warn.exit_code == 1 and warn.stdout.startswith("WARNING: sequences: ")


def test_blind_checks_are_never_ok_and_named_once():
    """core.blind: an OK over rows the role cannot see turns UNKNOWN with the fix; a
    problem it did see stays, with the line as a note. --check names the shared cause
    once, after the worst check."""
    from datetime import datetime, timezone

    from dmdb.monitor.core import Privileges, Report, blind

    who = Privileges("app", False, False, False, "GRANT pg_monitor TO app;")
    ok = blind(CheckResult("connections", Status.OK, "3/100 connections", {"total": 3}),
               who, "other roles' sessions")
    assert ok.status is Status.UNKNOWN and ok.metrics == {"total": 3, "privileged": False}
    assert ok.summary.startswith("role app lacks pg_monitor and cannot see other roles' "
                                 "sessions; fix: GRANT pg_monitor TO app; (run by an admin")
    assert ok.notes == ["as far as role app can see: 3/100 connections"]
    seen = blind(CheckResult("long_running_queries", Status.WARNING, "1 query running"),
                 who, "other roles' statements")
    assert seen.status is Status.WARNING and seen.summary == "1 query running"
    assert seen.notes[0].startswith("role app lacks pg_monitor") and seen.cause is None

    other = blind(CheckResult("blocked_queries", Status.OK, "none"), who, "lock waits")
    now = datetime.now(timezone.utc)
    assert Report([ok, other], now).check_line() == (
        "UNKNOWN: 2 checks UNKNOWN: role app lacks pg_monitor (GRANT pg_monitor TO app;): "
        "connections, blocked_queries")
    seq = CheckResult("sequences", Status.WARNING, "1 sequence near the maximum")
    assert Report([ok, seq, other], now).check_line() == (
        "WARNING: sequences: 1 sequence near the maximum; 2 checks UNKNOWN: role app lacks "
        "pg_monitor (GRANT pg_monitor TO app;): connections, blocked_queries")
    failed = CheckResult("bloat", Status.UNKNOWN, "check failed: boom")
    assert Report([ok, failed], now).check_line() == (
        "UNKNOWN: bloat: check failed: boom; 1 check UNKNOWN: role app lacks pg_monitor "
        "(GRANT pg_monitor TO app;): connections")


def test_worst_orders_critical_warning_unknown_ok():
    assert worst([Status.OK, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.WARNING]) is Status.WARNING
    assert worst([Status.WARNING, Status.CRITICAL, Status.UNKNOWN]) is Status.CRITICAL
    assert worst([]) is Status.OK


def test_check_unreachable_server_is_unknown(cli):
    result = cli(["monitor", "--check"],
                 url="postgresql://nobody:pw@127.0.0.1:1/nowhere?sslmode=disable")
    assert result.exit_code == 3
    assert result.stdout.startswith("UNKNOWN: cannot connect")
    assert ":pw@" not in result.stdout


def test_prometheus_exposition_parses(cli, schema_url):
    from prometheus_client.parser import text_string_to_metric_families

    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE prom (id int) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO prom SELECT generate_series(1, 100)")
        conn.execute("DELETE FROM prom")
        conn.execute("SELECT pg_stat_force_next_flush()")
    result = cli(["monitor", "--format", "prometheus"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    status = {s.labels["check"]: s.value for s in families["dmdb_check_status"].samples}
    assert set(status) == set(run.CHECKS) and set(status.values()) <= {0, 1, 2, 3}
    for name in ("pg_stat_activity_count", "pg_settings_max_connections",
                 "pg_database_xid_age", "dmdb_sequence_used_ratio", "dmdb_default_partition_rows",
                 "dmdb_partition_months_ahead", "pg_stat_user_tables_n_dead_tup",
                 "dmdb_connections_used_ratio", "dmdb_monitor_status"):
        assert name in families, name
        assert families[name].type == "gauge"
    if _statements_available(schema_url):
        assert families["dmdb_statements_seconds"].type == "counter"
        assert families["dmdb_statements_seconds"].samples[0].name == "dmdb_statements_seconds_total"
    else:
        assert [s.value for s in families["dmdb_pg_stat_statements_available"].samples] == [0]
    dead = {s.labels["relname"]: s.value
            for s in families["pg_stat_user_tables_n_dead_tup"].samples}
    assert dead["prom"] == 100
    assert "# HELP dmdb_check_status " in result.stdout
    assert "# TYPE dmdb_check_status gauge" in result.stdout
    for line in result.stdout.splitlines():  # `_total` only on counters
        if line.startswith("# TYPE") and line.split()[2].endswith("_total"):
            assert line.split()[3] == "counter", line


def test_dashboard_shows_a_verdict_per_check(cli, schema_url):
    result = cli(["monitor"], url=schema_url, env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    verdicts = {ln.split()[1]: ln.split()[0] for ln in result.stdout.splitlines()[1:]
                if len(ln.split()) > 1}
    for name in run.CHECKS:
        assert verdicts[name] in ("OK", "WARNING", "CRITICAL", "UNKNOWN"), name


def test_flag_validation(cli, schema_url):
    for args, needle in (
        (["--watch", "0"], "--watch"),
        (["--watch", "-1"], "--watch"),
        (["--watch", "2", "--json"], "--watch"),
        (["--only", "nonsense"], "unknown check"),
        (["--format", "xml"], "--format"),
        (["--cache-hit-warn", "1.5"], "--cache-hit-warn"),
        (["--seq-warn", "96", "--seq-critical", "95"], "--seq-warn"),
        (["--disk-warn", "96", "--disk-critical", "95"], "--disk-warn"),
        (["--disk-critical", "101"], "--disk-critical"),
        # Huge and non-finite values: usage errors, never a crash or a server error.
        (["--trend-days", "1e308"], "--trend-days must be at most 36500"),
        (["--trend-days", "nan"], "--trend-days must be a finite number"),
        (["--record", "--retention-days", "inf"], "--retention-days must be a finite"),
        (["--record", "--retention-days", "1e308"], "--retention-days must be at most"),
        (["--xid-warn", "inf"], "--xid-warn must be a finite number"),
        (["--unused-min-size", "1e308"], "--unused-min-size must be at most"),
        (["--long-query-seconds", "1e308"], "--long-query-seconds must be at most"),
        (["--long-query-seconds", "nan"], "--long-query-seconds must be a finite"),
        (["--missing-index-min-rows", "99999999999999999999"], "--missing-index-min-rows"),
        (["--watch", "1e308"], "--watch"),
    ):
        result = cli(["monitor", *args], url=schema_url)
        assert result.exit_code == 2, (args, result.stdout)
        assert needle in result.stderr
        assert result.stderr.count("\n") == 1


def test_watch_renders_in_place_for_the_given_iterations():
    from rich.text import Text

    from dmdb.cli.monitor import watch

    calls = []
    shown = watch(lambda h, w: calls.append(h) or Text(f"render {len(calls)}"), 1.0,
                  iterations=3, sleep=lambda s: None)
    assert shown == 3 and len(calls) == 3

    def interrupted(_):
        raise KeyboardInterrupt

    assert watch(lambda h, w: Text("x"), 5.0, sleep=interrupted) == 1


def test_check_result_to_dict_keys():
    d = CheckResult("x", Status.WARNING, "s", {"a": 1}, [{"b": 2}]).to_dict()
    assert d == {"name": "x", "status": "WARNING", "summary": "s", "metrics": {"a": 1},
                 "rows": [{"b": 2}], "notes": []}


def test_reads_from_the_replica_and_reports_its_lag(cli, schema_url, pg_settings, embedded_only):
    """With DB_READ_REPLICA_HOST set the checks run on the standby; replication is
    answered by the primary too (pg_stat_replication lists replicas only there)."""
    from prometheus_client.parser import text_string_to_metric_families

    from dmdb.server.embedded import EmbeddedReplica

    replica = EmbeddedReplica(pg_settings.home, fast=True)
    info = replica.start(dbname="postgres")
    try:
        with psycopg.connect(schema_url, autocommit=True) as primary:
            assert wait_for(lambda: primary.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchone()[0] >= 1, timeout=30)
        env = {"DB_READ_REPLICA_HOST": str(info.socket_dir), "DB_READ_REPLICA_PORT": str(info.port)}
        result = cli(["monitor", "--json"], url=schema_url, env=env)
        assert result.exit_code == 0, result.stderr
        assert "replica unreachable" not in result.stderr
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert [n for n, c in checks.items() if c["status"] == "UNKNOWN"] == []
        replication = checks["replication"]
        assert {r["role"] for r in replication["rows"]} == {"standby (read connection)", "replica"}
        assert replication["metrics"]["replicas"] == 2
        assert all(r["lag_seconds"] is not None for r in replication["rows"])

        prom = cli(["monitor", "--format", "prometheus", "--only", "replication"],
                   url=schema_url, env=env)
        families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
        assert len(families["pg_replication_lag_seconds"].samples) == 2
        assert len(families["pg_replication_lag_bytes"].samples) == 2

        # a role without pg_monitor sees the replica's row on the primary, not its state
        # or lag: UNKNOWN with the GRANT, not "1 replica, lag 0 s"
        from dataclasses import replace

        from psycopg import sql

        role = f"mon_blind_{time.monotonic_ns()}"
        dbname = psycopg.conninfo.conninfo_to_dict(schema_url)["dbname"]
        with psycopg.connect(schema_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            blind = one(cli, replace(pg_settings, user=role).url(redact=False, dbname=dbname),
                        "replication", "--trend-days", "0")
            assert blind["status"] == "UNKNOWN", blind
            assert blind["summary"].startswith(
                f"role {role} lacks pg_monitor and cannot see the state and lag of 1 replica")
            assert f"GRANT pg_monitor TO {role};" in blind["summary"]
            assert [r["state"] for r in blind["rows"]] == ["hidden"]
            assert blind["metrics"]["privileged"] is False
        finally:
            with psycopg.connect(schema_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

        # hot_standby_feedback: the standby holds the primary's xmin horizon, and the
        # monitor (reading from the standby) shows it from the primary
        standby = f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET hot_standby_feedback = on")
            conn.execute("SELECT pg_reload_conf()")
        with psycopg.connect(schema_url, autocommit=True) as primary:
            assert wait_for(lambda: primary.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE backend_xmin IS NOT NULL"
            ).fetchone()[0] >= 1, timeout=30)
        xmin = one(cli, schema_url, "xmin_horizon", env=env)
        assert "standby feedback" in {r["kind"] for r in xmin["rows"]}, xmin
    finally:
        replica.stop()


# ------------------------------------------------------------------------ history

def test_record_keeps_a_bounded_history_and_shows_trends(cli, schema_url):
    first = cli(["monitor", "--record"], url=schema_url)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("recorded snapshot ") and first.stdout.count("\n") == 1
    with psycopg.connect(schema_url, autocommit=True) as conn:
        # an old snapshot (beyond retention) and one a day ago with smaller tables
        conn.execute("INSERT INTO dmdb_monitor.snapshots (taken_at, status, connections, "
                     "max_connections, table_blocks_hit, table_blocks_read, index_blocks_hit, "
                     "index_blocks_read, dead_tuples, database_bytes) VALUES "
                     "(now() - interval '200 days', 'OK', 1, 100, 0, 0, 0, 0, 0, 1)")
        conn.execute("UPDATE dmdb_monitor.snapshots SET taken_at = now() - interval '1 day', "
                     "table_blocks_hit = 0, table_blocks_read = 0, index_blocks_hit = 0, "
                     "index_blocks_read = 0 WHERE taken_at > now() - interval '1 hour'")
        conn.execute("UPDATE dmdb_monitor.table_sizes SET table_bytes = 0, index_bytes = 0, "
                     "live_rows = 0 WHERE table_name = 'users'")
        conn.execute("INSERT INTO users (email, display_name) SELECT 'h' || g || '@x.test', 'H' "
                     "FROM generate_series(1, 500) g")
        conn.execute("SELECT pg_stat_force_next_flush()")
    second = cli(["monitor", "--record", "--retention-days", "90"], url=schema_url)
    assert second.exit_code == 0, second.stderr
    assert "1 snapshots older than 90 days deleted" in second.stdout
    with psycopg.connect(schema_url) as conn:
        assert conn.execute("SELECT count(*) FROM dmdb_monitor.snapshots").fetchone()[0] == 2
    data, _ = run_json(cli, schema_url, "--only", "schema")
    trends = data["trends"]
    assert trends["snapshots"] == 2
    assert trends["table_bytes_per_day"] > 0 and trends["index_bytes_per_day"] > 0
    assert trends["rows_per_day"] >= 400  # users grew by 500 in ~1 day
    assert trends["top_growth"][0]["table"] == "public.users"
    assert 0 <= trends["table_hit_ratio"] <= 1
    dash = cli(["monitor", "--only", "schema"], url=schema_url, env={"COLUMNS": "300"})
    assert "trends, last 7 days (2 snapshots)" in dash.stdout
    assert "fastest public.users" in dash.stdout
    assert run_json(cli, schema_url, "--only", "schema", "--trend-days", "0")[0]["trends"] is None


def test_record_without_the_history_schema_is_one_error_line(cli, empty_url):
    result = cli(["monitor", "--record"], url=empty_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("dmdb: error: no monitor history")
    assert "dmdb up" in result.stderr and result.stderr.count("\n") == 1
    bad = cli(["monitor", "--record", "--only", "schema"], url=empty_url)
    assert bad.exit_code == 2 and "--only" in bad.stderr


# ---------------------------------------------------------------------- dashboard

def test_healthy_seeded_dashboard_fits_40_lines(cli, schema_url):
    seeded = cli(["seed", "seed"],  # the default size, as an operator would
                 url=schema_url)
    assert seeded.exit_code == 0, seeded.stderr
    data, checks = run_json(cli, schema_url)
    for name in ("schema", "dead_tuples", "bloat", "index_bloat", "missing_indexes",
                 "unused_indexes", "duplicate_indexes", "partitions", "sequences"):
        assert checks[name]["status"] == "OK", checks[name]
    result = cli(["monitor"], url=schema_url, env={"NO_COLOR": "1", "COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 40, result.stdout
    named = [ln.split()[1] for ln in lines[1:] if len(ln.split()) > 1]
    for name in run.CHECKS:  # one line per check
        assert named.count(name) == 1, (name, result.stdout)


def test_dashboard_puts_problems_first_with_details_on_request(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE full_seq MAXVALUE 100")
        conn.execute("SELECT setval('full_seq', 97)")
    env = {"NO_COLOR": "1", "COLUMNS": "120"}
    lines = cli(["monitor"], url=schema_url, env=env).stdout.splitlines()
    assert lines[1].startswith("CRITICAL") and " sequences " in lines[1]
    assert any("full_seq" in ln for ln in lines[2:8])  # its rows, under it
    assert max(len(ln) for ln in lines) <= 120  # one line each, within the terminal
    brief = cli(["monitor", "--only", "cache_hit"], url=schema_url, env=env).stdout
    verbose = cli(["monitor", "--only", "cache_hit", "--verbose"], url=schema_url, env=env).stdout
    assert "hits" not in brief and "hits" in verbose  # an OK check's table only on request


def test_watch_fits_the_terminal():
    import io
    from datetime import datetime, timezone

    from rich.console import Console

    from dmdb.cli.monitor import watch
    from dmdb.monitor import render
    from dmdb.monitor.core import Report

    rows = [{"status": "WARNING", "schemaname": "public", "relname": f"t{i}", "n_dead_tup": i}
            for i in range(30)]
    checks = [CheckResult(f"check_{i}", Status.WARNING if i % 2 else Status.OK, "s" * 200,
                          rows=rows) for i in range(30)]
    report = Report(checks, datetime.now(timezone.utc), target="t")
    for height in (8, 15, 40):
        out = io.StringIO()
        con = Console(file=out, width=100, height=height, force_terminal=True)
        heights: list[int] = []

        def build(h, w, seen=heights):
            seen.append(h)
            return render.dashboard(report, max_lines=h, width=w)

        watch(build, 1.0, iterations=2, sleep=lambda s: None, console=con)
        assert heights == [height, height]
        plain = Console(file=io.StringIO(), width=100, record=True)
        plain.print(render.dashboard(report, max_lines=height, width=100))
        text = plain.export_text()
        assert len(text.splitlines()) <= height, text
        assert "check_1 " in text  # the worst come first
