"""`dmdb partitions cron`: the crontab line and the systemd service + timer that run
`dmdb partitions rollover`, rendered from templates/partitions_*.j2.

Every value is quoted as its reader requires, or refused. Control characters (a newline
would add a crontab line or an `ExecStartPre=`) are refused everywhere. The crontab
command is quoted for /bin/sh and its `%` escaped for cron (which turns a bare `%` into
a newline). In the units, `%` is doubled (systemd specifiers), and ExecStart= words are
double-quoted with C escapes and `$` doubled where they need it; WorkingDirectory= and
EnvironmentFile= must be absolute paths without surrounding space, User= a user name.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import asdict, dataclass

from dmdb.errors import ConfigError
from dmdb.files import refuse_control
from dmdb.partitions import DEFAULT_TABLE, EXIT_DEFAULT_ROWS, validate_options

CRON_MACROS = {"@hourly": "hourly", "@daily": "daily", "@midnight": "daily",
               "@weekly": "weekly", "@monthly": "monthly", "@yearly": "yearly",
               "@annually": "yearly"}
DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))
SERVICE_NAME = "dmdb-partitions-rollover.service"
TIMER_NAME = "dmdb-partitions-rollover.timer"


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
    refuse_control(schedule.strip(), "--schedule")
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


# -- quoting -------------------------------------------------------------------

# Words systemd reads as they are (after %% and $$): no space, quote, backslash or `;`.
_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")
# useradd's rule (plus a numeric uid); systemd accepts the same in User=.
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]+")


def systemd_word(word: str, what: str) -> str:
    """One word of an ExecStart= command line."""
    refuse_control(word, what)
    if word == ";":  # systemd's separator between commands, quoted or not
        raise ConfigError(f"{what} ';' cannot be written into ExecStart=; choose another")
    word = word.replace("%", "%%").replace("$", "$$")
    if word and _SYSTEMD_PLAIN.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_path(path: str, what: str) -> str:
    """A WorkingDirectory=/EnvironmentFile= value: the rest of the line, trimmed, with
    specifiers expanded; a leading `-` would mean "optional"."""
    refuse_control(path, what)
    if not path.startswith("/") or path != path.strip():
        raise ConfigError(f"{what} {path!r} must be an absolute path without surrounding spaces")
    return path.replace("%", "%%")


def systemd_user(user: str) -> str:
    refuse_control(user, "--user")
    if not _USER_NAME.fullmatch(user):
        raise ConfigError(f"--user {user!r} is not a user name (letters, digits, _ . -; "
                          "not starting with a digit or -) nor a numeric uid")
    return user


def cron_command(words: list[str], workdir: str) -> str:
    """The command part of a crontab line: /bin/sh quoting, then cron's `%` escaped."""
    for word in (*words, workdir):
        refuse_control(word, "a crontab value")
    shell = " ".join(shlex.quote(w) for w in words)
    return f"cd {shlex.quote(workdir)} && {shell}".replace("%", r"\%")


# -- rendering -----------------------------------------------------------------


@dataclass
class CronFiles:
    command: list[str]
    schedule: str
    on_calendar: str
    crontab: str
    service: str
    timer: str
    service_name: str = SERVICE_NAME
    timer_name: str = TIMER_NAME

    def to_dict(self) -> dict:
        return asdict(self)


def default_dmdb_path() -> list[str]:
    """How cron should call dmdb: this very executable when it is `dmdb`, else the one on
    PATH, else `python -m dmdb` with this interpreter."""
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
    """The crontab line and the systemd service + timer that run the rollover; a value
    that cannot be written safely is refused (ConfigError) before anything is rendered."""
    validate_options(ahead=ahead, retain=retain, archive_schema=archive_schema, drop=drop,
                     table=table)
    if archive_schema is not None:
        refuse_control(archive_schema, "--archive-schema")
    refuse_control(table, "--table")
    refuse_control(workdir, "--workdir")
    workdir = os.path.abspath(workdir)  # cron's cd and systemd both want it absolute
    if dmdb:
        refuse_control(dmdb[0], "--dmdb-path")
    schedule = check_schedule(schedule)
    if on_calendar:
        on_calendar = refuse_control(on_calendar.strip(), "--on-calendar")
    else:
        on_calendar = cron_to_oncalendar(schedule)
    command = [*(dmdb or default_dmdb_path()), "partitions", "rollover", "--ahead", str(ahead)]
    if command[0][:1] in ("@", "-", ":", "+", "!", "|", ""):
        raise ConfigError(f"--dmdb-path {command[0]!r} must be a path to the dmdb executable")
    if table != DEFAULT_TABLE:
        command += ["--table", table]
    if retain is not None:
        command += ["--retain", str(retain)]
        command += ["--archive-schema", archive_schema] if archive_schema else ["--drop"]
    command.append("--quiet")
    context = {
        "ahead": ahead, "retain": retain, "archive_schema": archive_schema, "drop": drop,
        "schedule": schedule, "on_calendar": on_calendar.replace("%", "%%"),
        "user": systemd_user(user) if user else None,
        "exit_default_rows": EXIT_DEFAULT_ROWS,
        "cron_command": cron_command(command, workdir),
        "exec_start": " ".join(systemd_word(w, "a command word") for w in command),
        "workdir": systemd_path(workdir, "--workdir"),
        "env_file": systemd_path(env_file, "--env-file") if env_file else None,
        "service_name": SERVICE_NAME,
    }
    from dmdb.resources import render_template

    return CronFiles(
        command=command, schedule=schedule, on_calendar=on_calendar,
        crontab=render_template("partitions_crontab.j2", **context),
        service=render_template("partitions_rollover.service.j2", **context),
        timer=render_template("partitions_rollover.timer.j2", **context),
    )
