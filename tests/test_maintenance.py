"""`dmdb maintenance vacuum / refresh` against a real PostgreSQL."""

from __future__ import annotations

import json

import psycopg
import pytest

from dmdb.maintenance import TableStats, plan_vacuum


def run(url: str, *queries: str):
    out = None
    with psycopg.connect(url, autocommit=True) as conn:
        for q in queries:
            cur = conn.execute(q)
            out = cur.fetchall() if cur.description else None
        # Make this backend's pending statistics visible to others now.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    return out


def dead_tuples(url: str, table: str) -> int:
    return run(url, f"SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = '{table}'")[0][0]


PARTITIONED = """
CREATE TABLE ev (id bigint NOT NULL, note text) PARTITION BY RANGE (id);
CREATE TABLE ev_p0 PARTITION OF ev FOR VALUES FROM (0) TO (1000) WITH (autovacuum_enabled = false);
CREATE TABLE ev_sub PARTITION OF ev FOR VALUES FROM (1000) TO (3000) PARTITION BY RANGE (id);
CREATE TABLE ev_sub_a PARTITION OF ev_sub FOR VALUES FROM (1000) TO (2000)
    WITH (autovacuum_enabled = false);
CREATE TABLE ev_sub_b PARTITION OF ev_sub FOR VALUES FROM (2000) TO (3000)
    WITH (autovacuum_enabled = false);
"""


def test_vacuum_reduces_dead_tuples_after_a_mass_delete(cli, empty_url):
    url = empty_url
    run(url, "CREATE TABLE vt (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)",
        "INSERT INTO vt SELECT g, repeat('x', 50) FROM generate_series(1, 20000) g",
        "DELETE FROM vt WHERE id > 5000")
    assert dead_tuples(url, "vt") == 15000

    result = cli(["maintenance", "vacuum", "--analyze", "--table", "vt", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["analyze"] is True and data["dry_run"] is False
    [t] = data["tables"]
    assert t["table"] == "public.vt" and t["action"] == "VACUUM (ANALYZE)"
    assert t["command"] == 'VACUUM (ANALYZE) "public"."vt"'
    assert t["dead_before"] == 15000
    assert t["dead_after"] < t["dead_before"] and t["dead_after"] == 0
    assert t["live_after"] == 5000
    assert data["dead_before"] == 15000 and data["dead_after"] == 0
    assert dead_tuples(url, "vt") == 0
    assert run(url, "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                    "WHERE relname = 'vt'")[0][0]


def test_vacuum_goes_partition_by_partition(cli, empty_url):
    url = empty_url
    run(url, PARTITIONED, "CREATE TABLE plain (id int)",
        "INSERT INTO ev SELECT g, 'n' FROM generate_series(0, 2999) g",
        "DELETE FROM ev WHERE id % 2 = 0")
    dry = cli(["maintenance", "vacuum", "--analyze", "--dry-run", "--json"], url=url)
    assert dry.exit_code == 0
    data = json.loads(dry.stdout)
    # ANALYZE ONLY (the parent alone, not its partitions again) exists from PostgreSQL 18.
    version = run(url, "SELECT current_setting('server_version_num')::int")[0][0]
    parent = "ANALYZE ONLY" if version >= 180000 else "ANALYZE"
    assert [(t["table"], t["action"]) for t in data["tables"]] == [
        ("public.ev_p0", "VACUUM (ANALYZE)"),
        ("public.ev_sub_a", "VACUUM (ANALYZE)"),
        ("public.ev_sub_b", "VACUUM (ANALYZE)"),
        ("public.ev_sub", parent),
        ("public.ev", parent),
        ("public.plain", "VACUUM (ANALYZE)"),
    ]
    assert data["tables"][4]["command"] == f'{parent} "public"."ev"'
    assert data["dead_after"] is None
    assert dead_tuples(url, "ev_p0") == 500  # dry run: nothing vacuumed

    # --table on the partitioned parent: its tree only; without --analyze no ANALYZE.
    result = cli(["maintenance", "vacuum", "--table", "ev", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [t["table"] for t in data["tables"]] == ["public.ev_p0", "public.ev_sub_a",
                                                    "public.ev_sub_b"]
    assert data["dead_before"] == 1500 and data["dead_after"] == 0

    text = cli(["maintenance", "vacuum", "--analyze", "--table", "ev_sub"], url=url)
    assert text.exit_code == 0
    assert "ev_sub_a" in text.stdout and "dead tuples" in text.stdout


def test_stale_only_follows_autovacuum_thresholds_and_reloptions(cli, empty_url):
    url = empty_url
    run(url,
        # due: a per-table threshold of 10 dead tuples, no scale factor
        "CREATE TABLE t_stale (id int) WITH (autovacuum_enabled = false, "
        "autovacuum_vacuum_threshold = 10, autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_analyze_threshold = 100000)",
        # not due: thresholds far above what changes
        "CREATE TABLE t_fresh (id int) WITH (autovacuum_enabled = false, "
        "autovacuum_vacuum_threshold = 100000, autovacuum_analyze_threshold = 100000)",
        # due for analyze only: the server's defaults (50 + 10% of reltuples)
        "CREATE TABLE t_changed (id int) WITH (autovacuum_enabled = false, "
        "autovacuum_vacuum_threshold = 100000)",
        "INSERT INTO t_stale SELECT generate_series(1, 1000)",
        "INSERT INTO t_fresh SELECT generate_series(1, 1000)",
        "INSERT INTO t_changed SELECT generate_series(1, 1000)",
        "DELETE FROM t_stale WHERE id <= 100",
        "DELETE FROM t_fresh WHERE id <= 100")

    dry = cli(["maintenance", "vacuum", "--stale-only", "--dry-run", "--json"], url=url)
    assert dry.exit_code == 0, dry.stderr
    picked = {t["table"]: t["reasons"] for t in json.loads(dry.stdout)["tables"]}
    assert set(picked) == {"public.t_stale", "public.t_changed"}
    assert picked["public.t_stale"] == ["n_dead_tup 100 > vacuum threshold 10"]
    assert picked["public.t_changed"][0].startswith("n_mod_since_analyze 1000 > analyze threshold")

    done = cli(["maintenance", "vacuum", "--stale-only", "--analyze", "--json"], url=url)
    assert done.exit_code == 0
    assert {t["table"] for t in json.loads(done.stdout)["tables"]} == picked.keys()
    assert dead_tuples(url, "t_fresh") == 100  # not picked, not vacuumed

    again = cli(["maintenance", "vacuum", "--stale-only"], url=url)
    assert again.exit_code == 0 and "Nothing to vacuum" in again.stdout


def test_plan_vacuum_is_pure_and_orders_the_tree():
    def t(oid, name, kind="r", parent=None, dead=0, mod=0):
        return TableStats(oid, "public", name, kind, parent, 1000.0, 1000, dead, mod,
                          vacuum_threshold=250.0, analyze_threshold=150.0)

    stats = [t(1, "b_parent", "p"), t(2, "b_parent_x", parent=1, dead=300),
             t(3, "b_parent_y", parent=1), t(4, "a_plain", mod=200)]
    plan = plan_vacuum(stats, analyze=True, server_version=170000)
    assert [(p.table, p.action) for p in plan] == [
        ("public.a_plain", "VACUUM (ANALYZE)"), ("public.b_parent_x", "VACUUM (ANALYZE)"),
        ("public.b_parent_y", "VACUUM (ANALYZE)"), ("public.b_parent", "ANALYZE")]
    stale = plan_vacuum(stats, analyze=True, stale_only=True)
    assert [(p.table, p.action) for p in stale] == [
        ("public.a_plain", "VACUUM (ANALYZE)"), ("public.b_parent_x", "VACUUM (ANALYZE)"),
        ("public.b_parent", "ANALYZE ONLY")]
    assert plan_vacuum(stats, table_oid=3)[0].table == "public.b_parent_y"


def test_hostile_and_odd_table_names(cli, empty_url):
    url = empty_url
    odd = 'we"ird; DROP TABLE users --'
    run(url, "CREATE TABLE users (id int)",
        'CREATE TABLE "we""ird; DROP TABLE users --" (id int)')
    refused = cli(["maintenance", "vacuum", "--table", "users; DROP TABLE users"], url=url)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("dmdb: error: no table named") and \
        refused.stderr.count("\n") == 1

    ok = cli(["maintenance", "vacuum", "--table", odd, "--json"], url=url)
    assert ok.exit_code == 0, ok.stderr
    [t] = json.loads(ok.stdout)["tables"]
    assert t["command"] == 'VACUUM "public"."we""ird; DROP TABLE users --"'
    assert run(url, "SELECT to_regclass('users') IS NOT NULL")[0][0]


def test_refresh_matviews_and_rollup(cli, schema_url):
    url = schema_url
    run(url, "CREATE MATERIALIZED VIEW never_filled AS SELECT 1 AS x WITH NO DATA",
        "CREATE MATERIALIZED VIEW no_key AS SELECT 1 AS x")

    dry = cli(["maintenance", "refresh", "--dry-run", "--json"], url=url)
    assert dry.exit_code == 0, dry.stderr
    views = {v["view"]: v for v in json.loads(dry.stdout)["views"]}
    assert views["public.content_performance"]["mode"] == "concurrently"
    assert views["public.content_performance"]["command"] == \
        'REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."content_performance"'
    assert views["public.never_filled"]["mode"] == "plain"
    assert views["public.no_key"]["mode"] == "plain"
    assert not run(url, "SELECT relispopulated FROM pg_class WHERE relname = 'never_filled'")[0][0]

    result = cli(["maintenance", "refresh", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {v["view"] for v in data["views"]} >= {
        "public.daily_concept_mastery", "public.content_performance", "public.user_progress",
        "public.never_filled"}
    assert all(v["error"] is None for v in data["views"])
    assert run(url, "SELECT relispopulated FROM pg_class WHERE relname = 'never_filled'")[0][0]
    roll = data["rollup"]  # sql/functions/rollup.sql, applied with the schema
    assert roll["present"] and roll["called"] and roll["error"] is None
    assert roll["function"] == "rollup_learning_events"
    assert roll["result"]["answers"] == 0
    text = cli(["maintenance", "refresh"], url=url)
    assert text.exit_code == 0 and "content_performance" in text.stdout


def test_refresh_without_rollup_function(cli, empty_url):
    run(empty_url, "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t",
        "CREATE UNIQUE INDEX mv_id ON mv (id)")
    result = cli(["maintenance", "refresh", "--json"], url=empty_url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(v["view"], v["mode"]) for v in data["views"]] == [("public.mv", "concurrently")]
    assert data["rollup"]["present"] is False and data["rollup"]["called"] is False
    text = cli(["maintenance", "refresh"], url=empty_url)
    assert "not installed" in text.stdout


@pytest.mark.parametrize("args", [["vacuum", "--table", "nope"], ["vacuum", "--table", "x.y.z"]])
def test_missing_table_is_a_usage_error(cli, empty_url, args):
    result = cli(["maintenance", *args], url=empty_url)
    assert result.exit_code == 2
    assert "no table named" in result.stderr and "Traceback" not in result.stderr
