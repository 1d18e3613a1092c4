"""`dmdb partitions` against a real PostgreSQL: list, create (idempotent, across year
boundaries, moving DEFAULT rows), rollover under concurrent inserts and concurrent
runs, retention to an archive schema and by dropping, lock timeouts, exit codes."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql

from conftest import popen_dmdb, run_dmdb, run_sql, without_target
from dmdb.partitions import (
    PARTITION_LOCK_KEY,
    add_months,
    month_bounds,
    partition_name,
    read_dependencies,
)

UTC = timezone.utc


def attached(url: str) -> dict[str, str]:
    """learning_events' partitions: name -> bound text (UTC)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'learning_events'::regclass").fetchall()
    return dict(rows)


def this_month(url: str) -> date:
    return run_sql(url, "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")[0][0]


def name(month: date) -> str:
    return partition_name("learning_events", month)


def add_user(conn: psycopg.Connection, email: str = "learner@example.com") -> int:
    return conn.execute("INSERT INTO users (email, display_name) VALUES (%s, 'Learner') "
                        "RETURNING user_id", (email,)).fetchone()[0]


def insert_events(url: str, times: list[datetime]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        uid = add_user(conn, f"bulk{time.monotonic_ns()}@example.com")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO learning_events (user_id, occurred_at, event_type) "
                "VALUES (%s, %s, 'session_started')", [(uid, t) for t in times])


def in_partition(url: str, table: str) -> int:
    return run_sql(url, f'SELECT count(*) FROM "{table}"')[0][0]


def run_json(cli, args, url):
    result = cli(["partitions", *args, "--json"], url=url)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


# -- list -----------------------------------------------------------------------


def test_list_every_partitioned_table_with_default_rows_flagged(cli, schema_url):
    insert_events(schema_url, [datetime(2045, 5, 1, tzinfo=UTC)] * 2)
    result, data = run_json(cli, ["list"], schema_url)
    assert result.exit_code == 0, result.stderr
    tables = {t["table"]: t for t in data["tables"]}
    ks = tables["public.knowledge_states"]
    assert ks["strategy"] == "hash" and len(ks["partitions"]) == 8
    assert ks["partitions"][0]["bound"] == "FOR VALUES WITH (modulus 8, remainder 0)"
    le = tables["public.learning_events"]
    assert le["strategy"] == "range" and le["key"] == "RANGE (occurred_at)"
    m0 = this_month(schema_url)
    first = le["partitions"][0]
    assert first["name"] == name(m0)
    assert first["range_from"] == f"{m0.isoformat()} 00:00:00+00"
    assert {"rows_estimate", "size_bytes", "is_default", "bound"} <= set(first)
    default = [p for p in le["partitions"] if p["is_default"]]
    assert [p["name"] for p in default] == ["learning_events_default"]
    assert default[0]["default_rows"] == 2
    assert le["default_rows"] == 2 and data["default_rows"] == 2

    text = cli(["partitions", "list"], url=schema_url)
    assert text.exit_code == 0
    assert "knowledge_states_p7" in text.stdout and name(m0) in text.stdout
    assert "2 row(s) in DEFAULT" in text.stdout


# -- create ---------------------------------------------------------------------


def test_dry_run_changes_nothing_then_create_is_idempotent(cli, schema_url):
    m0 = this_month(schema_url)
    before = attached(schema_url)
    assert set(before) == {name(add_months(m0, i)) for i in range(4)} | {"learning_events_default"}

    dry = cli(["partitions", "create", "--ahead", "6", "--dry-run"], url=schema_url)
    assert dry.exit_code == 0, dry.stderr
    assert f'CREATE TABLE "public"."{name(add_months(m0, 6))}"' in dry.stdout
    assert "ATTACH PARTITION" in dry.stdout
    # DEFAULT is empty: no rows to move, so the parent is not locked against readers.
    assert "WITH moved AS" not in dry.stdout
    assert '"learning_events" IN SHARE ROW EXCLUSIVE MODE' in dry.stdout
    assert attached(schema_url) == before
    assert run_sql(schema_url, "SELECT to_regclass(%s)", (name(add_months(m0, 4)),)) == [(None,)]

    result, data = run_json(cli, ["create", "--ahead", "6"], schema_url)
    assert result.exit_code == 0, result.stderr
    assert [c["name"] for c in data["created"]] == [name(add_months(m0, i)) for i in (4, 5, 6)]
    assert data["existing"] == [name(add_months(m0, i)) for i in range(4)]
    assert data["errors"] == [] and data["default_rows"] == 0 and data["exit_code"] == 0
    assert len(attached(schema_url)) == len(before) + 3

    again, data = run_json(cli, ["create", "--ahead", "6"], schema_url)
    assert again.exit_code == 0
    assert data["created"] == [] and data["steps"] == []
    text = cli(["partitions", "create", "--ahead", "6"], url=schema_url)
    assert text.exit_code == 0 and "Nothing to do" in text.stdout
    quiet = cli(["partitions", "create", "--ahead", "6", "--quiet"], url=schema_url)
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_create_across_year_and_leap_february(cli, schema_url):
    result = cli(["partitions", "create", "--from", "2030-11", "--ahead", "3"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    parts = attached(schema_url)
    assert parts["learning_events_2030_12"] == \
        "FOR VALUES FROM ('2030-12-01 00:00:00+00') TO ('2031-01-01 00:00:00+00')"
    assert parts["learning_events_2031_01"] == \
        "FOR VALUES FROM ('2031-01-01 00:00:00+00') TO ('2031-02-01 00:00:00+00')"
    assert {"learning_events_2030_11", "learning_events_2031_02"} <= set(parts)
    assert cli(["partitions", "create", "--from", "2032-02", "--ahead", "0"],
               url=schema_url).exit_code == 0
    insert_events(schema_url, [
        datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2031, 1, 1, tzinfo=UTC),
        datetime(2032, 2, 29, 23, 59, tzinfo=UTC),
    ])
    where = dict(run_sql(schema_url, "SELECT occurred_at AT TIME ZONE 'UTC', tableoid::regclass::text "
                               "FROM learning_events"))
    assert where[datetime(2030, 12, 31, 23, 59, 59, 999999)] == "learning_events_2030_12"
    assert where[datetime(2031, 1, 1)] == "learning_events_2031_01"
    assert where[datetime(2032, 2, 29, 23, 59)] == "learning_events_2032_02"
    # Every index of a created partition is attached to the parent's index.
    unattached = run_sql(schema_url, """
        SELECT i.indexrelid::regclass::text FROM pg_index i
        WHERE i.indrelid = 'learning_events_2031_01'::regclass
          AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)""")
    assert unattached == []
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                         "'learning_events_2031_01'::regclass AND conname = "
                         "'dmdb_partition_bounds'") == [(0,)]


def test_rows_in_default_move_into_the_new_partition(cli, schema_url):
    m0 = this_month(schema_url)
    m5_lo, m5_hi = month_bounds(add_months(m0, 5))
    future = [m5_lo, m5_lo + timedelta(days=3), m5_hi - timedelta(microseconds=1)]
    stray = datetime(2045, 1, 1, tzinfo=UTC)  # no partition will cover it
    insert_events(schema_url, future + [stray])
    total = run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0]
    assert in_partition(schema_url, "learning_events_default") == 4

    plan, data = run_json(cli, ["create", "--ahead", "5", "--dry-run"], schema_url)
    assert plan.exit_code == 0
    assert [(s["partition"], s["default_rows"]) for s in data["steps"]] == [
        (name(add_months(m0, 4)), 0), (name(add_months(m0, 5)), 3)]

    result, data = run_json(cli, ["create", "--ahead", "5"], schema_url)
    assert result.exit_code == 3, result.stderr  # the 2045 row is still in DEFAULT
    assert "1 row(s) sit in the DEFAULT partition" in result.stderr
    moved = {c["name"]: c["moved_rows"] for c in data["created"]}
    assert moved == {name(add_months(m0, 4)): 0, name(add_months(m0, 5)): 3}
    assert data["moved_rows"] == 3 and data["default_rows"] == 1
    assert in_partition(schema_url, name(add_months(m0, 5))) == 3
    assert in_partition(schema_url, "learning_events_default") == 1
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0] == total

    run_sql(schema_url, "DELETE FROM learning_events WHERE occurred_at = %s", (stray,))
    assert cli(["partitions", "create", "--ahead", "5"], url=schema_url).exit_code == 0


# -- readers while rows leave DEFAULT ----------------------------------------------


def slow_default_deletes(conn: psycopg.Connection, seconds: float) -> None:
    """Every DELETE on DEFAULT ends with a pause, after the rows left it and before the
    creating transaction commits: statements arrive while the month is in flux."""
    conn.execute(sql.SQL(
        "CREATE FUNCTION dmdb_test_pause() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep({}); RETURN NULL; END $$").format(sql.Literal(seconds)))
    conn.execute("CREATE TRIGGER dmdb_test_pause AFTER DELETE ON learning_events_default "
                 "FOR EACH STATEMENT EXECUTE FUNCTION dmdb_test_pause()")


def test_readers_never_miss_rows_moving_out_of_default(schema_url):
    """Statements that begin before, during and after a create that moves 2,000 rows out
    of DEFAULT all count every committed row. Readers send unprepared statements (as
    psql and clients behind PgBouncer do): a prepared statement is re-planned once its
    locks are granted, an unprepared one kept the partition list it was planned with."""
    month = add_months(this_month(schema_url), 6)
    lo = month_bounds(month)[0]
    with psycopg.connect(schema_url, autocommit=True) as conn:
        uid = add_user(conn)
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "SELECT %s, %s + g * interval '1 minute', 'session_started' "
                     "FROM generate_series(1, 2000) g", (uid, lo))
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, now(), 'session_started')", (uid,))
        slow_default_deletes(conn, 1.5)
        total = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
    assert in_partition(schema_url, "learning_events_default") == 2000

    stop = threading.Event()
    counts: list[int] = []
    waited = threading.Event()

    def reader() -> None:
        with psycopg.connect(schema_url, autocommit=True) as conn:
            while not stop.is_set():
                counts.append(conn.execute("SELECT count(*) FROM learning_events",
                                           prepare=False).fetchone()[0])

    def watcher() -> None:  # proof that statements began while the rows moved
        with psycopg.connect(schema_url, autocommit=True) as conn:
            while not stop.is_set():
                if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                                "= 'Lock' AND query LIKE 'SELECT count(*) FROM learning%%'"
                                ).fetchone()[0]:
                    waited.set()
                time.sleep(0.01)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=watcher))
    for t in threads:
        t.start()
    try:
        while len(counts) < 30:  # before
            time.sleep(0.01)
        proc = run_dmdb(["partitions", "create", "--from", month.strftime("%Y-%m"),
                         "--ahead", "0", "--json"], env={"DATABASE_URL": schema_url})
        after = len(counts)
        while len(counts) < after + 30:  # after
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["created"][0]["moved_rows"] == 2000
    assert waited.is_set()
    short = [n for n in counts if n < total]
    assert short == [], f"{len(short)} of {len(counts)} counts missed rows: {sorted(set(short))}"
    assert in_partition(schema_url, name(month)) == 2000


def test_readers_of_other_months_wait_only_while_rows_move(schema_url):
    """DEFAULT empty for the month (the common case): the parent is locked SHARE ROW
    EXCLUSIVE, which a reader of this month (its partitions pruned at planning) passes.
    Rows to move: ACCESS EXCLUSIVE on the parent, which every reader waits for."""
    m0 = this_month(schema_url)
    lo, hi = month_bounds(m0)
    empty, busy = add_months(m0, 6), add_months(m0, 7)
    insert_events(schema_url, [month_bounds(busy)[0]])
    args = ["--ahead", "0", "--lock-timeout", "300ms", "--attempts", "1"]
    env = {"DATABASE_URL": schema_url}
    with psycopg.connect(schema_url) as reader:  # a transaction that read this month
        reader.execute("SELECT count(*) FROM learning_events WHERE occurred_at >= %s "
                       "AND occurred_at < %s", (lo, hi), prepare=False)
        light = run_dmdb(["partitions", "create", "--from", empty.strftime("%Y-%m"), *args], env)
        assert light.returncode == 3, light.stderr  # done; the busy month waits in DEFAULT
        heavy = run_dmdb(["partitions", "create", "--from", busy.strftime("%Y-%m"), *args], env)
        assert heavy.returncode == 1 and "lock timeout" in heavy.stderr
        reader.rollback()
    assert name(empty) in attached(schema_url) and name(busy) not in attached(schema_url)
    assert run_dmdb(["partitions", "create", "--from", busy.strftime("%Y-%m"), *args],
                    env).returncode == 0
    assert in_partition(schema_url, name(busy)) == 1


# -- the same catalog reading for list, monitor and seed -------------------------


def test_list_and_monitor_show_defaults_months_and_every_month_ahead(cli, schema_url):
    from dmdb.monitor.checks_database import check_partitions
    from dmdb.monitor.core import Thresholds

    m0 = this_month(schema_url)
    assert cli(["partitions", "create", "--ahead", "6"], url=schema_url).exit_code == 0
    far = datetime(2099, 3, 4, tzinfo=UTC)
    late = month_bounds(add_months(m0, 9))[0]
    insert_events(schema_url, [late, late + timedelta(days=1), far])
    _, data = run_json(cli, ["list"], schema_url)
    le = next(t for t in data["tables"] if t["name"] == "learning_events")
    expected = [{"month": late.strftime("%Y-%m"), "rows": 2}, {"month": "2099-03", "rows": 1}]
    assert le["default_months"] == expected and le["default_rows"] == 3
    ks = next(t for t in data["tables"] if t["name"] == "knowledge_states")
    assert ks["default_months"] is None and ks["default_rows"] == 0  # HASH: no DEFAULT
    text = cli(["partitions", "list"], url=schema_url).stdout
    assert "by month" in text and "2099-03" in text

    with psycopg.connect(schema_url, autocommit=True) as conn:
        check = check_partitions(conn, Thresholds(partition_months_ahead=2))
    assert check.metrics["months_ahead"] == {"public.learning_events": 6}  # not capped at 4
    assert check.metrics["default_partition_rows"] == {"public.learning_events_default": 3}
    assert check.metrics["default_months"] == {"public.learning_events_default": expected}
    default_row = next(r for r in check.rows if r["kind"] == "default partition")
    assert default_row["months"] == expected and "2 of " + expected[0]["month"] in \
        default_row["detail"]
    ahead_row = next(r for r in check.rows if r["kind"] == "months ahead")
    assert [m["partition"] for m in ahead_row["months"]] == \
        [name(add_months(m0, i)) for i in range(7)] + [None]


# -- rollover -------------------------------------------------------------------


def test_rollover_while_two_connections_insert_across_the_month_boundary(schema_url):
    m0 = this_month(schema_url)
    m3_hi = month_bounds(add_months(m0, 3))[1]  # = start of month 4, today in DEFAULT
    m4_lo, m4_hi = month_bounds(add_months(m0, 4))
    m5_lo, m5_hi = month_bounds(add_months(m0, 5))
    us = timedelta(microseconds=1)
    # Both sides of each boundary: month 3 (exists) | month 4 | month 5 (in DEFAULT now).
    stamps = [m3_hi - us, m4_lo, m4_lo + timedelta(days=10), m4_hi - us, m5_lo,
              m5_hi - us, datetime.now(UTC)]
    insert_events(schema_url, stamps[1:6] * 4)  # 20 rows sitting in DEFAULT
    assert in_partition(schema_url, "learning_events_default") == 20

    done = threading.Event()
    counts = [0, 0]
    failures: list[str] = []
    max_inserts, after_done = 20000, 100

    def inserter(slot: int) -> None:
        with psycopg.connect(schema_url, autocommit=True) as conn:
            uid = add_user(conn, f"ins{slot}@example.com")
            extra = 0
            for i in range(max_inserts):
                if done.is_set():
                    extra += 1
                    if extra > after_done:
                        break
                try:
                    conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                                 "VALUES (%s, %s, 'question_answered')",
                                 (uid, stamps[(i + slot) % len(stamps)]))
                    counts[slot] += 1
                except psycopg.Error as exc:
                    failures.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=inserter, args=(s,)) for s in (0, 1)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while min(counts) < 20 and time.monotonic() < deadline and not failures:
        time.sleep(0.01)
    started_with = sum(counts)
    try:
        proc = run_dmdb(["partitions", "rollover", "--ahead", "5", "--json"],
                        env={"DATABASE_URL": schema_url})
    finally:
        done.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [c["name"] for c in data["created"]] == [name(add_months(m0, 4)),
                                                    name(add_months(m0, 5))]
    assert data["moved_rows"] >= 20 and data["default_rows"] == 0
    assert sum(counts) > started_with  # inserts went on while the rollover ran
    total = run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0]
    assert total == 20 + sum(counts)
    assert in_partition(schema_url, "learning_events_default") == 0
    misplaced = run_sql(schema_url, """
        SELECT count(*) FROM learning_events
        WHERE tableoid::regclass::text <> 'learning_events_' ||
              to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY_MM')""")
    assert misplaced == [(0,)]


def test_rollover_exits_0_when_another_run_holds_the_lock(cli, schema_url):
    m0 = this_month(schema_url)
    with psycopg.connect(schema_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (PARTITION_LOCK_KEY,))
        result = cli(["partitions", "rollover", "--ahead", "6"], url=schema_url)
        assert result.exit_code == 0, result.stderr
        assert "another run" in result.stdout
        result, data = run_json(cli, ["rollover", "--ahead", "6"], schema_url)
        assert result.exit_code == 0 and data["skipped"] is True and data["created"] == []
        assert name(add_months(m0, 6)) not in attached(schema_url)
        quiet = cli(["partitions", "rollover", "--ahead", "6", "--quiet"], url=schema_url)
        assert quiet.exit_code == 0 and quiet.stdout == ""
    result = cli(["partitions", "rollover", "--ahead", "6"], url=schema_url)
    assert result.exit_code == 0 and name(add_months(m0, 6)) in attached(schema_url)


def test_two_rollovers_started_at_the_same_moment(schema_url):
    """Both start together while a writer's open transaction holds learning_events, so
    whichever takes the advisory lock first is still working when the other arrives."""
    m0 = this_month(schema_url)
    env = {"DATABASE_URL": schema_url}
    args = ["partitions", "rollover", "--ahead", "6", "--json", "--lock-timeout", "1s",
            "--attempts", "8"]
    with psycopg.connect(schema_url) as writer:
        uid = add_user(writer)
        writer.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                       "VALUES (%s, now(), 'session_started')", (uid,))
        procs = [popen_dmdb(args, env) for _ in range(2)]
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.rollback()  # the one still running can now take its locks
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    skipped = [r for r in results if r["skipped"]]
    worker = [r for r in results if not r["skipped"]]
    assert len(skipped) == 1 and len(worker) == 1
    assert "another run" in skipped[0]["message"] and skipped[0]["created"] == []
    assert [c["name"] for c in worker[0]["created"]] == [name(add_months(m0, i))
                                                         for i in (4, 5, 6)]
    assert worker[0]["errors"] == [] and worker[0]["exit_code"] == 0


# -- retention ------------------------------------------------------------------


def test_retention_to_an_archive_schema(cli, schema_url):
    m0 = this_month(schema_url)
    past = [add_months(m0, -i) for i in range(6, 0, -1)]
    assert cli(["partitions", "create", "--from", past[0].strftime("%Y-%m"), "--ahead", "5"],
               url=schema_url).exit_code == 0
    insert_events(schema_url, [month_bounds(m)[0] + timedelta(hours=1) for m in past])

    usage = cli(["partitions", "rollover", "--retain", "2"], url=schema_url)
    assert usage.exit_code == 2 and "--archive-schema" in usage.stderr

    dry, data = run_json(cli, ["rollover", "--retain", "2", "--archive-schema", "dm_archive",
                               "--dry-run"], schema_url)
    assert dry.exit_code == 0
    assert [s["partition"] for s in data["steps"]] == [name(m) for m in past[:4]]
    assert run_sql(schema_url, "SELECT to_regnamespace('dm_archive')") == [(None,)]

    result, data = run_json(cli, ["rollover", "--retain", "2", "--archive-schema", "dm_archive"],
                            schema_url)
    assert result.exit_code == 0, result.stderr
    assert [a["name"] for a in data["archived"]] == [name(m) for m in past[:4]]
    parts = attached(schema_url)
    assert not {name(m) for m in past[:4]} & set(parts)
    assert {name(past[4]), name(past[5]), name(m0)} <= set(parts)
    for m in past[:4]:
        assert run_sql(schema_url, f'SELECT count(*) FROM dm_archive."{name(m)}"') == [(1,)]
    again, data = run_json(cli, ["rollover", "--retain", "2", "--archive-schema", "dm_archive"],
                           schema_url)
    assert again.exit_code == 0 and data["archived"] == [] and data["steps"] == []


def test_retention_with_drop_never_touches_the_current_month(cli, schema_url):
    m0 = this_month(schema_url)
    first = add_months(m0, -3)
    assert cli(["partitions", "create", "--from", first.strftime("%Y-%m"), "--ahead", "3"],
               url=schema_url).exit_code == 0
    insert_events(schema_url, [datetime.now(UTC)])
    result, data = run_json(cli, ["rollover", "--retain", "0", "--drop"], schema_url)
    assert result.exit_code == 0, result.stderr
    assert [d["name"] for d in data["dropped"]] == [name(add_months(m0, -i)) for i in (3, 2, 1)]
    assert run_sql(schema_url, "SELECT to_regclass(%s)", (name(add_months(m0, -1)),)) == [(None,)]
    assert name(m0) in attached(schema_url)
    # Even planned from a date three months on, the database clock's month stays.
    later = add_months(m0, 3).replace(day=15).isoformat()
    result, data = run_json(cli, ["rollover", "--retain", "0", "--drop", "--today", later],
                            schema_url)
    assert result.exit_code == 0, result.stderr
    assert data["dropped"] == []
    assert name(m0) in attached(schema_url) and in_partition(schema_url, name(m0)) == 1
    assert "learning_events_default" in attached(schema_url)


def test_archived_partitions_do_not_hold_the_live_schema(cli, schema_url):
    """Archived tables lose what ties them to the live schema (the foreign key to users,
    the default on the parent's sequence), earlier archives are cut loose by the next
    run, and the migrations can then be rolled back past 0004 (its sequence) and 0002 (users)."""
    m0 = this_month(schema_url)
    past = [add_months(m0, -i) for i in (4, 3, 2)]
    assert cli(["partitions", "create", "--from", past[0].strftime("%Y-%m"), "--ahead", "2"],
               url=schema_url).exit_code == 0
    insert_events(schema_url, [month_bounds(m)[0] + timedelta(hours=1) for m in past])
    # How an archive looked before: detached and moved, nothing cut.
    run_sql(schema_url, f'ALTER TABLE learning_events DETACH PARTITION "{name(past[0])}"')
    run_sql(schema_url, "CREATE SCHEMA dm_archive")
    run_sql(schema_url, f'ALTER TABLE "{name(past[0])}" SET SCHEMA dm_archive')
    # Something archiving cannot cut: an index using a function of the live schema.
    run_sql(schema_url, "CREATE FUNCTION dm_kind(text) RETURNS text LANGUAGE sql IMMUTABLE "
                        "AS 'SELECT lower($1)'")
    run_sql(schema_url, f'CREATE INDEX odd_idx ON "{name(past[1])}" (dm_kind(event_type))')

    result, data = run_json(cli, ["rollover", "--retain", "1", "--archive-schema",
                                  "dm_archive"], schema_url)
    assert result.exit_code == 0, result.stderr
    assert [a["name"] for a in data["archived"]] == [name(past[1]), name(past[2])]
    assert [u["name"] for u in data["unlinked"]] == [name(past[0])]
    assert any("learning_events_user_id_fkey" in u for u in data["archived"][0]["unlinked"])
    assert any("learning_events_event_id_seq" in u for u in data["archived"][0]["unlinked"])
    leftover = [w for w in data["warnings"] if "still depends on the live schema" in w]
    assert len(leftover) == 1 and "odd_idx" in leftover[0] and "dm_kind" in leftover[0]
    assert "odd_idx" in result.stderr
    run_sql(schema_url, 'DROP INDEX dm_archive."odd_idx"')
    with psycopg.connect(schema_url, autocommit=True) as conn:
        for m in past:
            assert read_dependencies(conn, f'dm_archive."{name(m)}"') == []
    for m in past:
        assert run_sql(schema_url, f'SELECT count(*) FROM dm_archive."{name(m)}"') == [(1,)]
    again, data = run_json(cli, ["rollover", "--retain", "1", "--archive-schema",
                                 "dm_archive"], schema_url)
    assert again.exit_code == 0 and data["steps"] == []

    down = cli(["rollback", "--to", "0001_extensions_and_roles"], url=schema_url)
    assert down.exit_code == 0, down.stderr
    assert run_sql(schema_url, "SELECT to_regclass('users'), to_regclass('learning_events')") \
        == [(None, None)]
    for m in past:  # the archive keeps its rows
        assert run_sql(schema_url, f'SELECT count(*) FROM dm_archive."{name(m)}"') == [(1,)]
    assert cli(["up"], url=schema_url).exit_code == 0


def test_late_answers_for_an_archived_month_never_break_rollover(cli, schema_url):
    """A late answer for an archived month lands in DEFAULT: every rollover cycle moves it
    into the archived table and exits 0 — also after `create --fill` (the old exit-3 hint)
    created the month in the live schema again, which made every later rollover fail
    with "already exists in schema"."""
    m0 = this_month(schema_url)
    past = [add_months(m0, -i) for i in (4, 3, 2, 1)]
    assert cli(["partitions", "create", "--from", past[0].strftime("%Y-%m"), "--ahead", "4"],
               url=schema_url).exit_code == 0
    insert_events(schema_url, [month_bounds(m)[0] + timedelta(hours=1) for m in past])
    rollover = ["rollover", "--retain", "2", "--archive-schema", "dm_archive"]
    result, data = run_json(cli, rollover, schema_url)
    assert result.exit_code == 0, result.stderr
    archived = past[1]  # archived with past[0]; its late answers follow below
    assert [a["name"] for a in data["archived"]] == [name(past[0]), name(archived)]
    never = add_months(m0, -7)  # never a partition, past retention too

    def archive_rows(month: date) -> int:
        return run_sql(schema_url, f'SELECT count(*) FROM dm_archive."{name(month)}"')[0][0]

    late = month_bounds(archived)[0] + timedelta(days=3)
    insert_events(schema_url, [late, month_bounds(never)[0] + timedelta(days=1)])
    dry, data = run_json(cli, [*rollover, "--dry-run"], schema_url)
    assert [(s["action"], s["partition"], s["default_rows"]) for s in data["steps"]] == [
        ("late", name(never), 1), ("late", name(archived), 1)]
    result, data = run_json(cli, rollover, schema_url)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert [(x["month"], x["rows"], x["action"], x["schema"]) for x in data["late"]] == [
        (never.strftime("%Y-%m"), 1, "archived", "dm_archive"),
        (archived.strftime("%Y-%m"), 1, "archived", "dm_archive")]
    assert data["default_rows"] == 0 and data["warnings"] == []
    assert archive_rows(archived) == 2 and archive_rows(never) == 1
    with psycopg.connect(schema_url, autocommit=True) as conn:  # stands alone, as archives do
        assert read_dependencies(conn, f'dm_archive."{name(never)}"') == []

    for cycle in range(3):
        insert_events(schema_url, [late + timedelta(minutes=cycle)])
        if cycle == 0:  # what the old hint said: the month is created in public again
            fill = cli(["partitions", "create", "--fill"], url=schema_url)
            assert fill.exit_code == 0, fill.stderr
            assert name(archived) in attached(schema_url)
        args = [*rollover, "--fill"] if cycle == 2 else rollover
        result, data = run_json(cli, args, schema_url)
        assert result.exit_code == 0, (cycle, result.stdout, result.stderr)
        assert data["errors"] == [] and data["default_rows"] == 0
        if cycle == 0:
            assert [(a["name"], a["merged_rows"]) for a in data["archived"]] == [
                (name(archived), 1)]
            assert data["late"] == []
        else:
            assert data["archived"] == [] and [x["rows"] for x in data["late"]] == [1]
        assert name(archived) not in attached(schema_url)
        assert archive_rows(archived) == 3 + cycle
    again = cli(["partitions", *rollover], url=schema_url)
    assert again.exit_code == 0 and "Nothing to do" in again.stdout


def test_late_answers_for_a_dropped_month_are_dropped_too(cli, schema_url):
    m0 = this_month(schema_url)
    old = add_months(m0, -3)
    assert cli(["partitions", "create", "--from", old.strftime("%Y-%m"), "--ahead", "3"],
               url=schema_url).exit_code == 0
    rollover = ["rollover", "--retain", "1", "--drop"]
    result, data = run_json(cli, rollover, schema_url)
    assert result.exit_code == 0 and name(old) in [d["name"] for d in data["dropped"]]
    insert_events(schema_url, [month_bounds(old)[0] + timedelta(days=2)] * 2)
    result = cli(["partitions", *rollover], url=schema_url)
    assert result.exit_code == 0, result.stderr
    assert f"Deleted 2 late row(s) of {old:%Y-%m}" in result.stdout
    assert in_partition(schema_url, "learning_events_default") == 0
    assert run_sql(schema_url, "SELECT to_regclass(%s)", (name(old),)) == [(None,)]


def test_fill_creates_every_month_waiting_in_default(cli, schema_url):
    m0 = this_month(schema_url)
    back, ahead = add_months(m0, -3), add_months(m0, 8)
    far = datetime(m0.year + 40, 1, 1, tzinfo=UTC)
    insert_events(schema_url, [month_bounds(back)[0], month_bounds(back)[0] + timedelta(days=2),
                               month_bounds(ahead)[1] - timedelta(microseconds=1), far])
    plain, data = run_json(cli, ["create", "--ahead", "3"], schema_url)
    assert plain.exit_code == 3 and data["created"] == []
    assert "--fill" in plain.stderr and back.strftime("%Y-%m") in plain.stderr

    dry, data = run_json(cli, ["create", "--ahead", "3", "--fill", "--dry-run"], schema_url)
    assert dry.exit_code == 0
    assert [(s["partition"], s["default_rows"]) for s in data["steps"]] == [
        (name(back), 2), (name(ahead), 1)]
    assert all(s["blocks_readers"] for s in data["steps"])

    result, data = run_json(cli, ["create", "--ahead", "3", "--fill"], schema_url)
    assert result.exit_code == 3, result.stderr  # the far row stays, named
    assert {c["name"]: c["moved_rows"] for c in data["created"]} == {name(back): 2,
                                                                    name(ahead): 1}
    assert data["stranded"] == [{"month": far.strftime("%Y-%m"), "rows": 1,
                                 "reason": data["stranded"][0]["reason"]}]
    assert "more than 120 months after" in data["stranded"][0]["reason"]
    assert far.strftime("%Y-%m") in result.stderr
    assert data["default_months"] == [{"month": far.strftime("%Y-%m"), "rows": 1}]
    assert in_partition(schema_url, name(back)) == 2
    run_sql(schema_url, "DELETE FROM learning_events_default")
    assert cli(["partitions", "create", "--ahead", "3", "--fill"], url=schema_url).exit_code == 0


# -- locks, failures, usage -----------------------------------------------------


def test_lock_timeout_is_retried_then_fails_without_half_applying(cli, schema_url):
    m0 = this_month(schema_url)
    target = name(add_months(m0, 4))
    with psycopg.connect(schema_url) as writer:  # an open transaction that inserted a row
        uid = add_user(writer)
        writer.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                       "VALUES (%s, now(), 'session_started')", (uid,))
        result, data = run_json(cli, ["create", "--ahead", "4", "--lock-timeout", "100ms",
                                      "--attempts", "2"], schema_url)
        assert result.exit_code == 1
        assert data["errors"][0]["step"] == f"create {target}"
        assert "lock" in data["errors"][0]["error"] and data["retries"] == 1
        assert f"create {target} failed" in result.stderr
        assert run_sql(schema_url, "SELECT to_regclass(%s)", (target,)) == [(None,)]

        writer_pid = writer.info.backend_pid

        def release() -> None:  # once a lock request of the run has timed out at least once
            with psycopg.connect(schema_url, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    waits = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY("
                        "pg_blocking_pids(pid))", (writer_pid,)).fetchone()[0]
                    if waits:
                        time.sleep(0.5)  # longer than --lock-timeout: one attempt fails
                        break
                    time.sleep(0.01)
            writer.rollback()

        releaser = threading.Thread(target=release)
        releaser.start()
        result, data = run_json(cli, ["create", "--ahead", "4", "--lock-timeout", "200ms",
                                      "--attempts", "10"], schema_url)
        releaser.join()
    assert result.exit_code == 0, result.stderr
    assert [c["name"] for c in data["created"]] == [target] and data["retries"] >= 1


@pytest.mark.parametrize("args", [
    ["rollover", "--retain", "3"],
    ["rollover", "--retain", "3", "--archive-schema", "a", "--drop"],
    ["rollover", "--drop"],
    ["rollover", "--retain", "3", "--archive-schema", "public"],  # the live schema
    ["rollover", "--retain", "3", "--archive-schema", "public", "--table",
     "public.learning_events"],
    ["rollover", "--retain", "3", "--archive-schema", "pg_archive"],
    ["cron", "--retain", "3", "--archive-schema", "public"],
    ["create", "--from", "2026-13"],
    ["create", "--ahead", "-1"],
    ["create", "--lock-timeout", "soon"],
    ["create", "--lock-timeout", "0"],  # 0 = no limit: a waiting DDL stalls the table
    ["rollover", "--lock-timeout", "0ms"],
    ["create", "--table", "knowledge_states"],
    ["create", "--table", "no_such_table"],
    ["cron", "--schedule", "every hour"],
])
def test_usage_errors_exit_2(cli, schema_url, args):
    result = cli(["partitions", *args], url=schema_url)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    stderr = without_target(result.stderr)
    assert stderr.startswith("dmdb: error: ") and len(stderr.splitlines()) == 1


def test_cron_renders_crontab_and_systemd_units(cli, tmp_path):
    args = ["partitions", "cron", "--schedule", "5 * * * *", "--ahead", "4", "--retain", "12",
            "--drop", "--dmdb-path", "/usr/local/bin/dmdb", "--workdir", str(tmp_path)]
    result = cli(args)
    assert result.exit_code == 0, result.stderr
    assert (f"5 * * * * cd {tmp_path} && /usr/local/bin/dmdb partitions rollover --ahead 4 "
            "--retain 12 --drop --quiet") in result.stdout
    assert "ExecStart=/usr/local/bin/dmdb partitions rollover" in result.stdout
    assert "OnCalendar=*-*-* *:05:00" in result.stdout
    crontab = cli([*args, "--format", "crontab"])
    assert "[Timer]" not in crontab.stdout and "5 * * * * cd" in crontab.stdout
    data = json.loads(cli([*args, "--json"]).stdout)
    assert set(data) >= {"command", "schedule", "on_calendar", "crontab", "service", "timer"}
    assert data["command"][0] == "/usr/local/bin/dmdb"
