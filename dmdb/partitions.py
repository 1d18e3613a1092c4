"""Monthly partitions of learning_events: list, create ahead, roll over from cron.

Behaviour follows pg_partman's maintenance (premake, DEFAULT-partition handling,
retention to a schema or by dropping, one maintenance run at a time), with what it
declines to do: rows in the DEFAULT partition that belong to a month being created are
moved into the new partition as part of creating it, without any reader missing them.

This module is the front door; the work is split by subject:

- `dmdb.partitions_plan`: months, the pure plan (which months to create, `--fill`,
  retention, coverage for the monitor) and the SQL of a create step;
- `dmdb.partitions_catalog`: the one reading of partition bounds (`read_bounds`) and
  of DEFAULT's rows (`read_default`), shared by planning, `list`, seed and monitor;
- `dmdb.partitions_run`: the advisory-locked run that plans and executes steps, and
  why a create step locks what it locks;
- `dmdb.partitions_retention`: archiving (cut loose from the live schema) and dropping.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

from dmdb.errors import ConfigError
from dmdb.partitions_catalog import (
    Dependency,
    Listing,
    PartitionedTable,
    PartitionRow,
    db_now,
    list_partitions,
    read_bounds,
    read_default,
    read_dependencies,
    read_table,
)
from dmdb.partitions_plan import (
    CHECK_NAME,
    DEFAULT_ATTEMPTS,
    DEFAULT_BASE_DELAY,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE,
    EXIT_DEFAULT_ROWS,
    FILL_HORIZON,
    MAX_AHEAD,
    UTC,
    Conflict,
    Coverage,
    DefaultContents,
    DefaultMonth,
    Existing,
    PartitionError,
    PurePlan,
    Step,
    Stranded,
    TableInfo,
    Target,
    add_months,
    check_lock_timeout,
    coverage,
    create_step,
    month_bounds,
    month_of,
    months_ahead,
    parse_month,
    partition_name,
    plan_create,
    plan_fill,
    plan_pure,
    plan_retention,
    retention_cutoff,
    validate_options,
)
from dmdb.partitions_retention import archive_step, drop_step, unlink_step
from dmdb.partitions_run import PARTITION_LOCK_KEY, Plan, RunResult, execute, make_plan, run

__all__ = [
    "CHECK_NAME", "DEFAULT_ATTEMPTS", "DEFAULT_BASE_DELAY", "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_TABLE", "EXIT_DEFAULT_ROWS", "FILL_HORIZON", "MAX_AHEAD", "PARTITION_LOCK_KEY",
    "UTC", "Conflict", "Coverage", "DefaultContents", "DefaultMonth", "Dependency",
    "Existing", "Listing", "PartitionError", "PartitionRow", "PartitionedTable", "Plan",
    "PurePlan", "RunResult", "Step", "Stranded", "TableInfo", "Target", "add_months",
    "archive_step", "check_lock_timeout", "coverage", "create_step", "db_now", "drop_step",
    "execute", "list_partitions", "make_plan", "month_bounds", "month_of", "months_ahead",
    "parse_month", "partition_name", "plan_create", "plan_fill", "plan_pure",
    "plan_retention", "read_bounds", "read_default", "read_dependencies", "read_table",
    "retention_cutoff", "run", "unlink_step", "validate_options",
]


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


# -- cron and systemd ----------------------------------------------------------

CRON_MACROS = {"@hourly": "hourly", "@daily": "daily", "@midnight": "daily",
               "@weekly": "weekly", "@monthly": "monthly", "@yearly": "yearly",
               "@annually": "yearly"}
DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))


def _check_cron_field(text: str, name: str, lo: int, hi: int) -> None:
    for part in text.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not m:
            raise ConfigError(f"--schedule: {name} field {text!r} is not a cron field "
                              "(use numbers, *, a-b, lists and /steps)")
        numbers = [int(x) for x in re.findall(r"\d+", m.group(1))]
        if any(not lo <= n <= hi for n in numbers) or (m.group(2) and int(m.group(2)) == 0):
            raise ConfigError(f"--schedule: {name} field {text!r} is out of range {lo}-{hi}")


def check_schedule(schedule: str) -> str:
    schedule = " ".join(schedule.split())
    if schedule in CRON_MACROS:
        return schedule
    fields = schedule.split(" ")
    if len(fields) != 5:
        raise ConfigError(f"--schedule {schedule!r} needs 5 cron fields (minute hour day month "
                          "weekday), e.g. '17 * * * *', or @hourly / @daily")
    for text, (name, lo, hi) in zip(fields, _FIELDS):
        _check_cron_field(text, name, lo, hi)
    return schedule


def _calendar_field(text: str, lo: int, width: int = 2) -> str:
    out = []
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            item = f"{lo:0{width}d}/{step}" if step else "*"
        elif "-" in base:
            a, b = base.split("-")
            item = f"{int(a):0{width}d}..{int(b):0{width}d}" + (f"/{step}" if step else "")
        else:
            item = f"{int(base):0{width}d}" + (f"/{step}" if step else "")
        out.append(item)
    return ",".join(out)


def _calendar_dow(text: str) -> str:
    if text == "*":
        return ""
    out = []
    for part in text.split(","):
        if "/" in part:
            raise ConfigError(f"--schedule: weekday steps ({part}) have no systemd equivalent; "
                              "give --on-calendar as well")
        if part == "*":
            return ""
        if "-" in part:
            a, b = (int(x) for x in part.split("-"))
            out.append(f"{DOW[a]}..{DOW[b]}" if a <= b else f"{DOW[a]}..Sat,Sun..{DOW[b]}")
        else:
            out.append(DOW[int(part)])
    return ",".join(out)


def cron_to_oncalendar(schedule: str) -> str:
    """A 5-field cron schedule as a systemd OnCalendar= expression."""
    schedule = check_schedule(schedule)
    if schedule in CRON_MACROS:
        return CRON_MACROS[schedule]
    minute, hour, dom, month, dow = schedule.split(" ")
    if dom != "*" and dow != "*":
        # cron ORs the two day fields, systemd ANDs them.
        raise ConfigError("--schedule: cron matches day-of-month OR weekday when both are set; "
                          "systemd cannot say that; give --on-calendar as well")
    days = _calendar_dow(dow)
    stamp = (f"*-{_calendar_field(month, 1)}-{_calendar_field(dom, 1)} "
             f"{_calendar_field(hour, 0)}:{_calendar_field(minute, 0)}:00")
    return f"{days} {stamp}" if days else stamp


@dataclass
class CronFiles:
    command: list[str]
    schedule: str
    on_calendar: str
    crontab: str
    service: str
    timer: str
    service_name: str = "dmdb-partitions-rollover.service"
    timer_name: str = "dmdb-partitions-rollover.timer"

    def to_dict(self) -> dict:
        return asdict(self)


def default_dmdb_path() -> list[str]:
    """How cron should call dmdb: this very executable when it is `dmdb`, else the one on
    PATH, else `python -m dmdb` with this interpreter."""
    import os
    import shutil
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "dmdb" and os.path.exists(argv0):
        return [os.path.abspath(argv0)]
    found = shutil.which("dmdb")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "dmdb"]


def render_cron(
    *,
    ahead: int = 3,
    retain: int | None = None,
    archive_schema: str | None = None,
    drop: bool = False,
    schedule: str = "17 * * * *",
    on_calendar: str | None = None,
    table: str = DEFAULT_TABLE,
    dmdb: list[str] | None = None,
    workdir: str = ".",
    env_file: str | None = None,
    user: str | None = None,
) -> CronFiles:
    """The crontab line and the systemd service + timer that run the rollover."""
    import shlex

    validate_options(ahead=ahead, retain=retain, archive_schema=archive_schema, drop=drop)
    schedule = check_schedule(schedule)
    on_calendar = on_calendar.strip() if on_calendar else cron_to_oncalendar(schedule)
    command = [*(dmdb or default_dmdb_path()), "partitions", "rollover", "--ahead", str(ahead)]
    if table != DEFAULT_TABLE:
        command += ["--table", table]
    if retain is not None:
        command += ["--retain", str(retain)]
        command += ["--archive-schema", archive_schema] if archive_schema else ["--drop"]
    command.append("--quiet")
    shell = " ".join(shlex.quote(a) for a in command)
    context = {
        "ahead": ahead, "retain": retain, "archive_schema": archive_schema, "drop": drop,
        "schedule": schedule, "on_calendar": on_calendar, "user": user,
        "exit_default_rows": EXIT_DEFAULT_ROWS,
        # cron turns % into a newline; systemd expands %-specifiers.
        "cron_command": f"cd {shlex.quote(workdir)} && {shell}".replace("%", r"\%"),
        "exec_start": shell.replace("%", "%%"),
        "workdir": workdir.replace("%", "%%"),
        "env_file": env_file.replace("%", "%%") if env_file else None,
        "service_name": "dmdb-partitions-rollover.service",
    }
    from dmdb.scaffold import render

    return CronFiles(
        command=command, schedule=schedule, on_calendar=on_calendar,
        crontab=render("partitions_crontab.j2", **context),
        service=render("partitions_rollover.service.j2", **context),
        timer=render("partitions_rollover.timer.j2", **context),
    )


def today_from_text(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--today {text!r} is not a date; write it as YYYY-MM-DD") from None


