"""`dmdb indexes build / check / report` against a real PostgreSQL: the declared set read
from the migrations, builds on partitioned and plain tables without blocking writers,
resumption after a failed CONCURRENTLY build, unused and duplicate detection."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from conftest import run_sql, without_target
from dmdb import indexes
from dmdb.migrate.engine import Project, up

TREE = """
CREATE TABLE ev (id bigint NOT NULL, k int NOT NULL, note text) PARTITION BY RANGE (id);
CREATE TABLE ev_p0 PARTITION OF ev FOR VALUES FROM (0) TO (10000);
CREATE TABLE ev_p1 PARTITION OF ev FOR VALUES FROM (10000) TO (20000);
CREATE TABLE ev_sub PARTITION OF ev FOR VALUES FROM (20000) TO (40000) PARTITION BY RANGE (id);
CREATE TABLE ev_sub_a PARTITION OF ev_sub FOR VALUES FROM (20000) TO (30000);
CREATE TABLE ev_sub_b PARTITION OF ev_sub FOR VALUES FROM (30000) TO (40000);
-- the index every test rebuilds
CREATE INDEX ev_k_idx ON ev (k);
CREATE UNIQUE INDEX ev_id_note_uidx ON ev (id, note);
CREATE TABLE pt (id int PRIMARY KEY, code text, val int);
CREATE UNIQUE INDEX pt_code_uidx ON pt (code);
CREATE INDEX pt_val_idx ON pt USING btree (val) WHERE val IS NOT NULL;
CREATE INDEX pt_gone_idx ON pt (id, val);
DROP INDEX pt_gone_idx;
CREATE INDEX pt_old_name_idx ON pt (val, code);
ALTER INDEX pt_old_name_idx RENAME TO pt_val_code_idx;
"""
TREE_BACK = "DROP TABLE pt;\nDROP TABLE ev;\n"


@pytest.fixture
def tree_db(sql_tree, empty_url):
    """An empty database with TREE applied; returns (sql dir, url)."""
    sql_tree.migration("0001_tree", TREE, TREE_BACK)
    with psycopg.connect(empty_url, autocommit=True) as conn:
        up(conn, Project(sql_tree.root), lock_wait=30)
    return sql_tree.root, empty_url


def index_state(url: str, name: str):
    rows = run_sql(url, "SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)",
               (name,))
    return rows[0][0] if rows else None


def attached_children(url: str, parent: str) -> dict[str, str]:
    """{partition index: its table} of the indexes attached to `parent`."""
    rows = run_sql(url, """
        SELECT i.inhrelid::regclass::text, x.indrelid::regclass::text
        FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid
        WHERE i.inhparent = to_regclass(%s)""", (parent,))
    return dict(rows)


# -- the declared set (pure) ------------------------------------------------------------


def test_declared_set_follows_drops_and_renames(sql_tree):
    sql_tree.migration("0001_tree", TREE, TREE_BACK)
    sql_tree.migration(
        "0002_more",
        '-- transactional: false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS "Odd Name" ON '
        'public."Weird Table" USING hash (k);\nDROP TABLE IF EXISTS pt CASCADE;\n'
        "CREATE INDEX ON ev (note);\n",
        "SELECT 1;\n",
    )
    declared = {d.name: d for d in indexes.declared_indexes(sql_tree.root)}
    assert set(declared) == {"ev_k_idx", "ev_id_note_uidx", "Odd Name"}
    odd = declared["Odd Name"]
    assert (odd.table_schema, odd.table, odd.tail, odd.unique) == (
        "public", "Weird Table", "USING hash (k)", False)
    assert declared["ev_id_note_uidx"].unique
    assert declared["ev_k_idx"].tail == "(k)" and declared["ev_k_idx"].source == "0001_tree"


def test_shipped_schema_declares_its_indexes_and_no_constraint_ones():
    declared = {d.name: d for d in indexes.declared_indexes()}
    # 0008 dropped the indexes that kept the per-answer updates from being HOT.
    assert "knowledge_states_user_mastery_idx" not in declared
    assert "review_schedule_user_due_idx" not in declared
    assert "learning_events_context_data_gin_idx" in declared
    assert declared["content_performance_content_uidx"].unique
    assert not any(name.endswith("_pkey") for name in declared)
    # 0016 builds an index CONCURRENTLY and makes it the primary key (USING INDEX): the
    # constraint's, not a declared index that `indexes build` would make again.
    assert "learning_sessions_user_session_key" not in declared


SHAPES = [
    "(k)", "USING gin (j jsonb_path_ops)", "(k, v DESC NULLS LAST) INCLUDE (t)",
    "(lower(v) text_pattern_ops, k)", "((k + 1))", "((('a' || v)::text))",
    "((CASE WHEN k > 0 THEN 1 END))", "(coalesce(k, 0))", "((j ->> 'x'))",
    "(\"Odd Col\")", "(k) WHERE k > 0", "(k)",
]


def test_partition_index_names_are_the_ones_postgresql_gives(empty_url):
    """The names dmdb gives the partitions' indexes it builds are PostgreSQL's own, for
    every shape of index (columns, INCLUDE, opclasses, expressions, quoted names, a
    repeat), a partition made before the index and after it, and a name cut to 63 bytes."""
    long_part = "p_" + "x" * 58
    parts = ["p_before", "p_after", long_part]
    run_sql(empty_url, 'CREATE TABLE p (k int, v text, t timestamptz, j jsonb, "Odd Col" int) '
                       "PARTITION BY RANGE (k)")
    run_sql(empty_url, "CREATE TABLE p_before PARTITION OF p FOR VALUES FROM (0) TO (10)")
    for n, tail in enumerate(SHAPES):
        run_sql(empty_url, f"CREATE INDEX p_shape_{n} ON p {tail}")
    run_sql(empty_url, "CREATE TABLE p_after PARTITION OF p FOR VALUES FROM (10) TO (20)")
    run_sql(empty_url, f"CREATE TABLE {long_part} PARTITION OF p FOR VALUES FROM (20) TO (30)")
    got = dict(run_sql(empty_url, """
        SELECT p.relname || '/' || c.relname, i.relname FROM pg_inherits h
        JOIN pg_class i ON i.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent
        JOIN pg_index x ON x.indexrelid = i.oid JOIN pg_class c ON c.oid = x.indrelid
        WHERE p.relname LIKE 'p_shape_%'"""))
    for part in parts:
        taken: list[str] = []
        for n, tail in enumerate(SHAPES):
            name = indexes.partition_index_name(part, tail, taken)
            assert name == got[f"p_shape_{n}/{part}"], (part, tail)
            assert len(name.encode()) <= 63
            taken.append(name)


# -- build / check ------------------------------------------------------------------------


def test_shipped_schema_is_clean_and_a_dropped_index_comes_back(cli, schema_url):
    result = cli(["indexes", "check"], url=schema_url)
    assert result.exit_code == 0, result.stdout + result.stderr
    dry = cli(["indexes", "build", "--dry-run"], url=schema_url)
    assert dry.exit_code == 0 and "Nothing to do" in dry.stdout

    gin = "learning_events_context_data_gin_idx"
    run_sql(schema_url, f"DROP INDEX {gin}")
    check = cli(["indexes", "check", "--json"], url=schema_url)
    assert check.exit_code == 1
    data = json.loads(check.stdout)
    assert [m["index"] for m in data["missing"]] == [f"public.{gin}"]
    assert data["ok"] is False and data["invalid"] == [] and data["unattached"] == []

    built = cli(["indexes", "build", "--table", "learning_events", "--json"], url=schema_url)
    assert built.exit_code == 0, built.stderr
    out = json.loads(built.stdout)
    assert out["built"] == [f"public.{gin}"]
    months = [r[0] for r in run_sql(schema_url, """
        SELECT inhrelid::regclass::text FROM pg_inherits
        WHERE inhparent = 'learning_events'::regclass""")]
    assert len(months) >= 2 and out["indexes"][0]["partitions"] == len(months)
    assert index_state(schema_url, gin) is True
    assert set(attached_children(schema_url, gin)) == {
        indexes.partition_index_name(m.split(".")[-1], "USING gin (context_data)")
        for m in months}
    assert cli(["indexes", "check"], url=schema_url).exit_code == 0


def test_build_on_partitioned_table_with_data(cli, tree_db):
    sql_dir, url = tree_db
    run_sql(url, "DROP INDEX ev_k_idx")
    run_sql(url, "INSERT INTO ev SELECT g, g % 5000, 'n' || g FROM generate_series(0, 39999) g")

    dry = cli(["--sql-dir", sql_dir, "indexes", "build", "--dry-run"], url=url)
    assert dry.exit_code == 0, dry.stderr
    assert 'CREATE INDEX IF NOT EXISTS "ev_k_idx" ON ONLY "public"."ev" (k)' in dry.stdout
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ev_p0_k_idx" ON "public"."ev_p0" (k)' \
        in dry.stdout
    assert 'ALTER INDEX "public"."ev_sub_k_idx" ATTACH PARTITION "public"."ev_sub_a_k_idx"' \
        in dry.stdout
    assert index_state(url, "ev_k_idx") is None  # nothing changed

    result = cli(["--sql-dir", sql_dir, "indexes", "build", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["built"] == ["public.ev_k_idx"] and data["failed"] == []
    assert data["indexes"][0]["partitions"] == 4  # the leaves: ev_p0, ev_p1, ev_sub_a, ev_sub_b

    assert index_state(url, "ev_k_idx") is True
    assert attached_children(url, "ev_k_idx") == {
        "ev_p0_k_idx": "ev_p0", "ev_p1_k_idx": "ev_p1", "ev_sub_k_idx": "ev_sub"}
    assert attached_children(url, "ev_sub_k_idx") == {
        "ev_sub_a_k_idx": "ev_sub_a", "ev_sub_b_k_idx": "ev_sub_b"}
    for leaf in ("ev_p0_k_idx", "ev_p1_k_idx", "ev_sub_a_k_idx", "ev_sub_b_k_idx"):
        assert index_state(url, leaf) is True

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE ev")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT * FROM ev WHERE k = 42").fetchall())
    assert "ev_p0_k_idx" in plan and "ev_sub_b_k_idx" in plan and "Seq Scan" not in plan

    assert cli(["--sql-dir", sql_dir, "indexes", "check"], url=url).exit_code == 0
    again = cli(["--sql-dir", sql_dir, "indexes", "build"], url=url)
    assert again.exit_code == 0 and "Nothing to do" in again.stdout


def test_check_reports_unattached_partition_indexes_and_build_attaches(cli, tree_db):
    sql_dir, url = tree_db
    run_sql(url, "DROP INDEX ev_k_idx")
    run_sql(url, "CREATE INDEX ev_k_idx ON ONLY ev (k)")
    run_sql(url, "CREATE INDEX ev_p0_k_idx ON ev_p0 (k)")  # built, never attached

    result = cli(["--sql-dir", sql_dir, "indexes", "check", "--json"], url=url)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [i["index"] for i in data["invalid"]] == ["public.ev_k_idx"]
    unattached = {u["partition"]: u["partition_index"] for u in data["unattached"]}
    assert unattached == {"public.ev_p0": "public.ev_p0_k_idx", "public.ev_p1": None,
                          "public.ev_sub": None}
    text = cli(["--sql-dir", sql_dir, "indexes", "check"], url=url)
    assert text.exit_code == 1 and "ev_p0_k_idx" in text.stdout

    dry = json.loads(cli(["--sql-dir", sql_dir, "indexes", "build", "--dry-run", "--json"],
                         url=url).stdout)
    steps = [(s["action"], s["index"]) for p in dry["indexes"] for s in p["steps"]]
    assert ("attach", "public.ev_p0_k_idx") in steps  # the existing one is attached
    assert ("create_concurrently", "public.ev_p0_k_idx") not in steps
    assert ("create_on_only", "public.ev_k_idx") not in steps

    assert cli(["--sql-dir", sql_dir, "indexes", "build"], url=url).exit_code == 0
    assert index_state(url, "ev_k_idx") is True
    assert cli(["--sql-dir", sql_dir, "indexes", "check"], url=url).exit_code == 0


def test_failed_unique_build_is_reported_and_repaired(cli, tree_db):
    sql_dir, url = tree_db
    run_sql(url, "DROP INDEX pt_code_uidx")
    run_sql(url, "INSERT INTO pt SELECT g, 'c' || (g % 900), g FROM generate_series(1, 1000) g")

    failed = cli(["--sql-dir", sql_dir, "indexes", "build", "--table", "pt"], url=url)
    assert failed.exit_code == 1
    assert without_target(failed.stderr).count("\n") == 1 and "pt_code_uidx" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert index_state(url, "pt_code_uidx") is False  # the INVALID leftover

    check = cli(["--sql-dir", sql_dir, "indexes", "check", "--json"], url=url)
    assert check.exit_code == 1
    assert [i["index"] for i in json.loads(check.stdout)["invalid"]] == ["public.pt_code_uidx"]

    run_sql(url, "DELETE FROM pt WHERE id > 900")
    dry = json.loads(cli(["--sql-dir", sql_dir, "indexes", "build", "--dry-run", "--json"],
                         url=url).stdout)
    plan = next(p for p in dry["indexes"] if p["index"] == "public.pt_code_uidx")
    assert plan["status"] == "invalid"
    assert [s["action"] for s in plan["steps"]] == ["drop_invalid", "create_concurrently"]
    assert plan["steps"][0]["sql"] == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."pt_code_uidx"'

    repaired = cli(["--sql-dir", sql_dir, "indexes", "build"], url=url)
    assert repaired.exit_code == 0, repaired.stderr
    assert index_state(url, "pt_code_uidx") is True
    assert cli(["--sql-dir", sql_dir, "indexes", "check"], url=url).exit_code == 0


def test_failed_partition_build_resumes(cli, tree_db):
    """A unique build that fails on one partition leaves that partition's index INVALID
    and unattached; the next build drops it, builds it again and attaches it."""
    sql_dir, url = tree_db
    run_sql(url, "DROP INDEX ev_id_note_uidx")
    run_sql(url, "INSERT INTO ev SELECT g, g, 'n' FROM generate_series(0, 39999) g")
    run_sql(url, "INSERT INTO ev VALUES (15000, 1, 'n')")  # a duplicate (id, note) in ev_p1

    failed = cli(["--sql-dir", sql_dir, "indexes", "build", "--json"], url=url)
    assert failed.exit_code == 1
    data = json.loads(failed.stdout)
    assert data["failed"][0]["on"] == "public.ev_p1_id_note_idx"
    assert index_state(url, "ev_id_note_uidx") is False
    assert index_state(url, "ev_p1_id_note_idx") is False
    assert "ev_p0_id_note_idx" in attached_children(url, "ev_id_note_uidx")

    check = json.loads(cli(["--sql-dir", sql_dir, "indexes", "check", "--json"], url=url).stdout)
    assert {"public.ev_id_note_uidx", "public.ev_p1_id_note_idx"} <= {
        i["index"] for i in check["invalid"]}

    run_sql(url, "DELETE FROM ev WHERE id = 15000 AND k = 1")
    resumed = cli(["--sql-dir", sql_dir, "indexes", "build", "--json"], url=url)
    assert resumed.exit_code == 0, resumed.stderr
    steps = [s["action"] for p in json.loads(resumed.stdout)["indexes"] for s in p["steps"]]
    assert steps[0] == "drop_invalid" and "create_on_only" not in steps[:1]
    assert index_state(url, "ev_id_note_uidx") is True
    assert cli(["--sql-dir", sql_dir, "indexes", "check"], url=url).exit_code == 0


BIG = """
CREATE TABLE big (id bigint NOT NULL, k int NOT NULL, payload text NOT NULL)
    PARTITION BY HASH (id);
CREATE TABLE big_p0 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE big_p1 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE big_p2 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE big_p3 PARTITION OF big FOR VALUES WITH (MODULUS 4, REMAINDER 3);
CREATE INDEX big_payload_idx ON big (payload);
CREATE INDEX big_k_payload_idx ON big (k, payload);
CREATE INDEX big_payload_id_idx ON big (payload DESC, id);
"""


@pytest.mark.slow
def test_build_does_not_block_writers(sql_tree, empty_url):
    sql_tree.migration("0001_big", BIG, "DROP TABLE big;\n")
    url = empty_url
    with psycopg.connect(url, autocommit=True) as conn:
        up(conn, Project(sql_tree.root), lock_wait=30)
        conn.execute("DROP INDEX big_payload_idx")
        conn.execute("DROP INDEX big_k_payload_idx")
        conn.execute("DROP INDEX big_payload_id_idx")
        conn.execute("INSERT INTO big SELECT g, g % 1000, md5(g::text) "
                     "FROM generate_series(1, 1000000) g")
        conn.execute("VACUUM ANALYZE big")

    waits: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    started = threading.Event()

    def writer():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '30s'")
            n = 2_000_000
            started.set()
            while not stop.is_set():
                n += 1
                t0 = time.perf_counter()
                try:
                    conn.execute("INSERT INTO big VALUES (%s, %s, md5(%s::text))", (n, n % 1000, n))
                except psycopg.Error as exc:
                    errors.append(str(exc))
                waits.append(time.perf_counter() - t0)
                time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(10)
    events = []
    writes_seen = []  # (index step, phase, inserts done so far) at each progress report

    def progress(event):
        events.append(event)
        writes_seen.append((event.step_number, event.phase or "", len(waits)))

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            result = indexes.build(
                conn, indexes.declared_indexes(sql_tree.root), progress=progress,
                monitor=lambda: psycopg.connect(url, autocommit=True), poll_interval=0.02)
            duration = time.perf_counter() - t0
            during = len(waits)
    finally:
        stop.set()
        thread.join()

    assert result.failed == [], result.failed
    assert sorted(result.built) == ["public.big_k_payload_idx", "public.big_payload_id_idx",
                                    "public.big_payload_idx"]
    assert errors == []
    assert during > 10, "the writer barely ran during the build"
    longest = max(waits)
    print(f"build {duration:.2f}s, {during} inserts, longest insert {longest * 1000:.1f} ms")
    # Not blocked: inserts completed between two reports of the same build in progress
    # (a plain CREATE INDEX would hold them until it ends), whatever the machine's speed.
    progressed = set()
    for number in {k for k, _, _ in writes_seen}:
        counts = [n for k, phase, n in writes_seen if k == number and phase]
        if len(counts) > 1 and counts[-1] > counts[0]:
            progressed.add(number)
    assert progressed, writes_seen
    # the progress callback saw pg_stat_progress_create_index's phases
    assert any(e.phase and e.phase.startswith("building index") for e in events)
    assert index_state(url, "big_payload_idx") is True
    with psycopg.connect(url) as conn:
        landed = conn.execute("SELECT count(*) FROM big WHERE id > 2000000").fetchone()[0]
    assert landed == len(waits)  # every insert landed


# -- report ---------------------------------------------------------------------------------


def test_report_finds_unused_and_duplicate_indexes(cli, empty_url):
    url = empty_url
    run_sql(url, """
        CREATE TABLE dup (id int PRIMARY KEY, a int, b int, c int, x text);
        INSERT INTO dup SELECT g, g % 100, g % 7, g, md5(g::text) FROM generate_series(1, 20000) g;
        CREATE INDEX dup_a_idx ON dup (a);
        CREATE INDEX dup_a_b_idx ON dup (a, b);
        CREATE UNIQUE INDEX dup_c_uidx ON dup (c);
        CREATE INDEX dup_c_idx ON dup (c);
        CREATE INDEX dup_b_partial_idx ON dup (b) WHERE a > 50;
        CREATE INDEX dup_b_c_idx ON dup (b, c);
        CREATE INDEX dup_lower_x_idx ON dup (lower(x));
        CREATE INDEX dup_lower_x_a_idx ON dup (lower(x), a);
        CREATE INDEX dup_x_idx ON dup (x);
        CREATE INDEX dup_x_desc_idx ON dup (x DESC, a);
        CREATE INDEX dup_twin1_idx ON dup (b, id);
        CREATE INDEX dup_twin2_idx ON dup (b, id);
        CREATE INDEX dup_x_hash_idx ON dup USING hash (x);
        ANALYZE dup;
    """)
    run_sql(url, "SELECT pg_stat_reset()")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = conn.execute("EXPLAIN SELECT * FROM dup WHERE a = 5 AND b = 3").fetchall()
        assert "dup_a_b_idx" in str(plan)
        conn.execute("SELECT * FROM dup WHERE a = 5 AND b = 3").fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")

    result = cli(["indexes", "report", "--json", "--min-size-mb", "0"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stats_reset"] is not None
    by_name = {i["index"]: i for i in data["indexes"]}
    assert by_name["dup_a_b_idx"]["scans"] >= 1
    assert by_name["dup_a_idx"]["size_bytes"] > 0 and by_name["dup_a_idx"]["method"] == "btree"

    dups = {(d["index"], d["covered_by"]) for d in data["duplicates"]}
    assert dups == {("dup_a_idx", "dup_a_b_idx"), ("dup_c_idx", "dup_c_uidx"),
                    ("dup_twin2_idx", "dup_twin1_idx")}

    unused = {u["index"] for u in data["unused"]}
    assert "dup_a_idx" in unused and "dup_x_hash_idx" in unused
    assert "dup_a_b_idx" not in unused  # scanned
    assert "dup_c_uidx" not in unused and "dup_pkey" not in unused  # unique / constraint

    floor = json.loads(cli(["indexes", "report", "--json", "--min-size-mb", "100"], url=url).stdout)
    assert floor["unused"] == [] and floor["min_size_mb"] == 100

    text = cli(["indexes", "report", "--min-size-mb", "0"], url=url)
    assert text.exit_code == 0
    assert "Statistics since: 2" in text.stdout  # the reset time, printed
    assert "dup_twin2_idx" in text.stdout


def test_report_sums_partitioned_indexes(cli, tree_db):
    _, url = tree_db
    run_sql(url, "INSERT INTO ev SELECT g, g, 'n' || g FROM generate_series(0, 39999) g")
    data = json.loads(cli(["indexes", "report", "--json", "--min-size-mb", "0"], url=url).stdout)
    ev = {i["index"]: i for i in data["indexes"]}["ev_k_idx"]
    assert ev["partitioned"] and ev["leaf_indexes"] == 4 and ev["size_bytes"] > 0
    # partition indexes are folded into their parent's row
    assert "ev_p0_k_idx" not in {i["index"] for i in data["indexes"]}


# -- identifiers from the command line ------------------------------------------------------


def test_unlimited_lock_timeout_is_refused(cli, schema_url):
    # 0 means no limit: an ON ONLY / ATTACH step waiting for a lock would queue every
    # query of its table behind it for as long as the blocker lasts.
    for args in (["indexes", "build", "--lock-timeout", "0"],
                 ["indexes", "build", "--dry-run", "--lock-timeout", "0s"]):
        result = cli(args, url=schema_url)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("dmdb: error: --lock-timeout")
        assert result.stderr.count("\n") == 1


def test_hostile_table_name_is_refused_and_nothing_injected(cli, schema_url):
    hostile = "x; DROP TABLE users"
    for args in (["indexes", "build", "--table", hostile],
                 ["indexes", "build", "--dry-run", "--table", hostile],
                 ["maintenance", "vacuum", "--table", hostile]):
        result = cli(args, url=schema_url)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        stderr = without_target(result.stderr)
        assert stderr.startswith("dmdb: error: no table named 'x; DROP TABLE users'")
        assert stderr.count("\n") == 1
    assert run_sql(schema_url, "SELECT to_regclass('users') IS NOT NULL")[0][0]


def test_build_on_a_database_without_the_schema_is_an_error(cli, empty_url):
    result = cli(["indexes", "build"], url=empty_url)
    assert result.exit_code == 1
    assert "dmdb up" in result.stderr and "has no dmdb schema" in result.stderr
    assert "Nothing to do" not in result.stdout


@pytest.mark.parametrize("size", ["inf", "1e308"])
def test_report_min_size_past_any_index_is_a_usage_error(cli, size):
    """Was OverflowError (int(inf) bytes); refused before connecting."""
    result = cli(["indexes", "report", "--min-size-mb", size])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--min-size-mb" in lines[0]
