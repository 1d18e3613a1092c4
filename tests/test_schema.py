"""The schema (sql/migrations 0001-0005): constraints, triggers, partitions, indexes,
privileges and the DDL audit, checked against a real PostgreSQL.

Fixtures from tests/conftest.py: `schema_url` (fresh database, every migration and
function applied), `empty_url` (fresh empty database), `make_database(schema)` (factory).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import sqlparse
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from conftest import REPO

SQL_DIR = REPO / "sql"
MIGRATIONS = sorted((SQL_DIR / "migrations").glob("000[1-5]_*.sql"))


# -- helpers -----------------------------------------------------------------------------


def connect(url: str, **kw) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, **kw)


def statements(path: Path) -> list[str]:
    """A SQL file's statements, split as the migration engine splits them."""
    return [
        s for s in sqlparse.split(path.read_text(encoding="utf-8"))
        if sqlparse.format(s, strip_comments=True).strip()
    ]


def run_file(conn: psycopg.Connection, path: Path) -> None:
    """Run one migration or rollback file in one transaction."""
    with conn.transaction():
        for statement in statements(path):
            conn.execute(statement)


def utc_month(d: dt.datetime, shift: int = 0) -> dt.datetime:
    index = d.year * 12 + (d.month - 1) + shift
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.timezone.utc)


def partitions(conn: psycopg.Connection, parent: str) -> list[tuple[str, str]]:
    """(name, bound expression) of each partition of `parent`."""
    return conn.execute(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = %s::regclass ORDER BY c.relname""",
        (parent,),
    ).fetchall()


@pytest.fixture
def db(schema_url):
    """A connection to a fresh schema holding one row in each table the CHECKs guard."""
    with connect(schema_url) as conn:
        conn.execute(
            """
            INSERT INTO users (email, display_name) VALUES ('a@example.test', 'A');
            INSERT INTO concepts (code, name, category) VALUES
                ('c1', 'One', 'road_rules'), ('c2', 'Two', 'parking'),
                ('c3', 'Three', 'parking'), ('c4', 'Four', 'parking');
            INSERT INTO content (concept_id, question) VALUES (1, 'Q1');
            INSERT INTO knowledge_states (user_id, concept_id) VALUES (1, 1);
            INSERT INTO review_schedule (user_id, content_id) VALUES (1, 1);
            INSERT INTO bandit_arms (content_id, concept_id) VALUES (1, 1);
            INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id)
            VALUES (1, now(), 'question_answered', 1, 1);
            """
        )
        # A fresh database: the identities handed out 1, 1..4 and 1, which the tests use.
        assert conn.execute(
            "SELECT (SELECT array_agg(user_id) FROM users), "
            "(SELECT array_agg(concept_id ORDER BY concept_id) FROM concepts), "
            "(SELECT array_agg(content_id) FROM content)"
        ).fetchone() == ([1], [1, 2, 3, 4], [1])
        yield conn


def set_column(conn: psycopg.Connection, table: str, column: str, value) -> None:
    conn.execute(
        sql.SQL("UPDATE {} SET {} = %s").format(sql.Identifier(table), sql.Identifier(column)),
        (value,),
    )


# -- CHECK constraints: every range refuses bad values and accepts the edges --------------

NAN, INF = float("nan"), float("inf")
PROBABILITY = ([-0.01, 1.01, NAN], [0.0, 0.5, 1.0])
AT_MOST_HALF = ([0.51, -0.01, NAN], [0.0, 0.5])

RANGES = [
    ("knowledge_states", "initial_knowledge", *PROBABILITY),
    ("knowledge_states", "learning_rate", *PROBABILITY),
    ("knowledge_states", "mastery_probability", *PROBABILITY),
    ("knowledge_states", "guess_parameter", *AT_MOST_HALF),
    ("knowledge_states", "slip_parameter", *AT_MOST_HALF),
    ("knowledge_states", "temporal_decay", [0.89, 1.01, NAN], [0.9, 0.95, 1.0]),
    ("knowledge_states", "personal_learning_velocity", [0.0, -1.0, NAN, INF], [0.01, 3.5]),
    ("content", "difficulty", [-3.01, 3.01, NAN], [-3.0, 0.0, 3.0]),
    ("content", "discrimination", [0.49, 2.51, NAN], [0.5, 1.7, 2.5]),
    ("content", "guess_parameter", *AT_MOST_HALF),
    ("content", "average_response_time_ms", [-1.0, NAN, INF], [0.0, 2500.5]),
    ("concepts", "difficulty", [-3.5, 3.5], [-3.0, 3.0]),
    # numeric since 0007 (exact SM-2): values to the hundredth, more decimals refused.
    ("review_schedule", "easiness", [1.29, 0.0, -2.5, NAN, INF, Decimal("2.555")],
     [Decimal("1.3"), Decimal("2.5"), Decimal("4.2")]),
    ("review_schedule", "last_quality", [-1, 6], [0, 3, 5]),
    ("review_schedule", "interval_days", [-1], [0, 365]),
    ("learning_events", "quality", [-1, 6], [0, 5]),
    ("learning_events", "mastery_before", *PROBABILITY),
    ("learning_events", "mastery_after", *PROBABILITY),
    ("learning_events", "response_time_ms", [-1], [0, 12000]),
    ("users", "xp", [-1], [0, 10**12]),
    ("bandit_arms", "reward_sum", [NAN, INF], [-1.5, 0.0, 42.0]),
]


@pytest.mark.parametrize(
    ("table", "column", "bad", "good"), RANGES, ids=[f"{t}.{c}" for t, c, *_ in RANGES]
)
def test_check_refuses_out_of_range(db, table, column, bad, good):
    for value in bad:
        with pytest.raises(errors.CheckViolation) as refused, db.transaction():
            set_column(db, table, column, value)
        assert column in (refused.value.diag.constraint_name or ""), value
    for value in good:
        set_column(db, table, column, value)
        stored = db.execute(
            sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), sql.Identifier(table))
        ).fetchone()[0]
        assert stored == value


def test_category_is_a_closed_set(db):
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE concepts SET category = 'aviation'")
    # content.category is not the caller's to choose: it is always the concept's.
    db.execute("UPDATE content SET category = 'aviation'")
    assert db.execute("SELECT category FROM content").fetchone()[0] == "road_rules"


def test_event_type_is_a_closed_set(db):
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "INSERT INTO learning_events (user_id, occurred_at, event_type) "
            "VALUES (1, now(), 'question_skipped')"
        )
    db.execute(
        "INSERT INTO learning_events (user_id, occurred_at, event_type) "
        "VALUES (1, now(), 'session_started')"
    )


def test_every_jsonb_column_refuses_non_objects(db):
    """Every jsonb column of every table: arrays, scalars and null JSON are refused."""
    columns = db.execute(
        """SELECT c.relname, a.attname
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
             AND NOT c.relispartition AND a.atttypid = 'jsonb'::regtype
             AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY 1, 2"""
    ).fetchall()
    assert set(columns) >= {
        ("users", "cognitive_patterns"), ("users", "learning_preferences"),
        ("users", "achievements"), ("content", "media"), ("content", "metadata"),
        ("learning_events", "response_data"), ("learning_events", "context_data"),
    }
    for table, column in columns:
        for bad in ("[1, 2]", '"text"', "3", "null", "true"):
            with pytest.raises(errors.CheckViolation), db.transaction():
                set_column(db, table, column, psycopg.types.json.Jsonb(json.loads(bad)))
        set_column(db, table, column, psycopg.types.json.Jsonb({"visual": True, "n": [1]}))


def test_content_attempt_counters_are_consistent(db):
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE content SET total_attempts = 3, correct_attempts = 4")
    db.execute("UPDATE content SET total_attempts = 4, correct_attempts = 4")


# -- prerequisite graph and concept hierarchy ---------------------------------------------


def add_edge(conn, concept: int, prerequisite: int) -> None:
    conn.execute(
        "INSERT INTO concept_prerequisites (concept_id, prerequisite_id) VALUES (%s, %s)",
        (concept, prerequisite),
    )


def test_prerequisite_self_edge_refused(db):
    with pytest.raises(errors.CheckViolation):
        add_edge(db, 1, 1)


def test_prerequisite_two_cycle_refused(db):
    add_edge(db, 1, 2)
    with pytest.raises(errors.CheckViolation) as refused:
        add_edge(db, 2, 1)
    assert refused.value.diag.constraint_name == "concept_prerequisites_acyclic"


def test_prerequisite_three_cycle_refused(db):
    add_edge(db, 1, 2)
    add_edge(db, 2, 3)
    with pytest.raises(errors.CheckViolation) as refused:
        add_edge(db, 3, 1)
    assert refused.value.diag.constraint_name == "concept_prerequisites_acyclic"
    assert db.execute("SELECT count(*) FROM concept_prerequisites").fetchone()[0] == 2


def test_prerequisite_diamond_is_not_a_cycle(db):
    # 1 needs 2 and 3, both need 4: two paths to 4, no cycle.
    for concept, prerequisite in [(1, 2), (1, 3), (2, 4), (3, 4), (1, 4)]:
        add_edge(db, concept, prerequisite)
    assert db.execute("SELECT count(*) FROM concept_prerequisites").fetchone()[0] == 5


def test_prerequisite_update_closing_a_cycle_refused(db):
    add_edge(db, 1, 2)
    add_edge(db, 2, 3)
    add_edge(db, 4, 1)
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "UPDATE concept_prerequisites SET concept_id = 3 "
            "WHERE concept_id = 4 AND prerequisite_id = 1"
        )
    # Moving an edge without closing a cycle is fine (the edge's old self is ignored).
    db.execute(
        "UPDATE concept_prerequisites SET prerequisite_id = 3 WHERE concept_id = 1"
    )


def test_concept_hierarchy_loop_refused(db):
    db.execute("UPDATE concepts SET parent_id = 1 WHERE concept_id = 2")
    db.execute("UPDATE concepts SET parent_id = 2 WHERE concept_id = 3")
    with pytest.raises(errors.CheckViolation) as refused:
        db.execute("UPDATE concepts SET parent_id = 3 WHERE concept_id = 1")
    assert refused.value.diag.constraint_name == "concepts_hierarchy_acyclic"
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE concepts SET parent_id = 1 WHERE concept_id = 1")


def test_content_category_follows_its_concept(db):
    def category() -> str:
        return db.execute("SELECT category FROM content WHERE content_id = 2").fetchone()[0]

    db.execute(
        "INSERT INTO content (concept_id, category, question) "
        "VALUES (2, 'road_rules', 'Q2')"
    )
    assert category() == "parking"
    db.execute("UPDATE concepts SET category = 'environment' WHERE concept_id = 2")
    assert category() == "environment"
    db.execute("UPDATE content SET concept_id = 1 WHERE content_id = 2")
    assert category() == "road_rules"


# -- catalog: partitions, materialized views ----------------------------------------------


def test_knowledge_states_is_hash_partitioned_into_eight(db):
    strategy = db.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'knowledge_states'::regclass"
    ).fetchone()[0]
    assert strategy == "h"
    parts = partitions(db, "knowledge_states")
    assert [name for name, _ in parts] == [f"knowledge_states_p{i}" for i in range(8)]
    assert sorted(bound for _, bound in parts) == [
        f"FOR VALUES WITH (modulus 8, remainder {i})" for i in range(8)
    ]
    # Every user lands in exactly one partition, and the 8 all get used.
    db.execute(
        "INSERT INTO users (email, display_name) "
        "SELECT 'k' || g || '@example.test', 'K' FROM generate_series(1, 200) g"
    )
    db.execute("INSERT INTO knowledge_states (user_id, concept_id) SELECT user_id, 2 FROM users")
    used = db.execute(
        "SELECT count(DISTINCT tableoid) FROM knowledge_states WHERE concept_id = 2"
    ).fetchone()[0]
    assert used == 8


def test_learning_events_has_four_months_ahead_and_a_default(db):
    strategy = db.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'learning_events'::regclass"
    ).fetchone()[0]
    assert strategy == "r"
    now = db.execute("SELECT now()").fetchone()[0]
    months = [utc_month(now, i) for i in range(4)]
    expected = {f"learning_events_{m:%Y_%m}" for m in months} | {"learning_events_default"}
    assert {name for name, _ in partitions(db, "learning_events")} == expected
    # Rows go where the names say: first and last instant of each UTC month.
    for m in months:
        next_m = utc_month(m, 1)
        for instant in (m, next_m - dt.timedelta(microseconds=1)):
            where = db.execute(
                "INSERT INTO learning_events (user_id, occurred_at, event_type) "
                "VALUES (1, %s, 'session_started') RETURNING tableoid::regclass::text",
                (instant,),
            ).fetchone()[0]
            assert where == f"learning_events_{m:%Y_%m}"
    far = db.execute(
        "INSERT INTO learning_events (user_id, occurred_at, event_type) "
        "VALUES (1, now() + interval '5 years', 'session_started') "
        "RETURNING tableoid::regclass::text"
    ).fetchone()[0]
    assert far == "learning_events_default"


def test_learning_events_primary_key_leads_with_user_and_carries_partition_key(db):
    columns = db.execute(
        """SELECT array_agg(a.attname ORDER BY k.ord)
           FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = 'learning_events'::regclass AND i.indisprimary"""
    ).fetchone()[0]
    assert columns == ["user_id", "occurred_at", "event_id"]
    # event_id comes from the plain sequence, increasing.
    ids = db.execute(
        "INSERT INTO learning_events (user_id, occurred_at, event_type) "
        "VALUES (1, now(), 'session_started'), (1, now(), 'session_ended') RETURNING event_id"
    ).fetchall()
    assert ids[0][0] < ids[1][0]


def test_materialized_views_have_a_unique_index_and_refresh_concurrently(db):
    views = [r[0] for r in db.execute(
        "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' ORDER BY 1"
    )]
    assert set(views) >= {"content_performance", "daily_concept_mastery", "user_progress"}
    for view in views:
        unique = db.execute(
            """SELECT count(*) FROM pg_index i
               WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indisvalid
                 AND i.indpred IS NULL AND i.indexprs IS NULL""",
            (view,),
        ).fetchone()[0]
        assert unique >= 1, view
    db.execute(
        "UPDATE learning_events SET is_correct = true, mastery_before = 0.2, mastery_after = 0.3"
    )
    for view in views:
        name = sql.Identifier(view)
        db.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(name))
        db.execute(sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(name))
    answers, correct, gain = db.execute(
        "SELECT answers, correct_answers, avg_mastery_gain FROM content_performance "
        "WHERE content_id = 1"
    ).fetchone()
    assert (answers, correct) == (1, 1)
    assert gain == pytest.approx(0.1)
    assert db.execute("SELECT answers FROM user_progress WHERE user_id = 1").fetchone()[0] == 1
    assert db.execute("SELECT sum(answers) FROM daily_concept_mastery").fetchone()[0] == 1


def test_no_index_is_a_prefix_of_another(db):
    """No plain btree whose columns lead another btree on the same table (pghero's rule)."""
    rows = db.execute(
        """SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
                  string_to_array(i.indkey::text, ' ')::int[] AS keys,
                  i.indnkeyatts, i.indisunique, i.indpred IS NOT NULL, am.amname
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition
             AND i.indexprs IS NULL"""
    ).fetchall()
    for table, index, keys, nkeys, unique, partial, am in rows:
        if unique or partial or am != "btree":
            continue
        for other_table, other, other_keys, other_nkeys, _, other_partial, other_am in rows:
            if other == index or other_table != table or other_am != "btree" or other_partial:
                continue
            assert keys[:nkeys] != other_keys[:other_nkeys][:nkeys], (index, other)


# -- privileges ---------------------------------------------------------------------------


@pytest.fixture
def login_role(schema_url):
    """Factory: a LOGIN role (unique name, cluster-wide) in a group; dropped afterwards."""
    made: list[str] = []

    def make(group: str) -> str:
        name = f"dmdb_test_{group}_{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        with connect(schema_url) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(name), sql.Literal(password), sql.Identifier(group)
                )
            )
        made.append(name)
        return make_conninfo(schema_url, user=name, password=password)

    yield make
    with connect(schema_url) as admin:
        for name in made:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def probe_function(db):
    """A function created by the schema owner after the migrations (default privileges)."""
    db.execute("CREATE FUNCTION public.dmdb_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")


def test_readonly_role_reads_but_cannot_write(db, login_role, probe_function):
    with connect(login_role("dm_readonly")) as ro:
        assert ro.execute("SELECT count(*) FROM users").fetchone()[0] == 1
        assert ro.execute("SELECT count(*) FROM learning_events").fetchone()[0] == 1
        assert ro.execute("SELECT count(*) FROM knowledge_states").fetchone()[0] == 1
        ro.execute("SELECT * FROM user_progress")
        ro.execute("SELECT last_value FROM learning_events_event_id_seq")
        for statement in (
            "INSERT INTO users (email, display_name) VALUES ('ro@example.test', 'RO')",
            "UPDATE knowledge_states SET mastery_probability = 0.9",
            "DELETE FROM learning_events",
            "SELECT nextval('learning_events_event_id_seq')",
            "CREATE TABLE public.ro_table (id int)",
            "TRUNCATE schema_audit",
            "SELECT dmdb_probe()",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                ro.execute(statement)


def test_app_role_cannot_change_the_rules(db, login_role):
    """dm_app answers questions; the rules they are scored by are the owner's (0013)."""
    with connect(login_role("dm_app")) as app:
        assert app.execute("SELECT scheduler FROM algorithm_settings").fetchone()[0] in (
            "sm2", "fsrs")
        app.execute("SELECT count(*) FROM bkt_concept_parameters").fetchone()
        for statement in (
            "UPDATE algorithm_settings SET answer_max_future_skew = '100 years'",
            "DELETE FROM algorithm_settings",
            "INSERT INTO bkt_concept_parameters (concept_id) VALUES (1)",
            "DELETE FROM bkt_concept_parameters",
            "SELECT set_scheduler('fsrs')",
            "CALL repoint_schedules()",
            "CALL fsrs_backfill()",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(statement)
            app.rollback()
    assert db.execute("SELECT set_scheduler('sm2')").fetchone()[0] >= 0  # the owner may


def test_app_role_runs_dml_and_functions_but_no_ddl(db, login_role, probe_function):
    with connect(login_role("dm_app")) as app:
        user_id = app.execute(
            "INSERT INTO users (email, display_name) VALUES ('app@example.test', 'App') "
            "RETURNING user_id"
        ).fetchone()[0]
        app.execute(
            "INSERT INTO learning_events (user_id, occurred_at, event_type) "
            "VALUES (%s, now(), 'session_started')",
            (user_id,),
        )
        app.execute("INSERT INTO knowledge_states (user_id, concept_id) VALUES (%s, 1)", (user_id,))
        app.execute("UPDATE knowledge_states SET mastery_probability = 0.9 WHERE user_id = %s",
                    (user_id,))
        app.execute("DELETE FROM learning_sessions")
        assert app.execute("SELECT dmdb_probe()").fetchone()[0] == 1
        for statement in (
            "CREATE TABLE public.app_table (id int)",
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN nickname text",
            "CREATE INDEX ON users (display_name)",
            "TRUNCATE learning_events",
            "DROP MATERIALIZED VIEW user_progress",
            "REFRESH MATERIALIZED VIEW user_progress",
            "INSERT INTO schema_audit (command_tag) VALUES ('FORGED')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(statement)


def test_public_gets_no_create_on_schema_and_no_execute(db):
    assert not db.execute(
        "SELECT has_schema_privilege('dm_app', 'public', 'CREATE') "
        "OR has_schema_privilege('dm_readonly', 'public', 'CREATE')"
    ).fetchone()[0]
    db.execute("CREATE FUNCTION public.dmdb_probe2() RETURNS int LANGUAGE sql AS 'SELECT 2'")
    acl = db.execute(
        "SELECT array_agg(coalesce(grantee::regrole::text, 'PUBLIC')) "
        "FROM pg_proc p, aclexplode(p.proacl) a WHERE p.oid = 'dmdb_probe2'::regproc "
        "AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner"
    ).fetchone()[0]
    assert acl == ["dm_app"]


# -- DDL audit ----------------------------------------------------------------------------


def test_ddl_audit_records_create_alter_drop(db):
    if not db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        pytest.skip("the audit's event triggers exist only when a superuser migrated")
    me = db.execute("SELECT session_user").fetchone()[0]
    db.execute("CREATE TABLE public.audit_probe (id int)")
    db.execute("ALTER TABLE public.audit_probe ADD COLUMN note text")
    db.execute("CREATE TEMP TABLE audit_ignored (id int)")
    db.execute("DROP TABLE public.audit_probe")
    rows = db.execute(
        "SELECT command_tag, object_type, role_name, schema_name, occurred_at "
        "FROM schema_audit WHERE object_identity = 'public.audit_probe' ORDER BY audit_id"
    ).fetchall()
    assert [r[0] for r in rows] == ["CREATE TABLE", "ALTER TABLE", "DROP TABLE"]
    assert {r[1] for r in rows} == {"table"}
    assert {r[2] for r in rows} == {me}
    assert {r[3] for r in rows} == {"public"}
    assert all(r[4] is not None for r in rows)
    assert not db.execute(
        "SELECT count(*) FROM schema_audit WHERE object_identity LIKE '%audit_ignored%'"
    ).fetchone()[0]
    # Objects outside any schema are recorded too.
    db.execute("CREATE SCHEMA audit_probe_schema")
    assert db.execute(
        "SELECT command_tag, object_type FROM schema_audit "
        "WHERE object_identity = 'audit_probe_schema'"
    ).fetchall() == [("CREATE SCHEMA", "schema")]


# -- rollbacks are exact inverses ---------------------------------------------------------


def pg_dump_path() -> str:
    try:
        from dmdb.server.embedded import pg_tool

        return str(pg_tool("pg_dump"))
    except Exception:  # noqa: BLE001 - fall back to PATH
        found = shutil.which("pg_dump")
        if not found:
            pytest.skip("pg_dump not found")
        return found


def dump_schema(url: str) -> list[str]:
    done = subprocess.run(
        [pg_dump_path(), "--schema-only", "--no-comments", "--dbname", url],
        capture_output=True, text=True, check=True,
    )
    return [
        line for line in done.stdout.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]


def assert_each_rollback_is_exact(url: str) -> None:
    with connect(url) as conn:
        conn.execute("SET client_min_messages = warning")
        for migration in MIGRATIONS:
            rollback = SQL_DIR / "rollbacks" / migration.name
            before = dump_schema(url)
            run_file(conn, migration)
            applied = dump_schema(url)
            assert applied != before, f"{migration.name} changed nothing"
            run_file(conn, rollback)
            assert dump_schema(url) == before, f"{rollback.name} is not the exact inverse"
            run_file(conn, migration)
            assert dump_schema(url) == applied, f"{migration.name} differs when re-applied"


def test_each_rollback_is_the_exact_inverse(empty_url):
    assert [m.name[:4] for m in MIGRATIONS] == ["0001", "0002", "0003", "0004", "0005"]
    assert_each_rollback_is_exact(empty_url)


def test_rollback_of_0001_keeps_what_was_there_before(empty_url):
    """pg_stat_statements and a CREATE grant that pre-existed survive the rollback."""
    with connect(empty_url) as conn:
        if not conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()[0]:
            pytest.skip("pg_stat_statements not available on this server")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        before = dump_schema(empty_url)
        run_file(conn, MIGRATIONS[0])
        assert not conn.execute(
            "SELECT has_schema_privilege('dm_app', 'public', 'CREATE')"
        ).fetchone()[0]
        run_file(conn, SQL_DIR / "rollbacks" / MIGRATIONS[0].name)
        assert dump_schema(empty_url) == before
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()[0] == 1
        assert conn.execute(
            "SELECT has_schema_privilege('dm_app', 'public', 'CREATE')"
        ).fetchone()[0]
        # The group roles stay: cluster-wide, possibly used by other databases.
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('dm_app', 'dm_readonly')"
        ).fetchone()[0] == 2


def test_rollback_of_0001_drops_the_extension_it_created(empty_url):
    with connect(empty_url) as conn:
        available = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()[0]
        superuser = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
        installed = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        run_file(conn, MIGRATIONS[0])
        assert conn.execute(installed).fetchone()[0] == int(bool(available and superuser))
        run_file(conn, SQL_DIR / "rollbacks" / MIGRATIONS[0].name)
        assert conn.execute(installed).fetchone()[0] == 0


# -- query patterns on ~1M events, 10k users: pruning and index scans ---------------------

LOAD = """
SELECT setseed(0.42);
INSERT INTO concepts (code, name, category, difficulty)
SELECT 'c' || g, 'Concept ' || g,
       (ARRAY['traffic_signs', 'road_rules', 'right_of_way', 'hazard_perception',
              'vehicle_handling', 'safety_emergencies', 'parking', 'environment'])[1 + g % 8],
       ((g % 13) - 6) / 2.0
FROM generate_series(1, 80) g;
INSERT INTO content (concept_id, question, difficulty, discrimination, is_active,
                     total_attempts, metadata)
SELECT 1 + g % 80, 'Q' || g, round((random() * 6 - 3)::numeric, 3)::float8,
       0.5 + random() * 2, g % 10 <> 0, (random() * 1000)::int,
       jsonb_build_object('tags', jsonb_build_array('t' || g % 20))
FROM generate_series(1, 20000) g;
INSERT INTO users (email, display_name, cognitive_patterns)
SELECT 'u' || g || '@example.test', 'User ' || g,
       jsonb_build_object('style', (ARRAY['visual', 'verbal', 'kinesthetic'])[1 + g % 3])
FROM generate_series(1, 10000) g;
INSERT INTO knowledge_states (user_id, concept_id, mastery_probability, last_interaction,
                              attempts)
SELECT u, c, random(), now() - random() * interval '365 days', 1
FROM generate_series(1, 10000) u, generate_series(1, 20) c;
INSERT INTO review_schedule (user_id, content_id, next_review_at, last_quality)
SELECT u, 1 + (u * 37 + c) % 20000, now() + (random() * 60 - 30) * interval '1 day', 4
FROM generate_series(1, 10000) u, generate_series(1, 20) c;
"""

# The migration made the current month and three ahead; history needs the 11 before.
PAST_PARTITIONS = """
DO $do$
DECLARE
    v_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
BEGIN
    FOR i IN 1..11 LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF learning_events FOR VALUES FROM (%L) TO (%L)',
            'learning_events_' || to_char(v_month - make_interval(months => i), 'YYYY_MM'),
            (v_month - make_interval(months => i)) AT TIME ZONE 'UTC',
            (v_month - make_interval(months => i - 1)) AT TIME ZONE 'UTC');
    END LOOP;
END
$do$
"""

# 1M answers over the 12 months up to now, 100 per user; inserted in primary-key order.
EVENTS = """
INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id,
                             is_correct, response_time_ms, quality, mastery_before,
                             mastery_after, context_data)
SELECT 1 + g % 10000, s.t0 + (now() - s.t0) * random(), 'question_answered',
       1 + g % 80, 1 + g % 20000, g % 3 <> 0, 1000 + g % 9000, g % 6, 0.4, 0.5,
       CASE WHEN g % 4 = 0 THEN '{"device": "ios"}'::jsonb ELSE '{}' END
FROM generate_series(1, 1000000) g,
     (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '11 months')
             AT TIME ZONE 'UTC' AS t0) s
ORDER BY 1, 2
"""


@pytest.fixture(scope="module")
def big_schema_url(make_database):
    url = make_database(schema=True)
    with connect(url) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute(LOAD)
        conn.execute(PAST_PARTITIONS)
        conn.execute(EVENTS)
        conn.execute("ANALYZE")
    return url


def plan_nodes(conn, query: str, params=None) -> list[dict]:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0]
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def row_estimates(conn) -> dict[str, float]:
    return dict(conn.execute(
        "SELECT relname, reltuples FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    ).fetchall())


def parent_index(conn, index: str) -> str:
    """The partitioned index a partition's index is attached to (or itself)."""
    return conn.execute(
        "SELECT coalesce((SELECT inhparent::regclass::text FROM pg_inherits "
        "WHERE inhrelid = %s::regclass), %s)",
        (index, index),
    ).fetchone()[0]


def assert_no_seq_scan_of_a_large_table(conn, nodes) -> None:
    sizes = row_estimates(conn)
    for node in nodes:
        if node["Node Type"] == "Seq Scan":
            assert sizes.get(node["Relation Name"], 0) < 1000, node["Relation Name"]


INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


def test_big_data_loaded(big_schema_url):
    with connect(big_schema_url) as conn:
        events, users = conn.execute(
            "SELECT (SELECT count(*) FROM learning_events), (SELECT count(*) FROM users)"
        ).fetchone()
        assert events == 1_000_000 and users == 10_000
        assert conn.execute(
            "SELECT count(*) FROM learning_events_default"
        ).fetchone()[0] == 0
        months = conn.execute(
            "SELECT count(DISTINCT tableoid) FROM learning_events"
        ).fetchone()[0]
        assert months == 12


def test_knowledge_states_query_prunes_to_one_partition(big_schema_url):
    with connect(big_schema_url) as conn:
        user_id = 4242
        home = conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM knowledge_states WHERE user_id = %s",
            (user_id,),
        ).fetchall()
        assert len(home) == 1
        nodes = plan_nodes(
            conn,
            "SELECT * FROM knowledge_states WHERE user_id = %s AND mastery_probability > 0.8 "
            "ORDER BY last_interaction DESC",
            (user_id,),
        )
        scanned = {n["Relation Name"] for n in nodes if "Relation Name" in n}
        assert scanned == {home[0][0]}
        used = {parent_index(conn, n["Index Name"]) for n in nodes if n["Node Type"] in INDEX_SCANS}
        # The user's key range of the primary key (0008 dropped the index on
        # mastery_probability so that the per-answer update is HOT).
        assert used == {"knowledge_states_pkey"}
        assert_no_seq_scan_of_a_large_table(conn, nodes)


def test_due_reviews_query_scans_the_users_primary_key_range(big_schema_url):
    with connect(big_schema_url) as conn:
        nodes = plan_nodes(
            conn,
            "SELECT content_id, next_review_at FROM review_schedule "
            "WHERE user_id = %s AND next_review_at <= now() "
            "ORDER BY next_review_at, content_id LIMIT 10",
            (4242,),
        )
        used = {n["Index Name"] for n in nodes if n["Node Type"] in INDEX_SCANS}
        # No index on next_review_at (0008: the per-answer update stays HOT): the
        # user's rows come from the primary key, then a top-N sort.
        assert used == {"review_schedule_pkey"}
        assert_no_seq_scan_of_a_large_table(conn, nodes)


def test_content_query_uses_the_partial_active_index(big_schema_url):
    with connect(big_schema_url) as conn:
        nodes = plan_nodes(
            conn,
            "SELECT * FROM content WHERE category = %s AND difficulty BETWEEN %s AND %s "
            "AND is_active = true ORDER BY total_attempts ASC",
            ("road_rules", -0.5, 0.5),
        )
        used = {n["Index Name"] for n in nodes if n["Node Type"] in INDEX_SCANS}
        assert used == {"content_active_category_difficulty_idx"}
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]


def test_learning_events_query_prunes_months_and_scans_the_primary_key(big_schema_url):
    with connect(big_schema_url) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        since = (now - dt.timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
        nodes = plan_nodes(
            conn,
            "SELECT * FROM learning_events WHERE user_id = %s AND occurred_at >= %s "
            "ORDER BY occurred_at DESC",
            (4242, since),
        )
        scanned = {n["Relation Name"] for n in nodes if "Relation Name" in n}
        everything = {name for name, _ in partitions(conn, "learning_events")}
        wanted = {
            name for name in everything
            if name == "learning_events_default"
            or name[len("learning_events_"):] >= f"{since:%Y_%m}"
        }
        assert scanned == wanted
        # 11 past months; 45 days back is in this month, the last or the one before
        assert len(everything - wanted) >= 9  # most of the year was pruned
        sizes = row_estimates(conn)
        for node in nodes:
            if sizes.get(node.get("Relation Name"), 0) >= 1000:
                assert node["Node Type"] in INDEX_SCANS, node["Relation Name"]
                assert parent_index(conn, node["Index Name"]) == "learning_events_pkey"
        assert_no_seq_scan_of_a_large_table(conn, nodes)


def test_email_uniqueness_lives_in_user_emails(db):
    """0017: users' e-mails unique through user_emails (shardable), kept by triggers in the
    same transaction; a duplicate is refused as before, with the same constraint name."""
    uid = db.execute("INSERT INTO users (email, display_name) VALUES ('e@x.test', 'E') "
                     "RETURNING user_id").fetchone()[0]
    db.commit()
    assert db.execute("SELECT user_id FROM user_emails WHERE email = 'e@x.test'"
                      ).fetchone()[0] == uid
    with pytest.raises(errors.UniqueViolation) as caught:
        db.execute("INSERT INTO users (email, display_name) VALUES ('e@x.test', 'F')")
    assert caught.value.diag.constraint_name == "users_email_key"
    db.rollback()
    db.execute("UPDATE users SET email = 'e2@x.test' WHERE user_id = %s", (uid,))
    db.execute("INSERT INTO users (email, display_name) VALUES ('e@x.test', 'F')")
    assert dict(db.execute("SELECT email, user_id FROM user_emails WHERE email LIKE 'e%'"
                           ).fetchall())["e2@x.test"] == uid
    db.execute("DELETE FROM users WHERE user_id = %s", (uid,))
    assert db.execute("SELECT count(*) FROM user_emails WHERE user_id = %s",
                      (uid,)).fetchone()[0] == 0
    db.execute("TRUNCATE users CASCADE")
    assert db.execute("SELECT count(*) FROM user_emails").fetchone()[0] == 0
    db.rollback()
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == \
        db.execute("SELECT count(*) FROM user_emails").fetchone()[0]
