"""`dmdb restore --to TIME|LSN|NAME|latest --into-dir DIR`: point-in-time restore from the
repository into a new cluster; the running server is never touched (nor even reached).

The plan is pure (`plan`): the newest base backup consistent before the target (its
chain, for an incremental), the WAL from its start to the target, and the archive's
range — a target outside it is refused, naming the range. Doing (`restore_to`): extract
the backup (pg_combinebackup joins a chain), append the recovery settings to
postgresql.auto.conf (restore_command reading `<repo>/wal`, the target, `promote`,
archive_mode off so the copy never writes into the live server's archive), create
recovery.signal, start on a free port and wait until recovery promoted it.

DIR is laid out as an embedded home (`DIR/data`, `DIR/postgres.log`, `DIR/run`), so
`DMDB_HOME=DIR dmdb server stop|status|url` and `dmdb psql` work on the copy; as root
its files live under SYSTEM_HOME like the embedded server's. Targets are as PostgreSQL's
recovery_target_*: a time stops before the first transaction that committed after it, an
LSN before the first record at or after it (everything committed before it is in), a
name at that restore point; `latest` replays everything archived.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dmdb.backup.process import run
from dmdb.backup.repository import BackupEntry, Catalog, Repository
from dmdb.backup.walnames import (
    Segment,
    format_lsn,
    is_lsn,
    parse_lsn,
    segment_name,
    segment_number,
)
from dmdb.errors import ConfigError, DmdbError
from dmdb.server.embedded import DEFAULT_DBNAME, SUPERUSER, EmbeddedServer, _private_dir

Progress = Callable[[str, int, int], None]  # (stage, done, total)


# ------------------------------------------------------------------------------ targets


@dataclass
class Target:
    kind: str  # "time", "lsn", "name" or "latest"
    text: str  # as recovery_target_* takes it
    lsn: int | None = None  # lsn; a name's restore point (the end of its record)
    time: datetime | None = None  # time; a name's creation time

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.text,
                "lsn": format_lsn(self.lsn) if self.lsn is not None else None,
                "time": self.time.isoformat() if self.time else None}


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:  # a wall-clock time of this machine
        value = value.astimezone()
    return value


def parse_target(text: str, catalog: Catalog, repo: str = "the repository") -> Target:
    """`latest`, an LSN (0/3000028), an ISO time (2026-12-07T17:00:00+01:00; without an
    offset, this machine's time zone) or a restore point of the catalog; `time:`, `lsn:`,
    `name:` force a reading."""
    raw = text.strip()
    kind, _, rest = raw.partition(":")
    forced = kind if kind in ("time", "lsn", "name") and rest else None
    value = rest.strip() if forced else raw
    if not value:
        raise ConfigError("--to needs a time, an LSN, a restore point name or `latest`")
    if forced is None and value == "latest":
        return Target("latest", "latest")
    if forced in (None, "lsn") and is_lsn(value):
        lsn = parse_lsn(value)
        return Target("lsn", format_lsn(lsn), lsn=lsn)
    if forced == "lsn":
        raise ConfigError(f"--to {raw!r}: {value!r} is not an LSN (e.g. 0/3000028)")
    when = _parse_time(value) if forced in (None, "time") else None
    if when is not None:
        return Target("time", when.isoformat(), time=when)
    if forced == "time":
        raise ConfigError(f"--to {raw!r}: {value!r} is not an ISO time "
                          "(e.g. 2026-12-07T17:00:00+00:00)")
    mark = catalog.mark(value)
    if mark is None:
        known = ", ".join(m.name for m in catalog.marks[-5:]) or "none"
        raise ConfigError(
            f"--to {value!r} is not a time, an LSN or a restore point of {repo} (latest "
            f"marks: {known}); write a time as 2026-12-07T17:00:00+00:00, an LSN as "
            "0/3000028, or `latest`")
    return Target("name", mark.name, lsn=parse_lsn(mark.lsn), time=_parse_time(mark.time))


# ------------------------------------------------------------------------ the archive


@dataclass
class ArchiveEnd:
    """How far the archived WAL reaches from a starting segment, without a gap."""

    timeline: int
    first: str | None  # first segment of the run (None: nothing archived there)
    last: str | None  # last segment of the run
    end_lsn: int  # end of the last segment of the run
    missing: str | None = None  # the first segment missing after the run, when later ones exist
    last_record_lsn: int | None = None
    last_commit_time: datetime | None = None

    def to_dict(self) -> dict:
        return {"timeline": self.timeline, "first": self.first, "last": self.last,
                "end_lsn": format_lsn(self.end_lsn), "missing": self.missing,
                "last_record_lsn": (format_lsn(self.last_record_lsn)
                                    if self.last_record_lsn is not None else None),
                "last_commit_time": (self.last_commit_time.isoformat()
                                     if self.last_commit_time else None)}


def contiguous(segments: list[Segment], timeline: int, start_segno: int,
               segment_size: int, *, also: range = range(0)) -> ArchiveEnd:
    """The run of archived segments of `timeline` from `start_segno` on (pure); `also`:
    segment numbers present elsewhere (a backup's own WAL)."""
    have = {s.segno for s in segments if s.timeline == timeline} | set(also)
    if start_segno not in have:
        later = [n for n in have if n > start_segno]
        return ArchiveEnd(timeline, None, None, start_segno * segment_size,
                          missing=segment_name(timeline, start_segno, segment_size) if later else None)
    segno = start_segno
    while segno + 1 in have:
        segno += 1
    later = any(n > segno + 1 for n in have)
    return ArchiveEnd(timeline, segment_name(timeline, start_segno, segment_size),
                      segment_name(timeline, segno, segment_size), (segno + 1) * segment_size,
                      missing=segment_name(timeline, segno + 1, segment_size) if later else None)


_RECORD_LSN = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")
_COMMIT = re.compile(r"desc: (?:COMMIT|ABORT)(?:_PREPARED)? "
                     r"(?:\d+: )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def waldump(wal_dir: Path, timeline: int, start_lsn: int, *, quiet: bool = False,
            end_lsn: int | None = None):
    """pg_waldump over the archive from `start_lsn` (times in UTC)."""
    from dmdb.server.embedded import pg_tool

    args = [str(pg_tool("pg_waldump")), "--path", str(wal_dir), "--timeline", str(timeline),
            "--start", format_lsn(start_lsn)]
    if end_lsn is not None:
        args += ["--end", format_lsn(end_lsn)]
    if quiet:
        args.append("--quiet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["TZ"] = "UTC"
    return run(args, env=env)


def scan_end(end: ArchiveEnd, wal_dir: Path, segment_size: int, *,
             not_before: int = 0) -> ArchiveEnd:
    """The last record and the last commit of the run, read by pg_waldump from its last
    segment backwards (down to `not_before`) until a commit is found."""
    if end.last is None:
        return end
    segno = end.end_lsn // segment_size - 1
    first = not_before // segment_size
    while segno >= first:
        if not (wal_dir / segment_name(end.timeline, segno, segment_size)).exists():
            segno -= 1  # only inside the backup (its own pg_wal), not in the archive
            continue
        # --end: past the run's end pg_waldump would wait 5 s for a file that is not there.
        done = waldump(wal_dir, end.timeline, max(segno * segment_size, not_before),
                       end_lsn=(segno + 1) * segment_size)
        text = done.stdout
        if end.last_record_lsn is None:
            found = _RECORD_LSN.match(text, text.rfind("lsn: ")) if "lsn: " in text else None
            if found:
                end.last_record_lsn = parse_lsn(found.group(1))
        commits = _COMMIT.findall(text)
        if commits:
            end.last_commit_time = datetime.fromisoformat(commits[-1]).replace(tzinfo=timezone.utc)
            return end
        segno -= 1
    return end


# ------------------------------------------------------------------------------- plan


@dataclass
class RestorePlan:
    repo: str
    target: Target
    chain: list[str]  # full backup first, then incrementals
    timeline: int
    consistent_lsn: str  # the backup's stop: recovery is consistent from here
    consistent_time: str
    wal_from: str  # the first segment recovery needs (the backup's start)
    wal_to: str | None  # the last archived segment it may read
    oldest: dict  # oldest restorable point: backup, lsn, time
    newest: dict  # newest archived point: lsn, time (last commit), segment
    recovery_settings: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["target"] = self.target.to_dict()
        return data


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _seconds(iso: str) -> str:
    return datetime.fromisoformat(iso).isoformat(timespec="seconds")


def _range_text(oldest: dict, newest: dict) -> str:
    start = f"{_seconds(oldest['time'])} (LSN {oldest['lsn']}, backup {oldest['backup']})"
    last = newest.get("time")
    end = (f"{last} (the last archived commit; WAL to LSN {newest['lsn']})" if last
           else f"LSN {newest['lsn']} (no commit archived after the backup)")
    return f"the archive restores from {start} to {end}"


def plan(catalog: Catalog, segments: list[Segment], target: Target, *, repo: str,
         wal_dir: Path | None = None) -> RestorePlan:
    """Choose the backup chain and check the target against the archive's range. With
    `wal_dir`, pg_waldump reads the newest archived segment for the last commit's time."""
    size = catalog.segment_size
    backups = [b for b in catalog.backups if _chain_ok(catalog, b)]
    if not backups:
        raise DmdbError(f"no base backup in {repo}; take one (`dmdb backup base`)")
    by_stop = sorted(backups, key=lambda b: parse_lsn(b.stop_lsn))
    newest_backup, oldest_b = by_stop[-1], by_stop[0]
    oldest = {"backup": oldest_b.name, "lsn": oldest_b.stop_lsn, "time": oldest_b.stop_time}
    # How far WAL reaches: from the newest backup's start (its own WAL is inside it too).
    reach = _reach(segments, newest_backup, size)
    if wal_dir is not None and target.kind in ("time", "lsn", "latest"):
        reach = scan_end(reach, wal_dir, size, not_before=parse_lsn(newest_backup.start_lsn))
    end_lsn = reach.end_lsn
    newest = {"lsn": format_lsn(reach.last_record_lsn or end_lsn),
              "time": reach.last_commit_time.isoformat() if reach.last_commit_time else None,
              "segment": reach.last}
    where = _range_text(oldest, newest)

    need = None  # the last segment recovery must read to reach the target
    if target.kind == "latest":
        chosen = newest_backup
    elif target.kind in ("lsn", "name"):
        fits = [b for b in by_stop if parse_lsn(b.stop_lsn) <= target.lsn]
        if not fits:
            raise ConfigError(f"--to {target.text} is before the oldest restorable point: {where}")
        chosen = fits[-1]
        # An LSN: the first record at or after it must be read (recovery stops before
        # it); a name: its restore point record, which ends at the mark's LSN.
        limit = reach.last_record_lsn if target.kind == "lsn" and reach.last_record_lsn else end_lsn
        if target.lsn > limit:
            raise ConfigError(f"--to {target.text} (LSN {format_lsn(target.lsn)}) is past the "
                              f"archived WAL: {where}; wait for the archiver (archive_timeout), "
                              "or restore --to latest")
        need = segment_number(target.lsn if target.kind == "lsn" else target.lsn - 1, size)
    else:
        fits = [b for b in by_stop if _when(b.stop_time) <= target.time]
        if not fits:
            raise ConfigError(f"--to {target.text} is before the oldest restorable point: {where}")
        chosen = fits[-1]
        if reach.last_commit_time is None or target.time >= reach.last_commit_time:
            raise ConfigError(
                f"--to {target.text} is not before the newest archived commit: {where}; "
                "PostgreSQL stops at the first commit after the target, and none is archived "
                "yet: restore --to latest for everything archived")
    # The chosen backup's WAL must be there, without a gap, as far as the target needs.
    run_ = _reach(segments, chosen, size)
    if run_.end_lsn < reach.end_lsn and target.kind in ("time", "latest"):
        # A gap after an older backup: fine if a commit after the target comes before it.
        if wal_dir is not None and target.kind == "time":
            run_ = scan_end(run_, wal_dir, size, not_before=parse_lsn(chosen.start_lsn))
        if target.kind == "latest" or run_.last_commit_time is None or (
                target.time >= run_.last_commit_time):
            need = segment_number(reach.end_lsn - 1, size)
    if need is not None and run_.end_lsn // size - 1 < need:
        gap = segment_name(chosen.timeline, run_.end_lsn // size, size)
        raise DmdbError(f"WAL segment {gap} is missing from the archive: recovery from backup "
                        f"{chosen.name} cannot pass it to reach {target.text}; "
                        "`dmdb backup verify` lists what is missing")
    start = segment_number(parse_lsn(chosen.start_lsn), size)
    return RestorePlan(repo, target, [b.name for b in catalog.chain(chosen)], chosen.timeline,
                       chosen.stop_lsn, chosen.stop_time,
                       segment_name(chosen.timeline, start, size), run_.last, oldest, newest,
                       _recovery_settings(target))


def _reach(segments: list[Segment], backup: BackupEntry, size: int) -> ArchiveEnd:
    """The WAL from `backup`'s start on: the archive's, and the backup's own."""
    start = segment_number(parse_lsn(backup.start_lsn), size)
    stop = segment_number(parse_lsn(backup.stop_lsn), size)
    return contiguous(segments, backup.timeline, start, size, also=range(start, stop + 1))


def _chain_ok(catalog: Catalog, entry: BackupEntry) -> bool:
    try:
        catalog.chain(entry)
        return True
    except DmdbError:
        return False


def _recovery_settings(target: Target) -> dict[str, str]:
    out: dict[str, str] = {}
    if target.kind == "time":
        out["recovery_target_time"] = target.text
    elif target.kind == "lsn":
        # Everything committed before the LSN, nothing at or after it.
        out["recovery_target_lsn"] = target.text
        out["recovery_target_inclusive"] = "off"
    elif target.kind == "name":
        out["recovery_target_name"] = target.text
    if target.kind != "latest":
        out["recovery_target_action"] = "promote"
    return out


# ------------------------------------------------------------------------------ doing


def conf_literal(value: str) -> str:
    """A postgresql.conf string: single quotes doubled, backslashes escaped."""
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ConfigError(f"{value!r} holds a control character; it cannot go into "
                          "postgresql.auto.conf")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def restore_command(wal_dir: Path) -> str:
    """cp from the archive, the directory quoted for /bin/sh and its `%` doubled (the
    server expands %f, %p and %%): a repository path cannot inject a command."""
    return f"cp {shlex.quote(str(wal_dir)).replace('%', '%%')}/%f %p"


class RestoredServer(EmbeddedServer):
    """A restored cluster laid out as an embedded home, on a port of its own."""

    _what = "the restored PostgreSQL"
    _short_run_prefix = "dmdb-x-"

    def __init__(self, home: Path, port: int, bin_dir: Path | None = None):
        super().__init__(home)
        self._port = port
        self._bin = bin_dir  # another major's server binaries, when the backup's is not 18

    def _tool(self, name: str) -> str:
        return str(self._bin / name) if self._bin is not None else super()._tool(name)

    def prepare_dirs(self) -> None:
        self._prepare()

    def launch(self) -> None:
        """pg_ctl start without waiting: recovery may run long; the caller watches it."""
        sock = self.socket_dir
        _private_dir(sock, self._owner())
        options = (f"-k {shlex.quote(str(sock))} -c listen_addresses='' "
                   f"-c unix_socket_permissions=0700 -p {self._port}")
        self._run([self._tool("pg_ctl"), "-D", str(self.pg_data), "-l", str(self.server_log),
                   "-W", "-o", options, "start"], f"starting {self._what}")

    def log_errors(self) -> list[str]:
        try:
            lines = self.server_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [ln for ln in lines if "FATAL:" in ln or "PANIC:" in ln]


def _server_bin(catalog: Catalog, the_plan: RestorePlan) -> Path | None:
    """The bin directory of the backup's major version when the embedded package's is
    another (a backup of a remote PostgreSQL 16 or 17 restores with that major's server)."""
    from dmdb.server import tools
    from dmdb.server.embedded import pg_tool

    version = catalog.backup(the_plan.chain[-1]).server_version
    major = int(version.split(".")[0])
    own = tools.candidates("pg_ctl")
    mine = os.path.realpath(pg_tool("pg_ctl"))
    embedded = next((t for t in own if os.path.realpath(t.path) == mine), None)
    if embedded is not None and embedded.major == major:
        return None
    try:
        found = tools.find("pg_ctl", major, exact=True)
    except DmdbError:
        raise DmdbError(f"the backup is of PostgreSQL {version}: restoring it needs that "
                        f"major's server binaries (pg_ctl, postgres); install postgresql-"
                        f"{major} or set DMDB_PG_BINDIR to its bin directory") from None
    return Path(found.path).parent


def _zombie(pid: int) -> bool:
    """A postmaster that died but was not reaped (pg_ctl's double fork leaves it to PID 1,
    which in a container may never reap): dead, though signal 0 still finds it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RestoreResult:
    plan: RestorePlan
    into_dir: str
    data_dir: str
    dry_run: bool = False
    started: bool = False
    port: int | None = None
    socket_dir: str | None = None
    url: str | None = None
    pid: int | None = None
    replayed_to_lsn: str | None = None  # pg_last_wal_replay_lsn() after promotion
    last_transaction_time: str | None = None  # pg_last_xact_replay_timestamp()
    seconds: float = 0.0
    stop_with: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["plan"] = self.plan.to_dict()
        return data


def _extract(backup_dir: Path, dest: Path, progress: Progress | None, what: str) -> None:
    extra = [p.name for p in backup_dir.glob("*.tar*") if p.name.split(".")[0].isdigit()]
    if extra:
        raise DmdbError(f"backup {backup_dir.name} has tablespaces ({', '.join(extra)}); "
                        "dmdb restores clusters without tablespaces only")
    base = next(iter(sorted(backup_dir.glob("base.tar*"))), backup_dir / "base.tar.gz")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    total, shown = base.stat().st_size, 0
    with open(base, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as archive:
        for member in archive:
            archive.extract(member, dest, filter="tar")
            if progress is not None and raw.tell() - shown >= 1 << 20:
                shown = raw.tell()
                progress(what, shown, total)
    if progress is not None:
        progress(what, total, total)
    (dest / "pg_wal").mkdir(mode=0o700, exist_ok=True)
    for wal in backup_dir.glob("pg_wal.tar*"):
        with tarfile.open(wal, "r:*") as archive:
            archive.extractall(dest / "pg_wal", filter="tar")
    shutil.copyfile(backup_dir / "backup_manifest", dest / "backup_manifest")


def _chown_tree(path: Path, owner: tuple[int, int] | None) -> None:
    for root, _dirs, files in os.walk(path):
        if owner is not None:
            os.lchown(root, *owner)
        os.chmod(root, 0o700)
        for name in files:
            f = os.path.join(root, name)
            if owner is not None:
                os.lchown(f, *owner)
            if not os.path.islink(f):
                os.chmod(f, 0o600)


def _check_into(into: Path, repo: Repository, live_home: Path | None) -> None:
    into = into.absolute()
    real = Path(os.path.realpath(into))
    for other, what in ((repo.real, "the backup repository"), (live_home, "the live server's home")):
        if other is None:
            continue
        other = Path(os.path.realpath(other))
        if other == repo.real and repo.scratch_dir in real.parents:
            continue  # restore --check's scratch copies
        if real == other or other in real.parents or real in other.parents:
            raise ConfigError(f"--into-dir {into} overlaps {what} ({other}); choose a "
                              "directory of its own")
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise ConfigError(f"--into-dir {into} exists and is not empty; give a new directory")


def restore_to(repo: Repository, target: Target | str, into: Path, *, start: bool = True,
               dry_run: bool = False, live_home: Path | None = None,
               progress: Progress | None = None, dbname: str = DEFAULT_DBNAME) -> RestoreResult:
    """Restore the repository's backups to `target` into `into` (a new directory)."""
    started_at = time.monotonic()
    repo.require()
    into = Path(into).absolute()
    with repo.using():
        catalog = repo.read()
        if isinstance(target, str):
            target = parse_target(target, catalog, str(repo.path))
        the_plan = plan(catalog, repo.segments(catalog.segment_size), target,
                        repo=str(repo.path), wal_dir=repo.wal_dir)
        _check_into(into, repo, live_home)
        server = RestoredServer(into, free_port(), _server_bin(catalog, the_plan))
        result = RestoreResult(the_plan, str(into), str(server.data_dir), dry_run=dry_run)
        lines = {"restore_command": restore_command(repo.wal_dir), "archive_mode": "off",
                 **the_plan.recovery_settings}
        the_plan.recovery_settings = lines
        if dry_run:
            return result
        into.mkdir(mode=0o700, parents=True, exist_ok=True)
        server.prepare_dirs()
        if server.pg_data.exists():
            shutil.rmtree(server.pg_data)
        try:
            _materialise(repo, catalog, the_plan, server, progress)
        except BaseException:
            server.destroy()
            raise
    conf = ("\n# dmdb restore --to " + target.text.replace("\n", " ") + " from "
            + ", ".join(the_plan.chain) + "\n"
            + "".join(f"{k} = {conf_literal(v)}\n" for k, v in lines.items()))
    with open(server.pg_data / "postgresql.auto.conf", "a") as handle:
        handle.write(conf)
    (server.pg_data / "recovery.signal").touch()
    for stale in ("postmaster.pid", "postmaster.opts"):
        (server.pg_data / stale).unlink(missing_ok=True)
    _chown_tree(server.pg_data, server._owner())
    result.stop_with = f"DMDB_HOME={shlex.quote(str(into))} dmdb server stop"
    if start:
        _start_and_wait(server, result, progress, dbname)
    result.seconds = round(time.monotonic() - started_at, 2)
    return result


def _materialise(repo: Repository, catalog: Catalog, the_plan: RestorePlan,
                 server: RestoredServer, progress: Progress | None) -> None:
    if len(the_plan.chain) == 1:
        _extract(repo.backup_dir(the_plan.chain[0]), server.pg_data, progress, "extract")
        return
    scratch = server.server_dir / ".combine"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    try:
        parts = []
        for n, name in enumerate(the_plan.chain):
            part = scratch / f"{n:03d}"
            _extract(repo.backup_dir(name), part, progress, f"extract {name}")
            parts.append(str(part))
        if progress is not None:
            progress("combine", 0, 1)
        done = run([server._tool("pg_combinebackup"), "--no-sync", "-o", str(server.pg_data),
                    *parts])
        if done.returncode != 0:
            raise DmdbError(f"pg_combinebackup failed: {done.error_line()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _start_and_wait(server: RestoredServer, result: RestoreResult, progress: Progress | None,
                    dbname: str) -> None:
    import psycopg

    server.launch()
    target_lsn = result.plan.target.lsn
    while True:
        pm = server._postmaster()
        if pm is None or _zombie(pm[0]):
            time.sleep(0.3)
            pm = server._postmaster()
            if pm is None or _zombie(pm[0]):
                errors = server.log_errors()
                raise DmdbError(f"the restored server stopped during recovery: "
                                f"{errors[-1] if errors else 'see the log'} "
                                f"(log: {server.log_file}; data kept in {result.into_dir})")
        pid, port, sock = pm
        try:
            with psycopg.connect(host=sock, port=port, user=SUPERUSER, dbname="postgres",
                                 autocommit=True, connect_timeout=5) as conn:
                in_recovery, replayed = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").fetchone()
                if not in_recovery:
                    lsn, when = conn.execute(
                        "SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()"
                    ).fetchone()
                    result.started = True
                    result.port, result.socket_dir, result.pid = port, sock, pid
                    result.replayed_to_lsn = lsn
                    result.last_transaction_time = when.isoformat() if when else None
                    result.url = (f"postgresql://{SUPERUSER}@/{dbname}?host={sock}"
                                  f"&port={port}")
                    return
                if progress is not None and replayed:
                    done = parse_lsn(replayed)
                    progress("replay", done, max(target_lsn or done, done))
        except psycopg.OperationalError:
            pass  # not accepting connections yet (before consistency)
        time.sleep(0.3)
