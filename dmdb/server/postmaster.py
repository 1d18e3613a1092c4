"""Whether a data directory's server really runs, and why a start failed.

`postmaster.pid` names the postmaster's process id, but that id proves nothing on its
own: a postmaster killed with SIGKILL stays a zombie until its parent reaps it (in a
container whose first process reaps nothing, for good), and `kill(pid, 0)` succeeds on a
zombie — and on an unrelated process that got the id later. PostgreSQL's own check of
the lock file is that `kill`, so it refuses to start beside the zombie ("lock file
"postmaster.pid" already exists"). Here, on Linux, /proc tells the three apart: a zombie
(state Z) is dead, and every process of a server has the data directory as its working
directory (the postmaster changes into it; backends inherit it).

Removing the stale lock file of a dead postmaster is safe: PostgreSQL (12+) also refuses
to start while any old process of the directory still uses its shared memory, whatever
the lock file says ("pre-existing shared memory block ... is still in use") — those
processes are named, with the way out.

When a start fails, pg_ctl says only "Examine the log output": `start_error` reads the
server log from where this start began and returns its last FATAL or PANIC line (with
the line naming the bad setting when a configuration file "contains errors"), and what
to do about it.

A home whose path is too long for a Unix socket puts the socket in `/tmp/dmdb-<hash>`, a
name anyone can compute and create first. Such a squatted directory is refused (it is
not ours), and `squat_free_socket_dir` gives the server another one: created by us with
an unpredictable name beside it (`/tmp/dmdb-<hash>-<random>`, 0700), reused by later
starts; clients find it in postmaster.pid, as always.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from dmdb.errors import ConnectError


class ServerStartError(ConnectError):
    """The embedded server could not be started (or did not come up): for the monitor,
    as for any client, the server cannot be reached."""


def _proc(pid: int, name: str) -> Path:
    return Path("/proc") / str(pid) / name


def is_zombie(pid: int) -> bool:
    """True when `pid` is a process that has exited and was not reaped (Linux /proc)."""
    try:
        stat = _proc(pid, "stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


def runs_in(pid: int, data_dir: Path) -> bool | None:
    """Whether process `pid` works in `data_dir` (a server of that directory): None when
    it cannot be told (no /proc, another user's process, a zombie)."""
    try:
        cwd = os.readlink(_proc(pid, "cwd"))
    except OSError:
        return None
    return os.path.realpath(cwd) == os.path.realpath(data_dir)


def cluster_processes(data_dir: Path) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes working in `data_dir`: the server's,
    including backends left behind by a postmaster that died. [] without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    real = os.path.realpath(data_dir)
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.path.realpath(os.readlink(entry / "cwd")) != real:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue
        if not is_zombie(int(entry.name)):
            found.append((int(entry.name), cmdline))
    return sorted(found)


def log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


# A line of the server log with PostgreSQL's default log_line_prefix ('%m [%p] ').
_LINE = re.compile(r"\[(?P<pid>\d+)\]\s+(?P<level>[A-Z]+):\s+(?P<text>.*)$")
_TAIL = 256 * 1024  # read at most this much of the log


def last_failure(log: Path, offset: int = 0) -> tuple[str, str | None] | None:
    """The last FATAL or PANIC message written to `log` from byte `offset` on, and the
    line that says more: its HINT, or — when a configuration file "contains errors" — the
    message naming the setting, logged just before by the same process."""
    try:
        with open(log, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = offset if offset <= size else 0  # a log rotated since: read it all
            handle.seek(max(start, size - _TAIL, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    lines = [m for m in map(_LINE.search, text.splitlines()) if m]
    for i in range(len(lines) - 1, -1, -1):
        m = lines[i]
        if m["level"] not in ("FATAL", "PANIC"):
            continue
        message = f"{m['level']}: {m['text'].strip()}"
        more = None
        if "contains errors" in m["text"]:
            before = [p for p in lines[:i] if p["pid"] == m["pid"] and p["level"] in (
                "LOG", "ERROR", "WARNING")]
            if before:
                more = before[-1]["text"].strip()
        else:
            after = [p for p in lines[i + 1:i + 3] if p["pid"] == m["pid"]
                     and p["level"] == "HINT"]
            if after:
                more = "HINT: " + after[0]["text"].strip()
        return message, more
    return None


def fix_for(message: str, data_dir: Path, processes: list[tuple[int, str]]) -> str:
    """What to do about a start failure the log names (`message`: its FATAL/PANIC line)."""
    text = message.lower()
    if "no space left on device" in text or "could not extend file" in text:
        return (f"free space on the file system of {data_dir} (its pg_wal too), then run "
                "`dmdb server start`")
    if "shared memory block" in text and "still in use" in text:
        named = ", ".join(f"{pid} ({cmd[:60]})" for pid, cmd in processes[:5]) or "unknown"
        pids = " ".join(str(pid) for pid, _ in processes[:5]) or "PID"
        return (f"processes of the previous server still run (PIDs: {named}); they end when "
                f"their statement does, or stop them with `kill {pids}`, then run "
                "`dmdb server start`")
    if "contains errors" in text or "invalid value for parameter" in text \
            or "unrecognized configuration parameter" in text:
        return (f"correct or remove that setting in {data_dir}/postgresql.auto.conf (ALTER "
                "SYSTEM wrote it) or postgresql.conf, then run `dmdb server start`")
    if "lock file" in text and "already exists" in text:
        named = re.search(r'lock file "([^"]+)"', message)
        path = Path(named.group(1)) if named else Path("postmaster.pid")
        path = path if path.is_absolute() else data_dir / path
        return (f"if no server of {data_dir} runs (the process the lock file names is "
                f"another program's), remove {path}, then run `dmdb server start`")
    return "see the server log, fix the cause, then run `dmdb server start`"


def clear_stale_pid(pg_data: Path, wait: float = 3.0) -> None:
    """Before a start: let the processes of a server that died finish exiting (they
    notice within milliseconds; a backend busy in a statement may not, for up to `wait`
    seconds), and remove a postmaster.pid whose process is a zombie or no server of this
    directory, which PostgreSQL would take for a running postmaster."""
    deadline = time.monotonic() + wait
    while cluster_processes(pg_data) and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile = pg_data / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return
    if not (is_zombie(pid) or runs_in(pid, pg_data) is False):
        return
    # The socket's lock file (line 5: the socket directory, line 4: the port) names the
    # same process and is checked the same way.
    if len(lines) >= 5 and lines[3].strip().isdigit() and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        try:
            if int(socket_lock.read_text().split()[0]) == pid:
                socket_lock.unlink(missing_ok=True)
        except (OSError, ValueError, IndexError):
            pass
    pidfile.unlink(missing_ok=True)


def start_error(what: str, pg_data: Path, data_dir: Path, log: Path, shown_log: Path,
                offset: int, fallback: str) -> ServerStartError:
    """Why the server of `pg_data` did not start, from its log (the last FATAL or PANIC
    line written since byte `offset`), and what to do; `fallback` when the log says
    nothing. `data_dir` and `shown_log` are the paths as the user knows them."""
    found = last_failure(log, offset)
    if found is None:
        return ServerStartError(fallback)
    message, more = found
    detail = f"{message} ({more})" if more else message
    fix = fix_for(f"{message} {more or ''}", data_dir, cluster_processes(pg_data))
    return ServerStartError(f"{what} cannot start: {detail}; {fix} (log: {shown_log})")


def squat_free_socket_dir(squatted: Path, owner: tuple[int, int] | None = None) -> Path:
    """A private socket directory instead of `squatted` (a fallback path someone else
    created): one of ours beside it, `<squatted>-<random>`, made by an earlier start, or a
    new one (mkdtemp: unpredictable, 0700, created atomically). `owner`: (uid, gid) of the
    server's user when that is not us (root runs it as another user)."""
    uid, gid = owner or (os.geteuid(), os.getegid())
    for candidate in sorted(glob.glob(glob.escape(str(squatted)) + "-*")):
        st = os.lstat(candidate)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and stat.S_IMODE(st.st_mode) == 0o700:
            return Path(candidate)
    made = Path(tempfile.mkdtemp(prefix=squatted.name + "-", dir=squatted.parent))
    if owner is not None:
        os.chown(made, uid, gid)
    return made


def describe_owner(path: Path) -> str:
    """Who owns `path` (for a message): 'user mallory (uid 1001)', or 'a link'."""
    import pwd

    try:
        st = os.lstat(path)
    except OSError:
        return "nobody known"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    try:
        return f"user {pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid})"
    except KeyError:
        return f"uid {st.st_uid}"
