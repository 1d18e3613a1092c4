"""The partition plan as pure functions: no database. Month and year boundaries, leap
February, retention cut-offs, conflicts, the SQL each step runs, cron rendering."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from psycopg import sql

from dmdb.errors import ConfigError
from dmdb.partitions import (
    EXIT_DEFAULT_ROWS,
    Existing,
    RunResult,
    TableInfo,
    add_months,
    archive_step,
    create_step,
    drop_step,
    month_bounds,
    month_of,
    months_ahead,
    parse_month,
    partition_name,
    plan_create,
    plan_pure,
    plan_retention,
    retention_cutoff,
    validate_options,
)
from dmdb.partitions.catalog import Dependency
from dmdb.partitions.cron import cron_to_oncalendar, render_cron
from dmdb.partitions.plan import DefaultMonth, Stranded, coverage, plan_fill, plan_late
from dmdb.partitions.retention import unlink_statements, unlink_step

UTC = timezone.utc


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def monthly(parent: str, first: date, count: int) -> list[Existing]:
    out = []
    for i in range(count):
        m = add_months(first, i)
        lo, hi = month_bounds(m)
        out.append(Existing(partition_name(parent, m), lo, hi))
    return out


DEFAULT = Existing("learning_events_default", None, None, is_default=True)
TABLE = TableInfo(schema="public", name="learning_events", key="occurred_at",
                  columns=("event_id", "user_id", "occurred_at"),
                  default="learning_events_default", fk_targets=(("public", "users"),))


# -- months ---------------------------------------------------------------------


@pytest.mark.parametrize("start, n, expected", [
    (date(2025, 12, 1), 1, date(2026, 1, 1)),
    (date(2025, 11, 1), 3, date(2026, 2, 1)),
    (date(2026, 1, 1), -1, date(2025, 12, 1)),
    (date(2026, 1, 1), -13, date(2024, 12, 1)),
    (date(2026, 5, 1), 0, date(2026, 5, 1)),
    (date(2026, 5, 1), 24, date(2028, 5, 1)),
])
def test_add_months_across_years(start, n, expected):
    assert add_months(start, n) == expected


def test_month_of_uses_utc_for_aware_datetimes():
    # 00:30 on 1 January in UTC+2 is still 31 December in UTC.
    plus2 = timezone(timedelta(hours=2))
    assert month_of(datetime(2026, 1, 1, 0, 30, tzinfo=plus2)) == date(2025, 12, 1)
    assert month_of(date(2024, 2, 29)) == date(2024, 2, 1)
    assert month_of(utc(2025, 12, 31, 23, 59, 59)) == date(2025, 12, 1)


def test_bounds_december_to_january_and_leap_february():
    assert month_bounds(date(2025, 12, 1)) == (utc(2025, 12, 1), utc(2026, 1, 1))
    lo, hi = month_bounds(date(2028, 2, 1))
    assert (lo, hi) == (utc(2028, 2, 1), utc(2028, 3, 1))
    assert hi - lo == timedelta(days=29)  # 2028 is a leap year
    lo, hi = month_bounds(date(2027, 2, 1))
    assert hi - lo == timedelta(days=28)
    lo, hi = month_bounds(date(2100, 2, 1))  # divisible by 100, not by 400: not leap
    assert hi - lo == timedelta(days=28)


def test_partition_names():
    assert partition_name("learning_events", date(2026, 11, 1)) == "learning_events_2026_11"
    assert partition_name("learning_events", date(2027, 1, 1)) == "learning_events_2027_01"


def test_parse_month():
    assert parse_month("2026-11") == date(2026, 11, 1)
    assert parse_month("2026-1") == date(2026, 1, 1)
    for bad in ("2026-13", "2026", "11-2026", "2026-11-01", ""):
        with pytest.raises(ConfigError):
            parse_month(bad)


def test_months_ahead_across_year_boundary():
    assert months_ahead(date(2025, 12, 31), 2) == [date(2025, 12, 1), date(2026, 1, 1),
                                                   date(2026, 2, 1)]
    assert months_ahead(utc(2026, 1, 1, 0, 0), 0) == [date(2026, 1, 1)]
    assert months_ahead(date(2026, 6, 15), 3, start=date(2027, 11, 1)) == [
        date(2027, 11, 1), date(2027, 12, 1), date(2028, 1, 1), date(2028, 2, 1)]
    with pytest.raises(ConfigError):
        months_ahead(date(2026, 1, 1), -1)


# -- create ---------------------------------------------------------------------


def test_plan_create_from_scratch_in_december():
    create, done, conflicts = plan_create(
        "learning_events", [DEFAULT], months_ahead(date(2025, 12, 10), 3))
    assert [t.name for t in create] == ["learning_events_2025_12", "learning_events_2026_01",
                                        "learning_events_2026_02", "learning_events_2026_03"]
    jan = create[1]
    assert (jan.lo, jan.hi) == (utc(2026, 1, 1), utc(2026, 2, 1))
    feb = create[2]
    assert (feb.lo, feb.hi) == (utc(2026, 2, 1), utc(2026, 3, 1))
    assert done == [] and conflicts == []


def test_plan_create_is_idempotent():
    existing = monthly("learning_events", date(2025, 12, 1), 4) + [DEFAULT]
    create, done, conflicts = plan_create(
        "learning_events", existing, months_ahead(date(2025, 12, 31), 3))
    assert create == [] and conflicts == []
    assert done == [p.name for p in existing[:4]]
    # One month later only the new last month is missing.
    create, done, _ = plan_create(
        "learning_events", existing, months_ahead(date(2026, 1, 1), 3))
    assert [t.name for t in create] == ["learning_events_2026_04"]
    assert len(done) == 3


def test_plan_create_matches_by_bounds_not_name():
    lo, hi = month_bounds(date(2026, 1, 1))
    existing = [Existing("events_jan", lo, hi), DEFAULT]
    create, done, conflicts = plan_create("learning_events", existing, [date(2026, 1, 1)])
    assert create == [] and done == ["events_jan"] and conflicts == []


def test_plan_create_reports_overlaps_and_taken_names():
    quarter = Existing("learning_events_2026_q1", utc(2026, 1, 1), utc(2026, 4, 1))
    existing = [quarter, DEFAULT]
    create, _done, conflicts = plan_create(
        "learning_events", existing, months_ahead(date(2026, 2, 1), 3),
        taken_names={"learning_events_2026_05"})
    assert [c.name for c in conflicts] == ["learning_events_2026_02", "learning_events_2026_03",
                                           "learning_events_2026_05"]
    assert "overlaps partition learning_events_2026_q1" in conflicts[0].reason
    assert [t.name for t in create] == ["learning_events_2026_04"]
    # An unbounded (MAXVALUE) partition overlaps every later month.
    tail = Existing("learning_events_tail", utc(2026, 3, 1), None)
    create, _, conflicts = plan_create("learning_events", [tail], months_ahead(date(2026, 2, 1), 2))
    assert [t.name for t in create] == ["learning_events_2026_02"]
    assert len(conflicts) == 2


# -- retention ------------------------------------------------------------------


def test_retention_cutoff_across_year_boundary():
    assert retention_cutoff(date(2026, 1, 15), 1) == utc(2025, 12, 1)
    assert retention_cutoff(date(2026, 1, 15), 0) == utc(2026, 1, 1)
    assert retention_cutoff(date(2026, 3, 31), 14) == utc(2025, 1, 1)
    with pytest.raises(ConfigError):
        retention_cutoff(date(2026, 1, 1), -1)


def test_plan_retention_in_january():
    existing = monthly("learning_events", date(2025, 9, 1), 8) + [DEFAULT]  # 2025-09..2026-04
    retire = plan_retention(existing, date(2026, 1, 15), 2)
    # keep November, December and January (the current month); retire September, October
    assert [p.name for p in retire] == ["learning_events_2025_09", "learning_events_2025_10"]


def test_plan_retention_never_current_month_nor_default():
    existing = monthly("learning_events", date(2025, 1, 1), 24) + [DEFAULT]
    for today in (date(2026, 1, 1), date(2028, 2, 29), date(2025, 12, 31)):
        retire = plan_retention(existing, today, 0)
        names = {p.name for p in retire}
        assert partition_name("learning_events", month_of(today)) not in names
        assert "learning_events_default" not in names
        assert all(p.hi <= month_bounds(month_of(today))[0] for p in retire)


def test_plan_retention_keeps_the_database_clock_month():
    # --today in the future must not retire the month the database clock is in.
    existing = monthly("learning_events", date(2026, 1, 1), 12)
    retire = plan_retention(existing, date(2026, 12, 1), 0, now=utc(2026, 3, 10, 12))
    assert [p.name for p in retire] == ["learning_events_2026_01", "learning_events_2026_02"]


def test_plan_retention_skips_unbounded_partitions():
    old = Existing("learning_events_old", None, utc(2020, 1, 1))
    tail = Existing("learning_events_tail", utc(2030, 1, 1), None)
    retire = plan_retention([old, tail, DEFAULT], date(2026, 1, 1), 3)
    assert retire == [old]


def test_plan_pure_combines_create_and_retention_at_leap_february():
    existing = monthly("learning_events", date(2027, 10, 1), 5) + [DEFAULT]  # 2027-10..2028-02
    plan = plan_pure("learning_events", existing, date(2028, 2, 29), 2, retain=3)
    assert [t.name for t in plan.to_create] == ["learning_events_2028_03",
                                                "learning_events_2028_04"]
    assert plan.existing == ["learning_events_2028_02"]
    assert [p.name for p in plan.to_retire] == ["learning_events_2027_10"]
    assert plan_pure("learning_events", existing, date(2028, 2, 29), 0).to_retire == []


# -- DEFAULT's months (--fill) and coverage ---------------------------------------


def in_default(*months: tuple[str, int]) -> list[DefaultMonth]:
    out = []
    for label, rows in months:
        try:
            when = date.fromisoformat(label + "-01")
        except ValueError:
            when = None
        out.append(DefaultMonth(label, rows, when))
    return out


def test_plan_fill_takes_past_and_future_months_and_names_the_far_ones():
    default = in_default(("2015-12", 1), ("2016-02", 4), ("2025-03", 7), ("2031-01", 1000),
                         ("2036-02", 2), ("2036-03", 3), ("infinity", 5))
    create, stranded = plan_fill(default, date(2026, 2, 10))
    # 120 months either side of 2026-02: 2016-02 .. 2036-02.
    assert create == [date(2016, 2, 1), date(2025, 3, 1), date(2031, 1, 1), date(2036, 2, 1)]
    assert [(s.month, s.rows) for s in stranded] == [("2015-12", 1), ("2036-03", 3),
                                                     ("infinity", 5)]
    assert "before 2026-02" in stranded[0].reason and "after 2026-02" in stranded[1].reason
    assert "--from 2036-03" in stranded[1].reason
    assert "no calendar month" in stranded[2].reason
    assert sum(s.rows for s in stranded) + sum(
        m.rows for m in default if m.month in create) == sum(m.rows for m in default)
    # A retention cut-off strands what the same run would retire.
    create, stranded = plan_fill(in_default(("2025-03", 7), ("2025-12", 1)), date(2026, 2, 10),
                                 cutoff=utc(2025, 12, 1))
    assert create == [date(2025, 12, 1)]
    assert stranded == [Stranded("2025-03", 7, stranded[0].reason)]
    assert "past retention" in stranded[0].reason


def test_plan_pure_with_fill_adds_defaults_months_once():
    existing = monthly("learning_events", date(2026, 1, 1), 4) + [DEFAULT]  # 2026-01..04
    default = in_default(("2025-11", 3), ("2026-03", 1), ("2030-06", 2))
    plan = plan_pure("learning_events", existing, date(2026, 1, 20), 4, fill_from=default)
    assert [t.name for t in plan.to_create] == [
        "learning_events_2025_11", "learning_events_2026_05", "learning_events_2030_06"]
    assert plan.stranded == []
    # 2026-03 has a partition: its row cannot be in DEFAULT unless bounds overlap; a
    # quarterly partition over 2030-06 is a conflict, never forced.
    quarter = Existing("learning_events_2030_q2", utc(2030, 4, 1), utc(2030, 7, 1))
    plan = plan_pure("learning_events", [*existing, quarter], date(2026, 1, 20), 0,
                     fill_from=in_default(("2030-06", 2)))
    assert [c.name for c in plan.conflicts] == ["learning_events_2030_06"]
    # With retention, months the run would retire are not created again: their rows are
    # late, for retention to take (never a partition the next run must retire again).
    plan = plan_pure("learning_events", existing, date(2026, 1, 20), 0, retain=1,
                     fill_from=in_default(("2025-11", 3), ("2025-12", 1)))
    assert [t.name for t in plan.to_create] == ["learning_events_2025_12"]
    assert plan.stranded == [] and [m.label for m in plan.late] == ["2025-11"]


def test_plan_late_takes_defaults_months_past_retention_only():
    default = in_default(("2014-01", 1), ("2024-06", 2), ("2025-11", 3), ("2025-12", 4),
                         ("2026-01", 5), ("infinity", 6))
    late = plan_late(default, date(2026, 1, 20), 1)  # keeps 2025-12 onwards
    # 2014-01 is more than 120 months back (a wrong timestamp, left for a person).
    assert [(m.label, m.rows) for m in late] == [("2024-06", 2), ("2025-11", 3)]
    # Planned as if in 2026-06, the database clock (2026-01) still keeps its own month.
    late = plan_late(default, date(2026, 6, 1), 0, now=utc(2026, 1, 20))
    assert [m.label for m in late] == ["2024-06", "2025-11", "2025-12"]
    # Without --fill the plan still takes them (retention's job, every run).
    plan = plan_pure("learning_events", [DEFAULT], date(2026, 1, 20), 0, retain=1,
                     default_months=default)
    assert [m.label for m in plan.late] == ["2024-06", "2025-11"]
    assert plan_pure("learning_events", [DEFAULT], date(2026, 1, 20), 0,
                     default_months=default).late == []


def test_coverage_counts_every_month_ahead():
    existing = monthly("learning_events", date(2026, 11, 1), 7) + [DEFAULT]  # 2026-11 .. 2027-05
    cov = coverage(existing, utc(2026, 11, 30, 23, 59))
    assert cov.current == "learning_events_2026_11" and cov.ahead == 6
    assert cov.months[-1] == ("2027-06", None) and len(cov.months) == 8
    # A gap ends the count; the month after the gap does not count.
    gap = [p for p in existing if p.name != "learning_events_2027_02"]
    assert coverage(gap, date(2026, 11, 1)).ahead == 2
    # No partition for the current month.
    cov = coverage(existing, date(2026, 10, 5))
    assert cov.current is None and cov.ahead == 7
    # A quarterly partition covers its three months; MAXVALUE covers all that follow.
    quarter = Existing("q", utc(2027, 1, 1), utc(2027, 4, 1))
    assert coverage([quarter], date(2026, 12, 1)).ahead == 3
    tail = Existing("tail", utc(2027, 1, 1), None)
    cov = coverage([*monthly("learning_events", date(2026, 12, 1), 1), tail], date(2026, 12, 1),
                   limit=24)
    assert cov.unbounded and cov.ahead == 24


def test_usage_rules():
    assert validate_options(ahead=3, retain=None, archive_schema=None, drop=False) is None
    assert validate_options(ahead=3, retain=12, archive_schema="archive", drop=False) == "archive"
    assert validate_options(ahead=3, retain=12, archive_schema=None, drop=True) == "drop"
    for kwargs in ({"retain": 12, "archive_schema": None, "drop": False},
                   {"retain": 12, "archive_schema": "a", "drop": True},
                   {"retain": None, "archive_schema": "a", "drop": False},
                   {"retain": -1, "archive_schema": None, "drop": True}):
        with pytest.raises(ConfigError) as info:
            validate_options(ahead=3, **kwargs)
        assert info.value.exit_code == 2
    with pytest.raises(ConfigError):
        validate_options(ahead=-1, retain=None, archive_schema=None, drop=False)
    # Archiving into the live table's own schema (or a reserved one) is refused.
    for schema, table in (("public", "learning_events"), ("app", "app.learning_events"),
                          ("pg_archive", "learning_events")):
        with pytest.raises(ConfigError) as info:
            validate_options(ahead=3, retain=12, archive_schema=schema, drop=False, table=table)
        assert info.value.exit_code == 2 and schema in str(info.value)
    assert validate_options(ahead=3, retain=12, archive_schema="public", drop=False,
                            table="app.learning_events") == "archive"


# -- the SQL of each step -------------------------------------------------------


def test_create_step_with_default_rows_locks_readers_out_while_they_move():
    target = plan_create("learning_events", [DEFAULT], [date(2026, 1, 1)])[0][0]
    step = create_step(TABLE, target, "2s", default_rows=4)
    text = step.sql
    assert text[0] == "SET LOCAL lock_timeout = '2s'"
    assert text[1] == 'LOCK TABLE ONLY "public"."users" IN SHARE ROW EXCLUSIVE MODE'
    # ACCESS EXCLUSIVE conflicts with the ACCESS SHARE a reader takes to plan.
    assert text[2] == 'LOCK TABLE ONLY "public"."learning_events" IN ACCESS EXCLUSIVE MODE'
    assert text[3] == ('LOCK TABLE ONLY "public"."learning_events_default" '
                       "IN ACCESS EXCLUSIVE MODE")
    assert text[4] == ('CREATE TABLE "public"."learning_events_2026_01" '
                       '(LIKE "public"."learning_events" INCLUDING ALL)')
    assert "CHECK" in text[5] and "'2026-01-01 00:00:00+00:00'::timestamptz" in text[5]
    assert step.move_index == 6
    assert text[6].startswith('WITH moved AS (DELETE FROM "public"."learning_events_default"')
    assert "'2026-02-01 00:00:00+00:00'::timestamptz" in text[6]
    assert 'INSERT INTO "public"."learning_events_2026_01" ("event_id", "user_id", ' \
           '"occurred_at") SELECT' in text[6]
    assert text[7].startswith('ALTER TABLE "public"."learning_events" ATTACH PARTITION '
                              '"public"."learning_events_2026_01" FOR VALUES FROM')
    assert text[8].endswith('DROP CONSTRAINT "dmdb_partition_bounds"')
    assert step.fallback is None
    assert step.to_dict()["default_rows"] == 4 and step.to_dict()["blocks_readers"] is True


def test_create_step_without_default_rows_keeps_readers_running():
    target = plan_create("learning_events", [DEFAULT], [date(2026, 1, 1)])[0][0]
    step = create_step(TABLE, target, "2s", default_rows=0)
    text = step.sql
    assert text[2] == 'LOCK TABLE ONLY "public"."learning_events" IN SHARE ROW EXCLUSIVE MODE'
    assert text[3].endswith('"learning_events_default" IN ACCESS EXCLUSIVE MODE')
    assert step.move_index is None and not any("DELETE" in t for t in text)
    assert step.to_dict()["blocks_readers"] is False
    # Rows that reach DEFAULT after planning: ATTACH refuses, the fallback moves them.
    assert step.fallback is not None and step.fallback.move_index is not None
    assert 'IN ACCESS EXCLUSIVE MODE' in step.fallback.sql[2]


def test_create_step_without_default_partition_takes_the_weaker_lock():
    table = TableInfo(schema="s", name="t", key="ts", columns=("ts",))
    target = plan_create("t", [], [date(2026, 1, 1)])[0][0]
    text = create_step(table, target, "500ms").sql
    assert 'LOCK TABLE ONLY "s"."t" IN SHARE UPDATE EXCLUSIVE MODE' in text
    assert not any("DELETE" in s for s in text)
    assert not any("ACCESS EXCLUSIVE" in s for s in text)


def test_retention_steps_sql():
    part = monthly("learning_events", date(2025, 1, 1), 1)[0]
    archive = archive_step(TABLE, part, "archive", "2s").sql
    assert archive[1:4] == [
        'LOCK TABLE ONLY "public"."users" IN SHARE ROW EXCLUSIVE MODE',
        'LOCK TABLE ONLY "public"."learning_events" IN ACCESS EXCLUSIVE MODE',
        'LOCK TABLE ONLY "public"."learning_events_default" IN ACCESS EXCLUSIVE MODE']
    assert archive[4:] == [
        ('ALTER TABLE "public"."learning_events" DETACH PARTITION '
        '"public"."learning_events_2025_01"'),
        'CREATE SCHEMA IF NOT EXISTS "archive"',
        'ALTER TABLE "public"."learning_events_2025_01" SET SCHEMA "archive"']
    drop = drop_step(TABLE, part, "2s").sql
    assert drop[-1] == 'DROP TABLE "public"."learning_events_2025_01"'
    assert not any("users" in s for s in drop)


FK = Dependency("foreign key", "learning_events_user_id_fkey",
                "constraint learning_events_user_id_fkey on table learning_events_2025_01",
                "column user_id of table users, index users_pkey")
SEQ = Dependency("default", "event_id", "default value for column event_id of table x",
                 "sequence learning_events_event_id_seq")
TYPE = Dependency("column", None, "column mood of table x", "type mood")


def test_archive_step_cuts_the_archived_table_loose():
    part = monthly("learning_events", date(2025, 1, 1), 1)[0]
    step = archive_step(TABLE, part, "archive", "2s", [FK, SEQ, TYPE])
    text = step.sql
    # Dropping the foreign key removes its triggers from users: ACCESS EXCLUSIVE, first.
    assert text[1] == 'LOCK TABLE ONLY "public"."users" IN ACCESS EXCLUSIVE MODE'
    detach = text.index('ALTER TABLE "public"."learning_events" DETACH PARTITION '
                        '"public"."learning_events_2025_01"')
    assert text[detach + 1:detach + 3] == [
        'ALTER TABLE "public"."learning_events_2025_01" DROP CONSTRAINT '
        '"learning_events_user_id_fkey"',
        'ALTER TABLE "public"."learning_events_2025_01" ALTER COLUMN "event_id" DROP DEFAULT']
    assert text[-1] == 'ALTER TABLE "public"."learning_events_2025_01" SET SCHEMA "archive"'
    assert not any("mood" in t for t in text)  # a column's type cannot be cut: reported
    assert step.unlinks == [FK.describe(), SEQ.describe()]
    unlink = unlink_step(TABLE, "archive", "learning_events_2024_12", "2s", [SEQ]).sql
    assert unlink[1:] == [
        'LOCK TABLE ONLY "archive"."learning_events_2024_12" IN ACCESS EXCLUSIVE MODE',
        'ALTER TABLE "archive"."learning_events_2024_12" ALTER COLUMN "event_id" DROP DEFAULT']
    others = [Dependency("trigger", "audit", "trigger audit on table t", "function f()"),
              Dependency("policy", "mine", "policy mine on table t", "function g()"),
              Dependency("constraint", "ok", "constraint ok on table t", "function h(integer)")]
    assert [s.as_string(None) for s in unlink_statements(sql.Identifier("t"), others)] == [
        'DROP TRIGGER "audit" ON "t"', 'DROP POLICY "mine" ON "t"',
        'ALTER TABLE "t" DROP CONSTRAINT "ok"']


def test_identifiers_are_quoted():
    table = TableInfo(schema="odd schema", name='we"ird', key="at", columns=("at",))
    target = plan_create('we"ird', [], [date(2026, 1, 1)])[0][0]
    text = create_step(table, target, "2s").sql
    assert 'CREATE TABLE "odd schema"."we""ird_2026_01" (LIKE "odd schema"."we""ird" ' \
           "INCLUDING ALL)" in text


def test_exit_codes():
    base = {"action": "rollover", "table": "public.learning_events", "dry_run": False,
                "today": date(2026, 1, 1), "ahead": 3}
    assert RunResult(**base).exit_code == 0
    assert RunResult(**base, default_rows=2).exit_code == EXIT_DEFAULT_ROWS == 3
    assert RunResult(**base, default_rows=2, errors=[{"step": "x", "error": "y"}]).exit_code == 1
    assert RunResult(**base, skipped=True).exit_code == 0


# -- cron -----------------------------------------------------------------------


@pytest.mark.parametrize("cron, calendar", [
    ("17 * * * *", "*-*-* *:17:00"),
    ("0 3 * * *", "*-*-* 03:00:00"),
    ("*/15 * * * *", "*-*-* *:00/15:00"),
    ("30 2 1 * *", "*-*-01 02:30:00"),
    ("5 4 * * 1-5", "Mon..Fri *-*-* 04:05:00"),
    ("0 0 * * 0,6", "Sun,Sat *-*-* 00:00:00"),
    ("0 1,13 * 1-6 *", "*-01..06-* 01,13:00:00"),
    ("@hourly", "hourly"),
    ("@daily", "daily"),
])
def test_cron_to_oncalendar(cron, calendar):
    assert cron_to_oncalendar(cron) == calendar


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "x * * * *", "0 0 1 * 1",
                                 "*/0 * * * *"])
def test_cron_schedule_errors(bad):
    with pytest.raises(ConfigError):
        cron_to_oncalendar(bad)


def test_render_cron_files():
    files = render_cron(ahead=4, retain=12, archive_schema="archive", schedule="17 * * * *",
                        dmdb=["/opt/dmdb/bin/dmdb"], workdir="/srv/dm db",
                        env_file="/etc/dmdb/env", user="dmdb")
    assert files.command == ["/opt/dmdb/bin/dmdb", "partitions", "rollover", "--ahead", "4",
                             "--retain", "12", "--archive-schema", "archive", "--quiet"]
    line = [ln for ln in files.crontab.splitlines() if not ln.startswith("#")]
    assert line == [("17 * * * * cd '/srv/dm db' && /opt/dmdb/bin/dmdb partitions rollover "
                    "--ahead 4 --retain 12 --archive-schema archive --quiet")]
    assert "ExecStart=/opt/dmdb/bin/dmdb partitions rollover --ahead 4 --retain 12 " \
           "--archive-schema archive --quiet" in files.service
    assert "WorkingDirectory=/srv/dm db" in files.service
    assert "EnvironmentFile=/etc/dmdb/env" in files.service
    assert "User=dmdb" in files.service
    assert "Type=oneshot" in files.service
    assert "OnCalendar=*-*-* *:17:00" in files.timer
    assert "Unit=dmdb-partitions-rollover.service" in files.timer
    assert "WantedBy=timers.target" in files.timer


def test_render_cron_escapes_percent_and_checks_usage():
    files = render_cron(ahead=1, dmdb=["/x/dmdb"], workdir="/srv/100%", schedule="@daily")
    assert r"cd /srv/100\% &&" in files.crontab
    assert "WorkingDirectory=/srv/100%%" in files.service
    assert "OnCalendar=daily" in files.timer
    assert "EnvironmentFile" not in files.service and "User=" not in files.service
    with pytest.raises(ConfigError):
        render_cron(ahead=1, retain=3, dmdb=["/x/dmdb"])  # retention needs a mode
