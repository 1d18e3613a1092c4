"""A month whose rows fill the DEFAULT partition takes DEFAULT as its partition
(`dmdb.partitions.swap_step`): a CHECK validated without blocking, then one short
transaction of catalog changes. Readers and writers never wait long, readers never
miss a row, late rows of other months are refused only while the CHECK is on, and the
schema stays as the migrations make it (`dmdb drift`, `dmdb indexes check`)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql

from conftest import run_dmdb, run_sql
from dmdb import partitions
from dmdb.partitions import DEFAULT_CHECK_NAME, add_months, month_bounds, partition_name

UTC = timezone.utc
ROWS = 20_000  # above SWAP_MIN_ROWS: the CLI's defaults swap


def this_month(url: str):
    return run_sql(url, "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")[0][0]


def fill_default(url: str, month, rows: int = ROWS) -> int:
    """`rows` events of `month` in DEFAULT, 10 of the current month in its partition;
    the user's id."""
    lo = month_bounds(month)[0]
    with psycopg.connect(url, autocommit=True) as conn:
        uid = conn.execute("INSERT INTO users (email, display_name) VALUES "
                           "('swap@example.com', 'Swap') RETURNING user_id").fetchone()[0]
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "SELECT %s, %s + g * interval '1 second', 'question_answered' "
                     "FROM generate_series(1, %s) g", (uid, lo, rows))
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "SELECT %s, now(), 'session_started' FROM generate_series(1, 10)", (uid,))
        conn.execute("ANALYZE learning_events")
    return uid


def default_oid(url: str) -> int:
    return run_sql(url, "SELECT partdefid::bigint FROM pg_partitioned_table "
                        "WHERE partrelid = 'learning_events'::regclass")[0][0]


def shape(url: str, table: str) -> tuple:
    """What a partition looks like: index names (its own name replaced by T), constraint
    names, privileges."""
    indexes = sorted(r[0].replace(table, "T") for r in run_sql(
        url, "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
        (table,)))
    constraints = sorted(r[0].replace(table, "T") for r in run_sql(
        url, "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", (table,)))
    acl = run_sql(url, "SELECT relacl::text FROM pg_class WHERE oid = %s::regclass", (table,))
    return indexes, constraints, acl


def test_default_holding_one_month_becomes_its_partition(cli, schema_url):
    month = add_months(this_month(schema_url), 6)
    name = partition_name("learning_events", month)
    fill_default(schema_url, month)
    old = default_oid(schema_url)
    before = shape(schema_url, "learning_events_default")
    total = run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0]

    dry = cli(["partitions", "create", "--from", month.strftime("%Y-%m"), "--ahead", "0",
               "--dry-run"], url=schema_url)
    assert dry.exit_code == 0, dry.stderr
    assert "3 transaction(s)" in dry.stdout and "it becomes the month's partition" in dry.stdout
    assert f"VALIDATE CONSTRAINT \"{DEFAULT_CHECK_NAME}\"" in dry.stdout
    data = json.loads(cli(["partitions", "create", "--from", month.strftime("%Y-%m"),
                           "--ahead", "0", "--dry-run", "--json"], url=schema_url).stdout)
    step = data["steps"][0]
    assert step["swap"] is True and step["blocks_readers"] is False
    assert len(step["transactions"]) == 3

    result = cli(["partitions", "create", "--from", month.strftime("%Y-%m"), "--ahead", "0",
                  "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    created = json.loads(result.stdout)["created"]
    assert created == [{"name": name, "from": month_bounds(month)[0].isoformat(),
                        "to": month_bounds(month)[1].isoformat(), "moved_rows": ROWS,
                        "swapped": True}]
    # No row was copied: the month's partition is the table that was DEFAULT.
    assert run_sql(schema_url, "SELECT %s::regclass::oid::bigint", (name,))[0][0] == old
    assert default_oid(schema_url) != old
    assert run_sql(schema_url, f"SELECT count(*) FROM {name}")[0][0] == ROWS
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default")[0][0] == 0
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0] == total
    # The new DEFAULT is the migration's (same indexes, constraints, privileges); the
    # month's partition has the month's names, and no helper CHECK is left anywhere.
    assert shape(schema_url, "learning_events_default") == before
    indexes, constraints, _ = shape(schema_url, name)
    assert indexes == before[0] and constraints == before[1]
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   (DEFAULT_CHECK_NAME,)) == [(0,)]
    text = cli(["partitions", "list"], url=schema_url)
    assert name in text.stdout
    assert cli(["indexes", "check"], url=schema_url).exit_code == 0
    drift = cli(["drift"], url=schema_url)
    assert drift.exit_code == 0, drift.stdout + drift.stderr
    # Rows keep going where they belong.
    with psycopg.connect(schema_url, autocommit=True) as conn:
        uid = conn.execute("SELECT min(user_id) FROM users").fetchone()[0]
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) VALUES "
                     "(%s, %s, 'session_started'), (%s, '2045-01-01', 'session_started')",
                     (uid, month_bounds(month)[0], uid))
    assert run_sql(schema_url, f"SELECT count(*) FROM {name}")[0][0] == ROWS + 1
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default")[0][0] == 1


def stretch_validation(url: str, seconds: float) -> None:
    """The CHECK's VALIDATE ends with a pause (an event trigger at ddl_command_end, still
    under VALIDATE's SHARE UPDATE EXCLUSIVE lock): the window between the CHECK and the
    swap lasts `seconds`, whatever the row count. Event triggers need a superuser:
    skipped without one."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone()[0]:
            pytest.skip("an event trigger holds the window open: needs a superuser")
        conn.execute(sql.SQL(
            "CREATE FUNCTION dmdb_test_pause() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF current_query() LIKE '%VALIDATE CONSTRAINT%' THEN "
            "PERFORM pg_sleep({}); END IF; END $$").format(sql.Literal(seconds)))
        conn.execute("CREATE EVENT TRIGGER dmdb_test_pause ON ddl_command_end "
                     "WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION dmdb_test_pause()")


def slow_default_deletes(url: str, seconds: float) -> None:
    """Every DELETE on DEFAULT ends with a pause (the old move's DELETE ... RETURNING)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE FUNCTION dmdb_test_slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep({}); RETURN NULL; END $$").format(sql.Literal(seconds)))
        conn.execute("CREATE TRIGGER dmdb_test_slow AFTER DELETE ON learning_events_default "
                     "FOR EACH STATEMENT EXECUTE FUNCTION dmdb_test_slow()")


class Traffic:
    """Readers counting the table (unprepared statements, as psql and clients behind
    PgBouncer send them) and writers adding rows of the month being created and of the
    current month, every session with lock_timeout 1s: a wait longer than that is an
    error here. A reader's count is short when it is below the rows committed before
    its statement began."""

    def __init__(self, url: str, month, uid: int, readers: int = 2):
        self.url, self.uid = url, uid
        self.times = [month_bounds(month)[0] + timedelta(days=1), None]
        self.base = run_sql(url, "SELECT count(*) FROM learning_events")[0][0]
        self.committed = 0
        self.counts: list[tuple[int, int]] = []
        self.writes = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.reader) for _ in range(readers)]
        self.threads += [threading.Thread(target=self.writer, args=(t,)) for t in self.times]

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute("SET lock_timeout = '1s'")
        return conn

    def reader(self) -> None:
        with self.connect() as conn:
            while not self.stop.is_set():
                floor = self.base + self.committed
                try:
                    n = conn.execute("SELECT count(*) FROM learning_events",
                                     prepare=False).fetchone()[0]
                except psycopg.Error as exc:
                    self.errors.append(f"reader: {exc.sqlstate} {exc}")
                    continue
                self.counts.append((floor, n))

    def writer(self, when) -> None:
        with self.connect() as conn:
            while not self.stop.is_set():
                try:
                    conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                                 "VALUES (%s, coalesce(%s, now()), 'session_started')",
                                 (self.uid, when))
                except psycopg.Error as exc:
                    self.errors.append(f"writer: {exc.sqlstate} {exc}")
                    continue
                with self.lock:
                    self.committed += 1
                self.writes += 1
                time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        while len(self.counts) < 5:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        seen = len(self.counts)
        while len(self.counts) < seen + 5 and not self.errors:
            time.sleep(0.01)
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    @property
    def short(self) -> list[tuple[int, int]]:
        return [(floor, n) for floor, n in self.counts if n < floor]


def test_readers_and_writers_never_wait_long_nor_miss_rows_while_default_swaps(schema_url):
    """The window between the CHECK and the swap held open 3 s: readers and writers go
    on (lock_timeout 1s, none reached), no count is short, and a late row of another
    month is refused in the window (23514, the CHECK's name) and accepted after it."""
    month = add_months(this_month(schema_url), 6)
    uid = fill_default(schema_url, month)
    stretch_validation(schema_url, 3)
    late = datetime(2045, 1, 1, tzinfo=UTC)
    refused: list[str] = []

    def late_answer() -> None:
        time.sleep(1.0)  # within the window
        try:
            run_sql(schema_url, "INSERT INTO learning_events (user_id, occurred_at, event_type) "
                                "VALUES (%s, %s, 'session_started')", (uid, late))
        except psycopg.errors.CheckViolation as exc:
            refused.append(exc.diag.constraint_name)

    with Traffic(schema_url, month, uid) as traffic:
        side = threading.Thread(target=late_answer)
        side.start()
        with psycopg.connect(schema_url, autocommit=True) as conn:
            started = time.monotonic()
            result = partitions.run(conn, partitions.PlanRequest(
                action="create", start=month, ahead=0, lock_timeout="1s"))
            seconds = time.monotonic() - started
        side.join()
    assert result.errors == [] and result.created[0]["swapped"] is True, result
    assert seconds >= 3  # the window was open that long
    assert traffic.errors == [], traffic.errors[:3]
    assert traffic.short == [], traffic.short[:3]
    assert len(traffic.counts) > 10 and traffic.writes > 10
    assert refused == [DEFAULT_CHECK_NAME]
    name = partition_name("learning_events", month)
    writes_of_month = run_sql(schema_url, f"SELECT count(*) FROM {name}")[0][0] - ROWS
    assert writes_of_month > 0
    run_sql(schema_url, "INSERT INTO learning_events (user_id, occurred_at, event_type) "
                        "VALUES (%s, %s, 'session_started')", (uid, late))
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default") == [(1,)]
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events")[0][0] == \
        traffic.base + traffic.committed + 1


def test_the_old_move_makes_readers_wait_past_their_lock_timeout(schema_url):
    """The same traffic against the move under ACCESS EXCLUSIVE (swap turned off, its
    DELETE held 2 s): readers and writers hit their 1 s lock_timeout. What the test
    above measures can fail."""
    month = add_months(this_month(schema_url), 6)
    uid = fill_default(schema_url, month)
    slow_default_deletes(schema_url, 2)
    with Traffic(schema_url, month, uid) as traffic:
        with psycopg.connect(schema_url, autocommit=True) as conn:
            result = partitions.run(conn, partitions.PlanRequest(
                action="create", start=month, ahead=0, swap_min_rows=10**12))
    assert result.errors == [] and result.created[0]["swapped"] is False
    assert result.created[0]["moved_rows"] >= ROWS  # and the writers' rows of the month
    assert any("55P03" in e for e in traffic.errors), traffic.errors[:3]
    assert traffic.short == []


def test_several_months_in_default_the_largest_swaps_last(cli, schema_url):
    m0 = this_month(schema_url)
    big, small = add_months(m0, 6), add_months(m0, 8)
    fill_default(schema_url, big)
    run_sql(schema_url, "INSERT INTO learning_events (user_id, occurred_at, event_type) "
                        "SELECT min(user_id), %s, 'session_started' FROM users",
            (month_bounds(small)[0],))
    plan = json.loads(cli(["partitions", "create", "--fill", "--dry-run", "--json"],
                          url=schema_url).stdout)
    creates = [(s["partition"], s["swap"]) for s in plan["steps"] if s["action"] == "create"]
    assert creates[-1] == (partition_name("learning_events", big), True)
    assert (partition_name("learning_events", small), False) in creates
    result = cli(["partitions", "create", "--fill", "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    created = {c["name"]: (c["moved_rows"], c["swapped"])
               for c in json.loads(result.stdout)["created"]}
    assert created[partition_name("learning_events", big)] == (ROWS, True)
    assert created[partition_name("learning_events", small)] == (1, False)
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default") == [(0,)]
    assert cli(["drift"], url=schema_url).exit_code == 0


def test_a_row_of_another_month_arriving_after_planning_falls_back_to_the_move(schema_url):
    month = add_months(this_month(schema_url), 6)
    uid = fill_default(schema_url, month)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        plan = partitions.make_plan(conn, partitions.PlanRequest(
            action="create", start=month, ahead=0))
        assert plan.steps[0].swap
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, '2045-01-01', 'session_started')", (uid,))
        result = partitions.execute(conn, plan)
    assert result.errors == []
    assert result.created[0]["swapped"] is False and result.created[0]["moved_rows"] == ROWS
    assert result.exit_code == 3  # the 2045 row waits in DEFAULT, which stayed DEFAULT
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default") == [(1,)]
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   (DEFAULT_CHECK_NAME,)) == [(0,)]


def test_a_check_left_by_a_killed_run_is_dropped_by_the_next(schema_url):
    run_sql(schema_url, sql.SQL(
        "ALTER TABLE learning_events_default ADD CONSTRAINT {} CHECK "
        "(occurred_at >= '2031-01-01' AND occurred_at < '2031-02-01') NOT VALID").format(
            sql.Identifier(DEFAULT_CHECK_NAME)).as_string(None))
    proc = run_dmdb(["partitions", "create", "--ahead", "0"], env={"DATABASE_URL": schema_url})
    assert proc.returncode == 0, proc.stderr
    assert DEFAULT_CHECK_NAME in proc.stderr
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   (DEFAULT_CHECK_NAME,)) == [(0,)]


@pytest.mark.parametrize("rows,swap", [(ROWS, True), (100, False)])
def test_few_rows_are_moved_many_swap(cli, schema_url, rows, swap):
    month = add_months(this_month(schema_url), 6)
    fill_default(schema_url, month, rows)
    data = json.loads(cli(["partitions", "create", "--from", month.strftime("%Y-%m"),
                           "--ahead", "0", "--json"], url=schema_url).stdout)
    assert data["created"][0]["swapped"] is swap and data["created"][0]["moved_rows"] == rows


def test_a_run_killed_during_validation_leaves_data_whole_and_the_next_completes(schema_url):
    """SIGKILL while VALIDATE runs: the server stops it (die_with_client), DEFAULT keeps
    every row and stays DEFAULT; the NOT VALID CHECK, committed before, stays until the
    next run, which drops it and swaps."""
    import os
    import signal

    from conftest import popen_dmdb

    env = {"DATABASE_URL": schema_url}
    month = add_months(this_month(schema_url), 6)
    fill_default(schema_url, month)
    stretch_validation(schema_url, 120)
    proc = popen_dmdb(["partitions", "create", "--from", month.strftime("%Y-%m"),
                       "--ahead", "0"], env)
    deadline = time.monotonic() + 60
    pid = None
    while pid is None and time.monotonic() < deadline:
        rows = run_sql(schema_url, "SELECT pid FROM pg_stat_activity WHERE query LIKE "
                       "'ALTER TABLE%VALIDATE CONSTRAINT%' AND wait_event = 'PgSleep'")
        pid = rows[0][0] if rows else None
        time.sleep(0.05)
    assert pid is not None, "the validation never ran"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while run_sql(schema_url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)):
        assert time.monotonic() < deadline, "the killed run's VALIDATE goes on"
        time.sleep(0.1)
    assert run_sql(schema_url, "SELECT count(*) FROM learning_events_default") == [(ROWS,)]
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   (DEFAULT_CHECK_NAME,)) == [(1,)]
    run_sql(schema_url, "DROP EVENT TRIGGER dmdb_test_pause")
    rerun = run_dmdb(["partitions", "create", "--from", month.strftime("%Y-%m"), "--ahead", "0",
                      "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["created"][0]["swapped"] is True
    assert run_sql(schema_url, "SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   (DEFAULT_CHECK_NAME,)) == [(0,)]


# -- the decision, without a database ------------------------------------------------


def _table(**kw):
    from dmdb.partitions import TableInfo

    base = dict(schema="public", name="learning_events", key="occurred_at",
                columns=("event_id", "occurred_at"), default="learning_events_default",
                default_schema="public",
                default_indexes=("learning_events_default_pkey", "my_own_idx"),
                default_grants=(("dm_app", "INSERT", False), ("PUBLIC", "SELECT", True)))
    base.update(kw)
    return TableInfo(**base)


def _plan(default_months, *, table=None, ahead=0, start=None, min_rows=10_000, retain=None,
          fill=True):
    from datetime import date

    from dmdb.partitions import plan_pure
    from dmdb.partitions.plan import DefaultMonth
    from dmdb.partitions.runner import plan_steps

    today = date(2026, 12, 7)
    months = [DefaultMonth(f"{m:%Y-%m}" if m else "infinity", n, m)
              for m, n in default_months]
    pure = plan_pure("learning_events", [], today, ahead, start=start, retain=retain,
                     fill_from=months if fill else None, default_months=months)
    counts = {m: n for m, n in default_months if m}
    return plan_steps(pure, table or _table(), lock_timeout="2s",
                      retention="drop" if retain is not None else None, archive_schema=None,
                      default_counts=counts, default_months=months, swap_min_rows=min_rows)


def test_the_largest_month_swaps_last_only_when_all_of_default_leaves():
    from datetime import date

    big, small = date(2026, 12, 1), date(2027, 2, 1)
    steps = _plan([(big, 50_000), (small, 3)])
    assert [(s.partition, s.swap) for s in steps] == [
        ("learning_events_2027_02", False), ("learning_events_2026_12", True)]
    swap = steps[-1]
    assert [len(t) for t in swap.transactions] == [3, 2, len(swap.statements)]
    # ACCESS EXCLUSIVE requests queue at most 1 s (the plan's lock_timeout is 2s);
    # VALIDATE's lock stops nobody and may wait the whole lock_timeout.
    assert [t[0] for t in swap.transactions] == [
        "SET LOCAL lock_timeout = '1s'", "SET LOCAL lock_timeout = '2s'",
        "SET LOCAL lock_timeout = '1s'"]
    text = "\n".join(swap.sql)
    assert 'ALTER INDEX "public"."learning_events_default_pkey" RENAME TO ' \
           '"learning_events_2026_12_pkey"' in text
    assert "my_own_idx" not in text  # a name that is not the DEFAULT's own is kept
    assert 'GRANT INSERT ON TABLE "public"."learning_events_default" TO "dm_app"' in text
    assert "GRANT SELECT ON TABLE \"public\".\"learning_events_default\" TO PUBLIC " \
           "WITH GRANT OPTION" in text
    assert swap.fallback is not None and swap.fallback.move_index is not None
    assert swap.to_dict()["blocks_readers"] is False
    # Something that stays in DEFAULT (a value no month names), too few rows, another
    # schema: no swap.
    assert not any(s.swap for s in _plan([(big, 50_000), (None, 1)]))
    assert not any(s.swap for s in _plan([(big, 9_999)]))
    assert not any(s.swap for s in _plan([(big, 50_000)],
                                         table=_table(default_schema="other")))
    # Without --fill a month of DEFAULT that this run does not create stays: no swap.
    assert [(s.partition, s.swap) for s in _plan([(big, 50_000), (small, 3)], fill=False)] \
        == [("learning_events_2026_12", False)]
    assert [s.swap for s in _plan([(big, 50_000)], fill=False)] == [True]
