"""`dmdb monitor`'s truthful status (no schema, replica or primary down) and its checks
of the server against situations made on a real one: what holds back the xmin horizon
(a long and a prepared transaction, slots), replication slots, WAL archiving (a failing
archive_command), checkpoints, index bloat, missing indexes and PgBouncer's pools."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from monitor_helpers import needs_superuser, one, run_json, sql_literal, wait_for

# ------------------------------------------------------------------ truthful status

def test_no_schema_is_critical_and_says_run_dmdb_up(cli, empty_url):
    result = cli(["monitor", "--check"], url=empty_url)
    assert result.exit_code == 2, result.stdout
    assert result.stdout.startswith("CRITICAL: schema: no dmdb schema")
    assert "dmdb up" in result.stdout
    check = one(cli, empty_url, "schema")
    assert check["status"] == "CRITICAL" and check["metrics"]["present"] is False


def test_pending_migration_is_a_warning(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("DELETE FROM _yoyo_migration WHERE migration_id = "
                     "(SELECT max(migration_id) FROM _yoyo_migration)")
    check = one(cli, schema_url, "schema")
    assert check["status"] == "WARNING", check
    assert check["metrics"]["pending"] == 1 and "dmdb up" in check["summary"]


def test_unreachable_replica_is_critical_and_the_primary_checks_still_run(cli, schema_url):
    env = {"DB_READ_REPLICA_HOST": "127.0.0.1", "DB_READ_REPLICA_PORT": "1"}
    result = cli(["monitor", "--check", "--only", "replication,sequences,schema"],
                 url=schema_url, env=env)
    assert result.exit_code == 2, result.stdout
    assert result.stdout.startswith("CRITICAL: replication: read replica unreachable")
    # The hint names the replica's settings, not the primary's DB_HOST / DB_PORT.
    assert "DB_READ_REPLICA_HOST" in result.stdout and "DB_HOST /" not in result.stdout
    data = json.loads(cli(["monitor", "--json", "--only", "replication,sequences,schema"],
                          url=schema_url, env=env).stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["replication"]["status"] == "CRITICAL"
    assert checks["replication"]["metrics"]["replica_reachable"] is False
    # the others ran, on the primary
    assert checks["sequences"]["status"] == "OK" and checks["schema"]["status"] == "OK"
    assert checks["sequences"]["metrics"]["count"] > 0


def test_primary_down_is_dmdb_up_0_in_prometheus_and_unknown_in_json(cli):
    from prometheus_client.parser import text_string_to_metric_families

    url = "postgresql://nobody:pw@127.0.0.1:1/nowhere?sslmode=disable"
    prom = cli(["monitor", "--format", "prometheus"], url=url)
    assert prom.exit_code == 0  # the scrape worked: it says the server is down
    families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
    assert [s.value for s in families["dmdb_up"].samples] == [0]
    assert [s.value for s in families["dmdb_monitor_status"].samples] == [3]
    assert "cannot connect" in prom.stderr and ":pw@" not in prom.stdout + prom.stderr
    assert cli(["monitor", "--format", "prometheus", "--check"], url=url).exit_code == 3

    data = json.loads(cli(["monitor", "--json"], url=url).stdout)
    assert data["up"] is False and data["status"] == "UNKNOWN"
    assert data["error"].startswith("cannot connect") and ":pw@" not in data["error"]
    assert {c["status"] for c in data["checks"]} == {"UNKNOWN"}
    # the dashboard has nothing to show: an error, as before
    table = cli(["monitor"], url=url)
    assert table.exit_code == 1 and "cannot connect" in table.stderr


def test_disk_space_of_the_embedded_servers_file_systems(pg_settings, embedded_only,
                                                         tmp_path):
    """The data directory's and WAL's file systems, read with statvfs as df reads them;
    WARNING and CRITICAL at the thresholds. Before, no check looked: with 2 MB free the
    monitor said "OK: 23 checks OK"."""
    import os

    from prometheus_client.parser import text_string_to_metric_families

    from dmdb.config import Settings
    from dmdb.monitor import render, run
    from dmdb.monitor.core import Thresholds
    from dmdb.server.embedded import EmbeddedServer

    settings = Settings(home=pg_settings.home)  # nothing configured: the embedded server
    pg_data = os.path.realpath(EmbeddedServer(pg_settings.home).pg_data)
    st = os.statvfs(pg_data)
    used = st.f_blocks - st.f_bfree
    pct = 100.0 * used / (used + st.f_bavail)

    def disk(**thresholds):
        with psycopg.connect(**pg_settings.conninfo(), autocommit=True) as conn:
            return run.run_checks(conn, Thresholds(**thresholds), only=["disk_space"],
                                  settings=settings)

    report = disk(disk_warn_pct=max(pct / 2, 0.01), disk_critical_pct=100)
    check = report.checks[0]
    assert [(r["location"], r["path"]) for r in check.rows] == [
        ("data", pg_data), ("wal", os.path.join(pg_data, "pg_wal"))]
    assert abs(check.rows[0]["used_pct"] - pct) < 1
    assert check.rows[0]["size_bytes"] == st.f_blocks * st.f_frsize
    assert check.metrics["measured"] == ["data", "wal"] and check.metrics["not_measured"] == []
    if pct < 100:
        assert check.status.name == "WARNING" and check.rows[0]["status"] == "WARNING"
        assert report.check_line().startswith(f"WARNING: disk_space: data ({pg_data}) ")
    critical = disk(disk_warn_pct=max(pct / 4, 0.01), disk_critical_pct=max(pct / 2, 0.01))
    assert critical.checks[0].status.name == "CRITICAL" and int(critical.status) == 2
    families = {f.name: f for f in text_string_to_metric_families(
        render.to_prometheus(critical))}
    ratio = {s.labels["location"]: s.value for s in families["dmdb_disk_used_ratio"].samples}
    assert set(ratio) == {"data", "wal"} and abs(ratio["data"] - pct / 100) < 0.01
    if pct < 99:
        assert disk().checks[0].status.name in ("OK", "WARNING")  # 90 / 95 by default
        assert disk(disk_warn_pct=99.5, disk_critical_pct=99.9).checks[0].status.name == "OK"

    # The backup repository, once its directory exists, beside a configured server's.
    (tmp_path / "backups").mkdir()
    remote = Settings(home=tmp_path, host="db.example")
    with psycopg.connect(**pg_settings.conninfo(), autocommit=True) as conn:
        check = run.run_checks(conn, Thresholds(), only=["disk_space"],
                               settings=remote).checks[0]
    assert [r["location"] for r in check.rows] == ["backup_repository"]
    assert check.metrics["not_measured"] == ["data", "wal"]


def test_disk_space_of_a_configured_server_is_never_claimed(cli, schema_url):
    """A configured server's data directory is on its own host: nothing is measured, and
    neither the check nor the --check line claims it is fine."""
    from prometheus_client.parser import text_string_to_metric_families

    line = cli(["monitor", "--check", "--only", "disk_space,schema"], url=schema_url)
    assert (line.exit_code, line.stdout) == (
        0, "OK: 2 checks OK; not measured from here: disk_space (data, wal)\n")
    data, checks = run_json(cli, schema_url, "--only", "disk_space")
    disk = checks["disk_space"]
    assert disk["status"] == "OK" and disk["summary"].startswith("not measured:")
    assert disk["rows"] == [] and disk["metrics"]["measured"] == []
    assert any("FreeStorageSpace" in n for n in disk["notes"])
    prom = cli(["monitor", "--format", "prometheus", "--only", "disk_space"], url=schema_url)
    families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
    assert {s.labels["location"]: s.value for s in families["dmdb_disk_measured"].samples} \
        == {"data": 0, "wal": 0}
    assert "dmdb_disk_used_ratio" not in families


def test_prometheus_says_up_when_the_server_answers(cli, schema_url):
    from prometheus_client.parser import text_string_to_metric_families

    prom = cli(["monitor", "--format", "prometheus", "--only", "schema"], url=schema_url)
    families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
    assert [s.value for s in families["dmdb_up"].samples] == [1]
    assert [s.value for s in families["dmdb_schema_present"].samples] == [1]


# ------------------------------------------------- a role without pg_monitor (managed)

@pytest.fixture
def roles(schema_db, pg_settings, embedded_only):
    """Two LOGIN roles on the schema database, neither superuser nor in pg_monitor: the
    monitoring `owner` (as on a managed service) and the application's `other`. The
    embedded server admits this OS user as any role (peer authentication)."""
    import uuid
    from dataclasses import replace
    from types import SimpleNamespace

    from psycopg import sql

    name, url = schema_db
    suffix = uuid.uuid4().hex[:8]
    owner, other = f"mon_owner_{suffix}", f"mon_other_{suffix}"
    with psycopg.connect(url, autocommit=True) as conn:
        for role in (owner, other):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    yield SimpleNamespace(
        owner=owner, other=other, admin_url=url,
        owner_url=replace(pg_settings, user=owner).url(redact=False, dbname=name),
        other_url=replace(pg_settings, user=other).url(redact=False, dbname=name))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE usename IN (%s, %s)", (owner, other))
        for role in (owner, other):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


SESSION_CHECKS = ("connections", "long_running_queries", "blocked_queries", "xmin_horizon")


def test_a_role_without_pg_monitor_is_unknown_never_ok(cli, roles):
    """Without pg_monitor, another role's long query is hidden (no state, no start time):
    the checks over other sessions say UNKNOWN with the GRANT, not OK; granted, the query
    is seen and judged as for a superuser."""
    from prometheus_client.parser import text_string_to_metric_families
    from psycopg import sql

    with psycopg.connect(roles.other_url, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.3)")  # another role's statement, top of this database
    slow = psycopg.connect(roles.other_url, autocommit=True)
    thread = threading.Thread(target=_sleep_until_cancelled, args=(slow,))
    thread.start()
    try:
        with psycopg.connect(roles.admin_url, autocommit=True) as admin:
            assert wait_for(lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
                "AND query_start < now() - interval '1 second'",
                (slow.info.backend_pid,)).fetchone()[0] == 1)
        names = [*SESSION_CHECKS, "top_queries"]
        args = ["--only", ",".join(names), "--long-query-seconds", "0.5", "--trend-days", "0"]
        grant = f"GRANT pg_monitor TO {roles.owner};"
        _, checks = run_json(cli, roles.owner_url, *args)
        for name in names:
            c = checks[name]
            assert c["status"] == "UNKNOWN", c
            assert c["summary"].startswith(f"role {roles.owner} lacks pg_monitor and cannot see ")
            assert grant in c["summary"] and "\n" not in c["summary"]
            assert c["metrics"]["privileged"] is False
            assert c["notes"][0].startswith(f"as far as role {roles.owner} can see: ")
        # what made it look healthy: the other role's query is not in the rows
        assert checks["long_running_queries"]["metrics"]["count"] == 0
        assert "<insufficient privilege>" in [r["query"] for r in checks["top_queries"]["rows"]]

        # the history of --record is not this role's either: a warning, the checks still run
        trends = cli(["monitor", "--json", *args[:-2]], url=roles.owner_url)
        assert trends.exit_code == 0 and json.loads(trends.stdout)["trends"] is None
        assert "trends not read: permission denied" in trends.stderr
        assert f"GRANT dm_readonly TO {roles.owner}" in trends.stderr

        line = cli(["monitor", "--check", *args], url=roles.owner_url)
        assert line.exit_code == 3
        assert line.stdout == (f"UNKNOWN: 5 checks UNKNOWN: role {roles.owner} lacks pg_monitor "
                               f"({grant}): {', '.join(names)}\n")
        prom = cli(["monitor", "--format", "prometheus", *args], url=roles.owner_url)
        families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
        assert {s.labels["check"]: s.value for s in families["dmdb_check_status"].samples} == {
            n: 3 for n in names}
        dash = cli(["monitor", *args], url=roles.owner_url, env={"NO_COLOR": "1", "COLUMNS": "300"})
        assert f"5 checks UNKNOWN: role {roles.owner} lacks pg_monitor" in dash.stdout

        with psycopg.connect(roles.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(roles.owner)))
        _, checks = run_json(cli, roles.owner_url, *args)
        long = checks["long_running_queries"]
        assert long["status"] == "WARNING", long
        assert slow.info.backend_pid in [r["pid"] for r in long["rows"]]
        assert "pg_sleep(30)" in next(r["query"] for r in long["rows"]
                                      if r["pid"] == slow.info.backend_pid)
        for name in names:
            assert checks[name]["metrics"]["privileged"] is True
            assert checks[name]["status"] != "UNKNOWN", checks[name]
        assert "<insufficient privilege>" not in [r["query"] for r in checks["top_queries"]["rows"]]
        line = cli(["monitor", "--check", *args], url=roles.owner_url)
        assert line.exit_code == 1 and line.stdout.startswith("WARNING: long_running_queries: ")
    finally:
        slow.cancel_safe()
        thread.join(10)
        slow.close()


def test_capabilities_say_what_is_off_and_stay_ok(cli, roles, empty_db, pg_settings):
    """A managed database: no superuser ran 0005 (no event triggers), the monitoring role
    lacks pg_monitor. `capabilities` names both with the fix and stays OK; pg_stat_statements'
    preload is read without pg_read_all_settings."""
    from dataclasses import replace

    from prometheus_client.parser import text_string_to_metric_families

    with psycopg.connect(roles.admin_url, autocommit=True) as admin:
        admin.execute("DROP EVENT TRIGGER schema_audit_ddl")
        admin.execute("DROP EVENT TRIGGER schema_audit_drop")
    caps = one(cli, roles.owner_url, "capabilities", "--trend-days", "0")
    assert caps["status"] == "OK", caps
    assert caps["summary"] == (
        f"role {roles.owner}: other sessions hidden (role {roles.owner} lacks pg_monitor); "
        "pg_stat_statements on; DDL audit off: event triggers need a superuser")
    assert caps["metrics"] == {"role": roles.owner, "superuser": False,
                               "sees_all_sessions": False, "reads_all_settings": False,
                               "pg_stat_statements": "on", "ddl_audit": False}
    detail = {r["feature"]: r["detail"] for r in caps["rows"]}
    assert f"GRANT pg_monitor TO {roles.owner};" in detail["other sessions"]
    assert detail["DDL audit"].startswith(
        "DDL audit off: event triggers schema_audit_ddl and schema_audit_drop absent: event "
        "triggers need a superuser")
    assert ("CREATE EVENT TRIGGER schema_audit_ddl ON ddl_command_end EXECUTE FUNCTION "
            "schema_audit_record();") in detail["DDL audit"]
    assert caps["notes"] == [detail["other sessions"], detail["DDL audit"]]
    line = cli(["monitor", "--check", "--only", "capabilities", "--trend-days", "0"],
               url=roles.owner_url)
    assert (line.exit_code, line.stdout) == (0, "OK: 1 checks OK\n")
    prom = cli(["monitor", "--format", "prometheus", "--only", "capabilities",
                "--trend-days", "0"], url=roles.owner_url)
    families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
    assert [s.value for s in families["dmdb_role_sees_all_sessions"].samples] == [0]
    assert [s.value for s in families["dmdb_ddl_audit_enabled"].samples] == [0]

    # a database without the extension, seen by this role: preloaded, so CREATE EXTENSION
    name, _ = empty_db
    top = one(cli, replace(pg_settings, user=roles.owner).url(redact=False, dbname=name),
              "top_queries", "--trend-days", "0")
    assert top["metrics"]["setup"] == "not_created", top


def _sleep_until_cancelled(conn) -> None:
    try:
        conn.execute("SELECT pg_sleep(30)")
    except psycopg.errors.QueryCanceled:
        pass


# ----------------------------------------------------------- xmin horizon and slots

def test_long_transaction_holds_the_xmin_horizon(cli, schema_url):
    with psycopg.connect(schema_url) as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM users")  # takes the snapshot
        pid = holder.info.backend_pid
        check = one(cli, schema_url, "xmin_horizon", "--xmin-hold-seconds", "0")
        assert check["status"] == "WARNING", check
        row = next(r for r in check["rows"] if r["holder"] == str(pid))
        assert row["kind"] == "transaction" and row["status"] == "WARNING"
        assert check["metrics"]["holders_by_kind"]["transaction"] >= 1
        assert "transaction" in check["summary"]
        # held for less than the default hour and few transactions back: listed, OK
        assert one(cli, schema_url, "xmin_horizon")["status"] == "OK"
        holder.rollback()
    after = one(cli, schema_url, "xmin_horizon")
    assert str(pid) not in [r["holder"] for r in after["rows"]]


def test_inactive_physical_slot_reserving_wal(cli, schema_url):
    needs_superuser(schema_url)
    from prometheus_client.parser import text_string_to_metric_families

    slot = f"mon_slot_{time.monotonic_ns()}"
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        try:
            conn.execute("CREATE TABLE wal_maker AS SELECT g FROM generate_series(1, 20000) g")
            check = one(cli, schema_url, "replication_slots")
            row = next(r for r in check["rows"] if r["slot_name"] == slot)
            assert check["status"] == "WARNING" and row["status"] == "WARNING"
            assert row["active"] is False and row["retained_bytes"] > 0
            assert slot in check["summary"] and "inactive" in check["summary"]
            assert check["metrics"]["inactive"] >= 1
            # WAL kept over the critical threshold
            crit = one(cli, schema_url, "replication_slots", "--slot-wal-warn", "0",
                       "--slot-wal-critical", "0")
            assert crit["status"] == "CRITICAL"
            prom = cli(["monitor", "--format", "prometheus", "--only", "replication_slots"],
                       url=schema_url)
            families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
            active = {s.labels["slot_name"]: s.value
                      for s in families["pg_replication_slots_active"].samples}
            assert active[slot] == 0
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    assert slot not in [r["slot_name"] for r in one(cli, schema_url, "replication_slots")["rows"]]


@pytest.fixture(scope="module")
def special_server(embedded_only):
    """A server of its own with what the shared one lacks: max_prepared_transactions,
    wal_level = logical, WAL archiving to a command that always fails, and no
    pg_stat_statements in shared_preload_libraries."""
    import tempfile
    from pathlib import Path

    from psycopg import sql

    from dmdb.server.embedded import EmbeddedServer

    server = EmbeddedServer(Path(tempfile.mkdtemp(prefix="dmdb-mon-")), fast=True)
    info = server.start(dbname="postgres")
    conninfo = {"host": str(info.socket_dir), "port": info.port, "user": "postgres",
                "dbname": "postgres"}
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            for name, value in (("wal_level", "logical"), ("max_prepared_transactions", "5"),
                                ("archive_mode", "on"), ("archive_command", "false")):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)))
        server.stop()
        # (not through ALTER SYSTEM, which writes an empty list as one empty name)
        with open(server.pg_data / "postgresql.conf", "a") as conf:
            conf.write("shared_preload_libraries = ''\n")
        info = server.start(dbname="postgres")
        yield (f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}")
    finally:
        server.destroy()


def test_prepared_transaction_holds_the_xmin_horizon(cli, special_server):
    gid = f"mon_{time.monotonic_ns()}"
    with psycopg.connect(special_server, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT txid_current()")
        conn.execute(sql_literal("PREPARE TRANSACTION {}", gid))
        try:
            check = one(cli, special_server, "xmin_horizon", "--prepared-warn", "0")
            row = next(r for r in check["rows"] if r["holder"] == gid)
            assert check["status"] == "WARNING", check
            assert row["kind"] == "prepared transaction" and row["status"] == "WARNING"
            assert check["metrics"]["prepared_transactions"] == 1
            assert "ROLLBACK PREPARED" in check["summary"]
            crit = one(cli, special_server, "xmin_horizon", "--prepared-warn", "0",
                       "--prepared-critical", "0")
            assert crit["status"] == "CRITICAL"
            result = cli(["monitor", "--check", "--only", "xmin_horizon", "--prepared-warn", "0"],
                         url=special_server)
            assert result.exit_code == 1 and result.stdout.startswith("WARNING: xmin_horizon")
            assert one(cli, special_server, "xmin_horizon")["status"] == "OK"  # 60 s default
        finally:
            conn.execute(sql_literal("ROLLBACK PREPARED {}", gid))
    assert one(cli, special_server, "xmin_horizon")["metrics"]["prepared_transactions"] == 0


def test_inactive_logical_slot(cli, special_server):
    slot = f"mon_logical_{time.monotonic_ns()}"
    with psycopg.connect(special_server, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            _, checks = run_json(cli, special_server, "--only", "replication_slots,xmin_horizon")
            slots = checks["replication_slots"]
            row = next(r for r in slots["rows"] if r["slot_name"] == slot)
            assert slots["status"] == "WARNING"
            assert row["slot_type"] == "logical" and row["status"] == "WARNING"
            # its catalog_xmin is a holder of the horizon too
            holders = checks["xmin_horizon"]["rows"]
            assert any(r["kind"] == "replication slot" and r["holder"] == slot for r in holders)
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_pg_stat_statements_not_preloaded(cli, special_server):
    """Not in shared_preload_libraries: created or not, the advice names the preload (in
    postgresql.conf or the provider's parameter group) and the restart; CREATE EXTENSION
    only while it is missing."""
    with psycopg.connect(special_server, autocommit=True) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == ""
        neither = one(cli, special_server, "top_queries")
        assert neither["status"] == "OK" and neither["metrics"]["setup"] == "not_set_up"
        assert neither["summary"].startswith(
            "pg_stat_statements is not set up: add it to shared_preload_libraries "
            "(postgresql.conf, or your provider's parameter group / database flags), restart "
            "the server, then run CREATE EXTENSION pg_stat_statements in database postgres")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        try:
            created = one(cli, special_server, "top_queries")
        finally:
            conn.execute("DROP EXTENSION pg_stat_statements")
    assert created["status"] == "OK"
    assert created["metrics"] == {"available": False, "setup": "not_preloaded"}
    assert created["summary"] == (
        "pg_stat_statements is created in database postgres but not loaded: add "
        "pg_stat_statements to shared_preload_libraries (postgresql.conf, or your provider's "
        "parameter group / database flags) and restart the server")


def test_failing_archive_command(cli, special_server):
    with psycopg.connect(special_server, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS arch AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("SELECT pg_switch_wal()")
        assert wait_for(lambda: conn.execute(
            "SELECT failed_count > 0 FROM pg_stat_archiver").fetchone()[0], timeout=30)
    check = one(cli, special_server, "wal_archiving")
    assert check["status"] == "CRITICAL", check
    assert check["metrics"]["failing"] is True and check["metrics"]["failed"] >= 1
    assert "archive_command" in check["summary"]
    result = cli(["monitor", "--check", "--only", "wal_archiving"], url=special_server)
    assert result.exit_code == 2


def test_archiving_off_is_ok(cli, schema_url):
    check = one(cli, schema_url, "wal_archiving")
    with psycopg.connect(schema_url) as conn:
        mode = conn.execute("SHOW archive_mode").fetchone()[0]
    if mode == "off":
        assert check["status"] == "OK" and "archive_mode is off" in check["summary"]
    else:
        assert check["metrics"]["archive_mode"] == mode


def test_requested_checkpoints(cli, schema_url):
    needs_superuser(schema_url)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("CHECKPOINT")
        conn.execute("SELECT pg_stat_force_next_flush()")
    check = one(cli, schema_url, "checkpoints", "--checkpoint-min", "1",
                "--checkpoint-req-warn", "0.0001")
    assert check["metrics"]["requested"] >= 3
    assert check["status"] == "WARNING" and "max_wal_size" in check["summary"]
    # too few checkpoints to judge: OK with a note
    relaxed = one(cli, schema_url, "checkpoints", "--checkpoint-min", "1000000000")
    assert relaxed["status"] == "OK" and relaxed["notes"]


# ------------------------------------------------------- index bloat, missing indexes

def test_seq_scanned_table_is_a_missing_index(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE scanned (id int, v int)")
        conn.execute("INSERT INTO scanned SELECT g, g % 7 FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE scanned")
        for _ in range(120):
            conn.execute("SELECT count(*) FROM scanned WHERE v = 3")
        conn.execute("SELECT pg_stat_force_next_flush()")
    check = one(cli, schema_url, "missing_indexes")
    row = next(r for r in check["rows"] if r["relname"] == "scanned")
    assert check["status"] == "WARNING" and row["status"] == "WARNING"
    assert row["seq_scan"] >= 120 and row["idx_scan"] == 0 and row["index_scan_pct"] == 0
    assert "scanned" in check["summary"]
    # under pghero's 10,000-row floor it would not count
    assert one(cli, schema_url, "missing_indexes", "--missing-index-min-rows",
               "100000")["status"] == "OK"


def test_bloated_index(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE puffy (id int, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO puffy SELECT g, 'x' FROM generate_series(1, 100000) g")
        conn.execute("CREATE INDEX puffy_id_idx ON puffy (id)")
        conn.execute("DELETE FROM puffy WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE puffy")
    check = one(cli, schema_url, "index_bloat", "--index-bloat-min-size", "0")
    row = next(r for r in check["rows"] if r["indexrelname"] == "puffy_id_idx")
    assert check["status"] == "WARNING" and row["status"] == "WARNING"
    assert 5 <= row["bloat_ratio"] <= 15  # ~10x, give or take the estimate's error
    assert row["wasted_bytes"] > 0
    assert one(cli, schema_url, "index_bloat")["status"] == "OK"  # under the 100 MB floor
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("REINDEX INDEX puffy_id_idx")
        conn.execute("ANALYZE puffy")
    rebuilt = one(cli, schema_url, "index_bloat", "--index-bloat-min-size", "0")
    assert "puffy_id_idx" not in [r["indexrelname"] for r in rebuilt["rows"]
                                  if r["status"] == "WARNING"]


def test_dead_tuples_agree_with_maintenance_stale_only(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE stale (id int) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO stale SELECT generate_series(1, 2000)")
        conn.execute("ANALYZE stale")
        conn.execute("DELETE FROM stale WHERE id <= 1000")
        conn.execute("SELECT pg_stat_force_next_flush()")
        from dmdb.maintenance import read_table_stats

        stats = {s.name: s for s in read_table_stats(conn)}
    check = one(cli, schema_url, "dead_tuples", "--dead-tuples-factor", "1")
    row = next(r for r in check["rows"] if r["relname"] == "stale")
    assert row["vacuum_trigger"] == stats["stale"].vacuum_threshold
    assert (row["status"] == "WARNING") == stats["stale"].vacuum_due


# ---------------------------------------------------------------------- PgBouncer

@pytest.fixture
def pgbouncer_admin(schema_db, tmp_path, embedded_only):
    """A real PgBouncer with one server connection per pool and no reserve, and its admin
    console open to postgres."""
    import socket

    from conftest import run_dmdb, start_pgbouncer

    name, url = schema_db
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "pgb"
    done = run_dmdb(["pgbouncer", "config", "--out-dir", out, "--listen-port", port,
                     "--admin-users", "postgres", "--auth-type", "trust"],
                    {"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ini = out / "pgbouncer.ini"
    lines = [("default_pool_size = 1" if ln.startswith("default_pool_size") else
              "reserve_pool_size = 0" if ln.startswith("reserve_pool_size") else
              "min_pool_size = 0" if ln.startswith("min_pool_size") else ln)
             for ln in ini.read_text().splitlines()]
    ini.write_text("\n".join(lines) + "\n")
    admin = f"postgresql://postgres@127.0.0.1:{port}/pgbouncer"
    pooled = f"postgresql://postgres@127.0.0.1:{port}/{name}"
    proc = start_pgbouncer(out, pooled)
    yield admin, pooled, url
    proc.terminate()
    proc.wait(timeout=10)


def test_pgbouncer_clients_waiting_for_a_server(cli, pgbouncer_admin):
    from prometheus_client.parser import text_string_to_metric_families

    admin, pooled, url = pgbouncer_admin
    args = ["--pgbouncer", admin]
    idle = one(cli, url, "pgbouncer", *args)
    assert idle["status"] == "OK" and idle["metrics"]["up"] is True
    assert idle["metrics"]["cl_waiting"] == 0

    holder = psycopg.connect(pooled, prepare_threshold=None)
    waiter = psycopg.connect(pooled, autocommit=True, prepare_threshold=None)
    thread = threading.Thread(target=lambda: waiter.execute("SELECT 1"))
    try:
        holder.execute("SELECT 1")  # a transaction holds the pool's only server connection
        thread.start()
        seen = {}

        def waiting():
            seen.update(one(cli, url, "pgbouncer", *args, "--pgbouncer-wait-warn", "0"))
            return seen["metrics"]["cl_waiting"] >= 1

        assert wait_for(waiting, timeout=10)
        assert seen["status"] == "WARNING", seen
        row = next(r for r in seen["rows"] if r["cl_waiting"])
        assert row["sv_active"] == 1
        prom = cli(["monitor", "--format", "prometheus", "--only", "pgbouncer", *args], url=url)
        families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
        assert max(s.value for s in
                   families["pgbouncer_pools_client_waiting_connections"].samples) >= 1
    finally:
        holder.rollback()
        thread.join(10)
        holder.close()
        waiter.close()


def test_monitor_through_pgbouncer_leaves_the_server_connection_clean(cli, pgbouncer_admin):
    """Transaction pooling with one server connection: the application's next transaction
    runs on the server connection the monitor just used. It must be writable and without
    the monitor's statement_timeout (on a session-level setting it failed: "cannot execute
    UPDATE in a read-only transaction")."""
    from monitor_helpers import add_user

    _, pooled, _ = pgbouncer_admin
    with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as app:
        server_pid = app.execute("SELECT pg_backend_pid()").fetchone()[0]
        data, checks = run_json(cli, pooled)
        assert data["up"] is True
        assert [n for n, c in checks.items() if c["status"] == "UNKNOWN"] == []
        assert app.execute("SELECT pg_backend_pid()").fetchone()[0] == server_pid
        assert app.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        assert app.execute("SHOW statement_timeout").fetchone()[0] == "0"
        uid = add_user(app)
        app.execute("UPDATE users SET xp = xp + 1 WHERE user_id = %s", (uid,))
        assert app.execute("SELECT xp FROM users WHERE user_id = %s", (uid,)).fetchone()[0] == 1


@pytest.mark.parametrize("url", [
    "postgresql://postgres:secret@127.0.0.1:1/pgbouncer",
    # Mistyped URLs: libpq then quotes the whole string, password included, in its error.
    "postgresql//postgres:secret@127.0.0.1:1/pgbouncer",
    "postgres:/postgres:secret@127.0.0.1:1/pgbouncer",
    "host=127.0.0.1 port=1 dbname=pgbouncer password='se cret'",
])
def test_pgbouncer_unreachable_is_critical(cli, schema_url, url):
    check = one(cli, schema_url, "pgbouncer", "--pgbouncer", url)
    assert check["status"] == "CRITICAL" and "unreachable" in check["summary"]
    assert "secret" not in check["summary"] and "cret" not in check["summary"]
