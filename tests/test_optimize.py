"""dmdb optimize indexes (issue 30): index advice from the real workload, tried on a scratch
copy. One seeded database (dmdb seed) and a workload of two query patterns: one that no
index serves (a content's recent events, on the partitioned learning_events) and one the
primary key already serves (a learner's due reviews). The advice is judged by plans and
costs, never by wall-clock times (those go in the report and the bench).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import psycopg
import pytest

from conftest import REPO, popen_dmdb, run_dmdb, run_sql

MISSING = ("SELECT user_id, event_type, occurred_at FROM learning_events WHERE event_id = %s "
           "AND occurred_at >= now() - interval '400 days'")
SERVED = ("SELECT content_id, next_review_at FROM review_schedule "
          "WHERE user_id = %s AND next_review_at <= now() ORDER BY next_review_at")
CALLS = 40


def _queryid(url: str, fragment: str) -> str:
    rows = run_sql(url, "SELECT queryid::text FROM pg_stat_statements WHERE dbid = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                        "AND query LIKE %s", (f"%{fragment}%",))
    assert len(rows) == 1, rows
    return rows[0][0]


def run_workload(url: str, reset: str | None = None) -> dict[str, str]:
    """Reset this database's pg_stat_statements rows (as `reset`, an admin URL, when the
    workload's role may not), run both patterns CALLS times; their queryids."""
    with psycopg.connect(reset or url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE "
                     "datname = %s), 0)", (conn.info.dbname,))
    with psycopg.connect(url, autocommit=True) as conn:
        events = [r[0] for r in conn.execute("SELECT event_id FROM learning_events ORDER BY 1")]
        users = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY 1")]
        items = [r[0] for r in conn.execute("SELECT content_id FROM content WHERE is_active "
                                            "ORDER BY 1")]
        for i in range(CALLS):
            conn.execute(MISSING, (events[i * 97 % len(events)],))
            conn.execute(SERVED, (users[i * 13 % len(users)],))
            if i % 4 == 0:  # the application's answers: statements inside record_answer
                conn.execute("SELECT record_answer(%s, %s, true, 4000)",
                             (users[i * 17 % len(users)], items[i * 31 % len(items)]))
    return {"missing": _queryid(url, "WHERE event_id = $1 AND occurred_at"),
            "served": _queryid(url, "FROM review_schedule WHERE user_id = $1")}


def seed(url: str, env: dict | None = None) -> None:
    done = run_dmdb(["seed", "--users", "300", "--answers", "60", "--quiet"],
                    {"DATABASE_URL": url, **(env or {})}, timeout=300)
    assert done.returncode == 0, done.stderr
    # Fresh statistics, so that autovacuum has nothing to analyze while the tests compare.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


@pytest.fixture(scope="module")
def seeded(databases, statements_available):
    name = databases.create(schema=True)
    url = databases.url(name)
    seed(url)
    queryids = run_workload(url)
    yield url, queryids
    databases.drop(name)


def _advise(cli, url, *args):
    result = cli(["optimize", "indexes", "--json", *args], url=url)
    assert result.exit_code in (0, 1, 3), result.stdout + result.stderr
    return result, json.loads(result.stdout)


def _serving(decisions: list[dict], queryid: str) -> list[dict]:
    return [d for d in decisions if any(e["queryid"] == queryid and e["served"]
                                        for e in d["evidence"])]


def _scratch_databases(url: str) -> list[str]:
    return [r[0] for r in run_sql(url, "SELECT datname FROM pg_database WHERE starts_with("
                                       "datname, 'dmdb_optimize_' || (SELECT oid FROM pg_database "
                                       "WHERE datname = current_database()) || '_')")]


def _live_state(url: str) -> dict:
    """What the advisor must not change: the index set, the planner's statistics."""
    return {
        "indexes": run_sql(url, "SELECT schemaname, indexname, indexdef FROM pg_indexes "
                                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                                "ORDER BY 1, 2"),
        "stats": run_sql(url, "SELECT schemaname, tablename, attname, null_frac, n_distinct, "
                              "most_common_vals::text, histogram_bounds::text FROM pg_stats "
                              "WHERE schemaname = 'public' ORDER BY 1, 2, 3"),
        "analyzed": run_sql(url, "SELECT relname, last_analyze, last_autoanalyze, analyze_count "
                                 "FROM pg_stat_user_tables ORDER BY relname"),
    }


# -- the advice --------------------------------------------------------------------------


def test_the_missing_pattern_gets_one_index_and_the_served_one_none(cli, seeded):
    url, qid = seeded
    before = _live_state(url)
    result, data = _advise(cli, url)
    assert result.exit_code == 1  # indexes to add: WARNING, as the monitor's exit codes
    kept = data["suggestions"]
    assert len(kept) == 1, [(d["table"], d["columns"], d["reason"]) for d in kept]
    (one,) = kept
    assert one["table"] == "public.learning_events" and one["columns"][0] == "event_id"
    # One index on the parent, judged across the partitions: its plans use the
    # partitions' indexes; the trial shows the saving in the generic plan's cost.
    (ev,) = [e for e in one["evidence"] if e["queryid"] == qid["missing"]]
    assert ev["served"] and ev["calls"] == CALLS
    assert ev["cost_after"] <= 0.5 * ev["cost_before"]
    # before: the BRIN index on event_id (0006), lossy; after: the new btree's
    assert one["name"] not in ev["plan_before"]
    assert "Index Scan using learning_events_2" in ev["plan_after"]
    # A name of its own; its partitions' indexes get PostgreSQL's names from `dmdb
    # indexes build` (<partition>_event_id_idx1 beside the BRIN's <partition>_event_id_idx).
    assert one["name"].startswith("learning_events_event_id")
    assert one["name"] not in {r[0] for r in run_sql(url, "SELECT indexname FROM pg_indexes")}
    assert ev["ms_before"] is not None and ev["ms_after"] is not None
    assert one["benefit_ms"] > one["write_cost_ms"]
    assert one["rows_inserted"] >= CALLS // 4  # record_answer's events: the write load
    # record_answer's own statements (pg_stat_statements.track = all) were read, parsed,
    # explained and timed like the others; the primary keys serve them.
    nested = {s["explained"] for s in data["considered"] if s["nested"]}
    assert ("SELECT 1 FROM knowledge_states AS ks WHERE ks.user_id = $1 AND ks.concept_id = $2"
            in nested)
    assert not [e for d in data["dropped"] + kept for e in d["evidence"] if e["error"]]
    # The served pattern: no kept index serves it, and its candidates say why they went.
    assert not _serving(kept, qid["served"])
    dropped = [d for d in data["dropped"] if d["table"] == "public.review_schedule"]
    assert dropped and all(d["reason"] for d in dropped)
    assert any("already served by review_schedule_pkey" == s["reason"]
               for s in data["skipped"] if s["table"] == "public.review_schedule")
    # Every candidate of the missing pattern but the kept one is dropped with its reason.
    others = [d for d in data["dropped"] if d["table"] == "public.learning_events"]
    assert others and all(d["reason"] for d in others)
    # The live database was only read; its scratch copy is gone.
    assert data["scratch"] and data["copied"]
    assert {c["table"] for c in data["copied"]} >= {"public.learning_events",
                                                     "public.review_schedule"}
    for c in data["copied"]:  # the real volume: every row (the joined tables' too)
        assert c["rows"] == run_sql(url, f"SELECT count(*) FROM {c['table']}")[0][0], c
    assert _live_state(url) == before
    assert _scratch_databases(url) == []
    drift = cli(["drift"], url=url)
    assert drift.exit_code == 0 and "No drift" in drift.stdout


def test_a_role_that_cannot_read_other_roles_statements_is_told_so(cli, seeded, databases):
    url, _ = seeded
    role = "dmdb_optimize_nostats"
    run_sql(url, f"DROP ROLE IF EXISTS {role}")
    run_sql(url, f"CREATE ROLE {role} LOGIN")
    try:
        result = cli(["optimize", "indexes", "--json", "--user", role], url=url)
        assert result.exit_code == 3, result.stdout + result.stderr  # UNKNOWN
        data = json.loads(result.stdout)
        assert not data["privileged"] and data["hidden"] >= 2 and data["suggestions"] == []
        assert any(f"GRANT pg_read_all_stats TO {role}" in n for n in data["notes"])
    finally:
        run_sql(url, f"DROP ROLE IF EXISTS {role}")


def test_plain_output_ranks_the_suggestion_with_its_evidence(cli, seeded):
    url, _ = seeded
    result = cli(["optimize", "indexes"], url=url)
    assert result.exit_code == 1
    out = result.stdout
    assert "Suggested indexes (1)" in out
    assert "CREATE INDEX CONCURRENTLY \"learning_events_event_id" in out
    assert "40 calls, cost" in out and "before: Append > " in out
    assert "after:  Append > Index Scan using learning_events_" in out
    assert "dmdb optimize indexes --write-migration" in out


def test_the_written_migration_is_lint_clean_and_makes_the_pattern_use_the_index(
        cli, seeded, tmp_path):
    url, qid = seeded
    tree = tmp_path / "sql"
    shutil.copytree(REPO / "sql", tree)
    result, data = _advise(cli, url, "--write-migration", "--sql-dir", tree)
    written = data["migration"]
    newest = sorted(f.stem for f in (REPO / "sql" / "migrations").glob("*.sql"))[-1]
    expected = f"{int(newest[:4]) + 1:04d}_optimize_indexes"
    assert written["id"] == expected
    name = data["suggestions"][0]["name"]
    assert written["indexes"] == [name]
    forward = (tree / "migrations" / f"{expected}.sql").read_text()
    backward = (tree / "rollbacks" / f"{expected}.sql").read_text()
    assert forward.startswith("-- transactional: false\n")
    assert f'CREATE INDEX IF NOT EXISTS "{name}" ON ONLY "public"."learning_events"' in forward
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"learning_events_default_" in forward
    assert f'ALTER INDEX "public"."{name}" ATTACH PARTITION' in forward
    assert f'DROP INDEX IF EXISTS "public"."{name}"' in backward

    from dmdb.migrate.lint import squawk_binary

    squawk = subprocess.run([squawk_binary(), "--config", str(tree / "squawk.toml"),
                             str(tree / "migrations" / f"{expected}.sql")],
                            capture_output=True, text=True)
    assert squawk.returncode == 0, squawk.stdout + squawk.stderr
    lint = cli(["lint", "--json", "--sql-dir", tree], url=url)
    assert lint.exit_code == 0, lint.stdout
    findings = json.loads(lint.stdout)["findings"]
    assert not [f for f in findings if f["severity"] != "info" and not f.get("ignored")], findings

    (text,) = [s["explained"] for s in data["considered"] if s["queryid"] == qid["missing"]]
    assert text.endswith("occurred_at >= now() - $2::interval")
    explain = "EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + text
    cost_before = run_sql(url, explain)[0][0][0]["Plan"]["Total Cost"]
    up = cli(["up", "--sql-dir", tree], url=url)
    assert up.exit_code == 0, up.stdout + up.stderr
    try:
        plan = run_sql(url, explain)[0][0][0]["Plan"]
        assert plan["Total Cost"] <= 0.5 * cost_before
        assert name.removeprefix("learning_events_") in json.dumps(plan)
        check = cli(["indexes", "check", "--sql-dir", tree], url=url)
        assert check.exit_code == 0, check.stdout
        # Applied, the pattern is served: the next run suggests nothing for it.
        run_workload(url)
        _, again = _advise(cli, url, "--sql-dir", tree)
        assert not _serving(again["suggestions"], qid["missing"])
        assert not [d for d in again["suggestions"] if d["table"] == "public.learning_events"]
    finally:
        done = cli(["rollback", "--sql-dir", tree], url=url)
        assert done.exit_code == 0, done.stdout + done.stderr
        run_workload(url)
    assert run_sql(url, "SELECT to_regclass(%s)", (name,))[0][0] is None


def test_unused_indexes_are_offered_as_a_drop_migration_that_rolls_back(cli, seeded, tmp_path):
    url, _ = seeded
    tree = tmp_path / "sql"
    shutil.copytree(REPO / "sql", tree)
    run_sql(url, "SELECT pg_stat_reset()")
    _, data = _advise(cli, url, "--write-drop-migration", "--unused-min-size-mb", "0",
                      "--sql-dir", tree)
    unused = {f"{r['schema']}.{r['index']}" for r in data["unused"]}
    assert "public.content_concept_idx" in unused
    assert "public.learning_events_event_id_brin_idx" in unused  # a partitioned one
    fid = data["drop_migration"]["id"]
    forward = (tree / "migrations" / f"{fid}.sql").read_text()
    backward = (tree / "rollbacks" / f"{fid}.sql").read_text()
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."content_concept_idx";' in forward
    assert 'DROP INDEX IF EXISTS "public"."learning_events_event_id_brin_idx";' in forward
    assert ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "content_concept_idx" ON "public"."content" '
            'USING btree (concept_id);') in backward
    lint = cli(["lint", "--json", "--sql-dir", tree], url=url)
    assert lint.exit_code == 0, lint.stdout
    defs = dict(run_sql(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname "
                             "<> 'pg_catalog'"))
    assert cli(["up", "--sql-dir", tree], url=url).exit_code == 0
    try:
        assert run_sql(url, "SELECT to_regclass('content_concept_idx')")[0][0] is None
    finally:
        done = cli(["rollback", "--sql-dir", tree], url=url)
        assert done.exit_code == 0, done.stdout + done.stderr
    assert dict(run_sql(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname "
                             "<> 'pg_catalog'")) == defs
    assert cli(["indexes", "check"], url=url).exit_code == 0


def test_a_run_killed_mid_trial_leaves_no_index_and_the_next_cleans_its_copy(seeded, tmp_path):
    url, _ = seeded
    before = _live_state(url)["indexes"]
    proc = popen_dmdb(["optimize", "indexes", "--json", "--samples", "20"],
                      {"DATABASE_URL": url}, cwd=tmp_path)
    killed_in = None
    # The trial's own statements on its scratch copy (the copy's COPY is not the trial).
    trial = ["EXPLAIN%", "CREATE INDEX%", "PREPARE%", "SAVEPOINT%", "ROLLBACK TO%", "RELEASE%",
             "DEALLOCATE%", "WITH d AS%", "CREATE TEMP%", "SELECT set_config%"]
    deadline = time.monotonic() + 60
    try:
        with psycopg.connect(url, autocommit=True) as watch:
            while time.monotonic() < deadline and proc.poll() is None:
                rows = watch.execute(
                    "SELECT datname, query FROM pg_stat_activity WHERE starts_with(datname, "
                    "'dmdb_optimize_') AND query LIKE ANY(%s)", (trial,)).fetchall()
                if rows:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_in = rows[0]
                    break
                time.sleep(0.005)
    finally:
        if proc.poll() is None and killed_in is None:
            proc.kill()
        out, err = proc.communicate()
    assert killed_in is not None, f"the trial was never caught running: {err}"
    assert proc.returncode == -signal.SIGKILL
    assert _live_state(url)["indexes"] == before
    left = _scratch_databases(url)
    assert left == [killed_in[0]]  # a SIGKILL runs no finally
    done = run_dmdb(["optimize", "indexes", "--json"], {"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["cleaned"] == left
    assert _scratch_databases(url) == []
    assert _live_state(url)["indexes"] == before


# -- parsing, pure ----------------------------------------------------------------------


def _tables():
    from dmdb.optimize import Table, Tables

    return Tables([
        Table("public", "knowledge_states", {"user_id": "bigint", "concept_id": "bigint",
                                             "mastery_probability": "double precision"}, "p"),
        Table("public", "content", {"content_id": "bigint", "concept_id": "bigint",
                                    "is_active": "boolean", "parent_content_id": "bigint",
                                    "media": "jsonb", "created_at": "timestamp with time zone"}),
    ])


def test_a_function_statement_with_variables_becomes_explainable_text():
    from dmdb.optimize import parse_statement

    # As pg_stat_statements stores a statement of record_answer (track = all).
    text = ("UPDATE knowledge_states ks SET mastery_probability = record_answer.mastery, "
            "attempts = ks.attempts + $18 WHERE ks.user_id = p_user_id "
            "AND ks.concept_id = record_answer.concept_id")
    p = parse_statement(text, _tables())
    assert p.kind == "update" and p.error is None
    assert p.statement == ("UPDATE knowledge_states ks SET mastery_probability = $1, "
                           "attempts = ks.attempts + $2 WHERE ks.user_id = $3 "
                           "AND ks.concept_id = $4")
    # explained as the SELECT of the rows it changes, its parameters numbered again
    assert p.text == ("SELECT 1 FROM knowledge_states AS ks WHERE ks.user_id = $1 "
                      "AND ks.concept_id = $2")
    (scan,) = p.scans
    assert scan.table == "public.knowledge_states"
    assert scan.eq == ["user_id", "concept_id"] and scan.params == {1: "user_id", 2: "concept_id"}
    assert p.writes[0].columns == ["mastery_probability", "attempts"]
    # A typed literal, normalized: `interval $2` is pglast's grammar, not the server's.
    p = parse_statement("SELECT 1 FROM content WHERE created_at >= now() - interval $7 "
                        "AND content_id = $3", _tables())
    assert p.text == ("SELECT 1 FROM content WHERE created_at >= now() - $1::interval "
                      "AND content_id = $2")
    assert p.scans[0].params == {2: "content_id"}


def test_scans_joins_ranges_order_and_constant_predicates():
    from dmdb.optimize import parse_statement

    text = ("SELECT c.content_id FROM content c JOIN knowledge_states k "
            "ON k.concept_id = c.concept_id WHERE k.user_id = $1 AND c.is_active "
            "AND c.parent_content_id IS NOT NULL AND c.created_at BETWEEN $2 AND $3 "
            "AND c.media @> $4 ORDER BY c.created_at DESC LIMIT $5")
    p = parse_statement(text, _tables())
    scans = {s.table: s for s in p.scans}
    content, ks = scans["public.content"], scans["public.knowledge_states"]
    assert content.join == ["concept_id"] and ks.join == ["concept_id"]
    assert ks.eq == ["user_id"] and content.range == ["created_at"]
    assert content.order == ["created_at"]
    assert content.predicates == ["is_active", "parent_content_id IS NOT NULL"]
    assert p.limit_params == [5]


def test_candidates_partial_no_btree_on_jsonb_and_existing_cover():
    from dmdb.optimize import ExistingIndex, generate, parse_statement
    from dmdb.optimize.candidates import Weighted

    tables = _tables()
    p = parse_statement("SELECT 1 FROM content WHERE concept_id = $1 AND created_at = $2 "
                        "AND is_active AND media = $3", tables)
    types = {"public.content": tables.by_name["content"].columns}
    existing = [ExistingIndex("content_concept_idx", "public.content", "btree", ("concept_id",),
                              None)]
    found = generate([Weighted(s, "q1", 10.0) for s in p.scans], types, existing)
    labels = {c.label for c in found.tried}
    assert "public.content (created_at) WHERE is_active" in labels  # partial: recurs
    assert "public.content (created_at)" in labels
    assert "public.content (concept_id)" not in labels  # served by content_concept_idx
    # a full index serves the partial variant too
    assert "public.content (concept_id) WHERE is_active" not in labels
    assert not [c for c in found.tried if "media" in c.columns]
    reasons = {c.label: why for c, why in found.skipped}
    assert reasons["public.content (media)"].startswith("never a btree on media (jsonb)")
    assert reasons["public.content (concept_id)"] == "already served by content_concept_idx"


# -- a managed-style server: TLS, a non-superuser owner, a pooler ---------------------------


def test_a_managed_non_superuser_owner_gets_the_same_advice(managed, tmp_path):
    from managed import ADMIN, OWNER
    from psycopg import sql

    name = "dmdb_optimize_lane"
    admin_url = managed.url(ADMIN, managed.passwords[ADMIN], dbname=name)
    owner_url = managed.url(OWNER, managed.passwords[OWNER], dbname=name)
    with psycopg.connect(managed.owner_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:  # as the provider does
            conn.execute("CREATE EXTENSION pg_stat_statements")
        env = {"DATABASE_URL": owner_url,
               "PATH": f"{managed.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        up = run_dmdb(["up"], env, cwd=tmp_path, timeout=300)
        assert up.returncode == 0, up.stderr
        seed(owner_url, env)
        qid = run_workload(owner_url, reset=admin_url)
        before = _live_state(owner_url)
        done = run_dmdb(["optimize", "indexes", "--json"], env, cwd=tmp_path, timeout=300)
        assert done.returncode == 1, done.stderr
        data = json.loads(done.stdout)
        assert data["role"] == OWNER and data["privileged"]  # pg_monitor: pg_read_all_stats
        (one,) = data["suggestions"]
        assert one["table"] == "public.learning_events" and one["columns"][0] == "event_id"
        assert _serving(data["suggestions"], qid["missing"])
        assert not _serving(data["suggestions"], qid["served"])
        assert _live_state(owner_url) == before and _scratch_databases(owner_url) == []
    finally:
        with psycopg.connect(managed.owner_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def test_through_a_transaction_pooler_the_trial_needs_a_session(managed, tmp_path):
    env = {"DATABASE_URL": managed.pooled_owner_url,
           "PATH": f"{managed.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = run_dmdb(["optimize", "indexes"], env, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmdb: error: dmdb optimize indexes needs")
    assert "transaction pooler" in lines[0] and "DMDB_DIRECT_URL" in lines[0]
    assert managed.passwords["dm_owner"] not in done.stdout + done.stderr


# -- the write cost ------------------------------------------------------------------------


def test_a_candidate_whose_writes_cost_more_than_it_saves_is_dropped(cli, databases,
                                                                    statements_available):
    """The same rare query gets its index while the table takes no writes, and loses it
    once the workload inserts many rows: the trial's write sample prices each insert."""
    name = databases.create(schema=False)
    url = databases.url(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE TABLE readings (id bigint PRIMARY KEY, sensor int NOT NULL, "
                         "value double precision NOT NULL)")
            conn.execute("INSERT INTO readings SELECT g, g % 5000, random() "
                         "FROM generate_series(1, 60000) g")
            conn.execute("VACUUM ANALYZE readings")

        def workload(inserts: int) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                             "WHERE datname = current_database()), 0)")
                for i in range(3):
                    conn.execute("SELECT id, value FROM readings WHERE sensor = %s", (i * 11,))
                for _ in range(inserts):  # counted by pg_stat_statements, rolled back
                    with conn.transaction(force_rollback=True):
                        conn.execute("INSERT INTO readings SELECT g, g % 5000, 0 "
                                     "FROM generate_series(100001, 130000) g")

        workload(0)
        _, quiet = _advise(cli, url, "--write-rows", "1000")
        (kept,) = quiet["suggestions"]
        assert kept["columns"] == ["sensor"] and kept["write_cost_ms"] == 0.0
        assert kept["rows_inserted"] == 0

        workload(20)
        _, busy = _advise(cli, url, "--write-rows", "1000")
        assert busy["suggestions"] == []
        (dropped,) = [d for d in busy["dropped"] if d["columns"] == ["sensor"]]
        assert dropped["rows_inserted"] == 20 * 30000
        assert dropped["write_cost_ms"] >= dropped["benefit_ms"] > 0
        assert dropped["reason"].startswith("write cost ")
    finally:
        databases.drop(name)


def test_write_cost_prices_inserts_and_updates_that_lose_hot():
    from dmdb.optimize.candidates import Candidate, ExistingIndex
    from dmdb.optimize.choose import TableWrites, extra_ms_per_row, write_cost
    from dmdb.optimize.trial import CandidateTrial, TableTrial, WriteMeasure

    tt = TableTrial("public.t", write=WriteMeasure(100, 0.010))
    ct = CandidateTrial(Candidate("public.t", ("a",)), "t_a_idx", "", write=WriteMeasure(100, 0.012))
    pkey = [ExistingIndex("t_pkey", "public.t", "btree", ("id",), None)]
    extra = 0.002
    assert write_cost(ct, tt, TableWrites(inserted=1000), pkey, {"id"}) == pytest.approx(1000 * extra)
    # An UPDATE of `a` was HOT; with the index it inserts into both indexes.
    hot = TableWrites(updates=[(["a"], 500)])
    assert write_cost(ct, tt, hot, pkey, {"id"}) == pytest.approx(500 * extra * 2)
    # An UPDATE of an indexed column was never HOT: one more index to insert into.
    cold = TableWrites(updates=[(["id", "b"], 500)])
    assert write_cost(ct, tt, cold, pkey, {"id"}) == pytest.approx(500 * extra)
    # An UPDATE of other columns stays HOT: free.
    assert write_cost(ct, tt, TableWrites(updates=[(["b"], 500)]), pkey, {"id"}) == 0.0
    # Measured no slower with the index (noise): never free; the per-row insert time
    # shared among the heap, the primary key and the new index.
    ct.write = WriteMeasure(100, 0.009)
    assert extra_ms_per_row(ct, tt, pkey) == (pytest.approx(0.010 / 3), "estimated")
    assert write_cost(ct, tt, TableWrites(inserted=1000), pkey, {"id"}) == \
        pytest.approx(1000 * 0.010 / 3)
