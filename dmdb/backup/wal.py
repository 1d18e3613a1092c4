"""Continuous WAL archiving into the repository, and named restore points.

`dmdb backup wal on|off` — the embedded server, which dmdb owns: `archive_library =
'basic_archive'` writing into `<repo>/wal` (no shell involved; it refuses to overwrite a
segment with different content), `archive_timeout` (default 60 s) bounding how much
committed work a lost disk can take with it, `summarize_wal = on` for incremental
backups. archive_mode needs a restart: dmdb restarts the embedded server and says so.
A segment is then forced out and the archiver's answer awaited, so `on` proves it works.

A remote, self-managed server is not dmdb's to reconfigure: `dmdb backup wal service`
renders a systemd unit running pg_receivewal (replication slot `dmdb_wal`, synchronous
flushes) into the same `<repo>/wal`. A managed service keeps its own archive (its PITR).

`dmdb backup mark NAME` — pg_create_restore_point, recorded in the catalog (its LSN and
time) so that `restore --to NAME` can choose a backup and check the range.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from dmdb.backup import providers
from dmdb.backup.repository import Mark, Repository
from dmdb.backup.walnames import is_lsn, parse_segment
from dmdb.config import Settings, duration_ms
from dmdb.db import connect, resolve
from dmdb.errors import ConfigError, DmdbError
from dmdb.resources import query

DEFAULT_ARCHIVE_TIMEOUT = "60s"
SLOT = "dmdb_wal"
SERVICE_NAME = "dmdb-wal-receive.service"
# The settings `wal on` owns (ALTER SYSTEM, postgresql.auto.conf); `off` resets them.
ARCHIVE_SETTINGS = ("archive_mode", "archive_library", "basic_archive.archive_directory",
                    "archive_timeout", "archive_command")


def _setting_name(name: str):
    from psycopg import sql

    return sql.SQL(".").join(sql.Identifier(part) for part in name.split("."))


@dataclass
class WalChange:
    repo: str
    action: str  # "on" or "off"
    statements: list[str]
    restart: bool  # archive_mode changes only with a restart
    dry_run: bool = False
    restarted: bool = False
    archiving: str | None = None  # after `on`: what the archiver did with a forced segment
    cleared: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _require_embedded(settings: Settings, what: str) -> None:
    if settings.embedded:
        return
    provider = providers.detect(settings)
    if provider:
        raise DmdbError(providers.explain(provider, what))
    raise ConfigError(
        f"{what}: dmdb configures archiving only on its embedded server; for "
        f"{settings.host} stream WAL into the repository with pg_receivewal "
        "(`dmdb backup wal service` renders its systemd unit), or set the server's "
        "archive_library / archive_command yourself")


def _current(conn, names) -> dict[str, str | None]:
    return {n: conn.execute("SELECT current_setting(%s, true)", (n,)).fetchone()[0]
            for n in names}


def _restart(settings: Settings) -> None:
    from dmdb.server.embedded import EmbeddedServer

    server = EmbeddedServer(Path(settings.home))
    server.stop()
    server.start()


def clear_archtemp(repo: Repository) -> list[str]:
    """basic_archive's temporary files left by a crash mid-copy (`archtemp*`); call only
    while no archiver writes (the server stopped or just restarted)."""
    cleared = []
    try:
        names = os.listdir(repo.wal_dir)
    except FileNotFoundError:
        return cleared
    for name in names:
        if name.startswith("archtemp"):
            (repo.wal_dir / name).unlink(missing_ok=True)
            cleared.append(name)
    return cleared


def _prove(conn, repo: Repository, wait: float = 15.0) -> str:
    """Write a WAL record, switch segments and wait for the archiver's verdict."""
    before = conn.execute("SELECT archived_count, failed_count FROM pg_stat_archiver").fetchone()
    conn.execute("SELECT pg_logical_emit_message(false, 'dmdb', 'backup wal on')")
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if (repo.wal_dir / segment).exists():
            return f"archived {segment} into {repo.wal_dir}"
        archived, failed = conn.execute(
            "SELECT archived_count, failed_count FROM pg_stat_archiver").fetchone()
        if failed > before[1] and archived == before[0]:
            return (f"FAILING: the archiver could not archive {segment} "
                    "(see the server log, `dmdb server status`)")
        time.sleep(0.2)
    return f"not yet archived: {segment} (the archiver is slow or failing; see the server log)"


def wal_on(settings: Settings, repo_dir: Path | None = None, *,
           archive_timeout: str = DEFAULT_ARCHIVE_TIMEOUT, dry_run: bool = False) -> WalChange:
    from psycopg import sql

    _require_embedded(settings, "WAL archiving")
    ms = duration_ms(archive_timeout, "--archive-timeout", example="60s")
    if ms < 1000:
        raise ConfigError("--archive-timeout below 1s would switch (and archive) a 16 MB "
                          "segment every time; choose 1s or more (default 60s)")
    settings = resolve(settings)
    repo = Repository.for_settings(settings, repo_dir)
    wal_dir = repo.planned_wal_dir()
    wanted = {"archive_mode": "on", "archive_library": "basic_archive",
              "basic_archive.archive_directory": str(wal_dir),
              "archive_timeout": f"{int(ms // 1000)}s", "summarize_wal": "on"}
    with connect(settings, autocommit=True) as conn:
        current = _current(conn, [*wanted, "archive_command"])
        current["archive_timeout"] = conn.execute(  # in seconds, whatever unit it was set in
            "SELECT setting || 's' FROM pg_settings WHERE name = 'archive_timeout'").fetchone()[0]
        changes = {k: v for k, v in wanted.items() if current.get(k) != v}
        statements = [sql.SQL("ALTER SYSTEM SET {} = {}").format(_setting_name(k), sql.Literal(v))
                      for k, v in changes.items()]
        if current.get("archive_command") not in (None, "", "(disabled)"):
            statements.append(sql.SQL("ALTER SYSTEM RESET archive_command"))
        restart = current["archive_mode"] != "on"
        texts = [s.as_string(conn) for s in statements]
        result = WalChange(str(repo.path), "on", texts, restart, dry_run=dry_run)
        if dry_run:
            return result
        repo.ensure()
        for statement in statements:
            conn.execute(statement)
        if not restart:
            conn.execute("SELECT pg_reload_conf()")
    if restart:
        _restart(settings)
        result.restarted = True
        result.cleared = clear_archtemp(repo)
    with connect(settings, autocommit=True) as conn:
        result.archiving = _prove(conn, repo)
    return result


def wal_off(settings: Settings, repo_dir: Path | None = None, *,
            dry_run: bool = False) -> WalChange:
    from psycopg import sql

    _require_embedded(settings, "WAL archiving")
    settings = resolve(settings)
    repo = Repository.for_settings(settings, repo_dir)
    with connect(settings, autocommit=True) as conn:
        current = _current(conn, ARCHIVE_SETTINGS)
        statements = [sql.SQL("ALTER SYSTEM RESET {}").format(_setting_name(n))
                      for n in ARCHIVE_SETTINGS if n != "archive_command"]
        texts = [s.as_string(conn) for s in statements]
        restart = current["archive_mode"] not in (None, "off")
        result = WalChange(str(repo.path), "off", texts, restart, dry_run=dry_run)
        if dry_run:
            return result
        for statement in statements:
            conn.execute(statement)
        if not restart:
            conn.execute("SELECT pg_reload_conf()")
    if restart:
        _restart(settings)
        result.restarted = True
    return result


# ------------------------------------------------------------------------------ status


@dataclass
class WalStatus:
    repo: str
    embedded: bool
    archive_mode: str | None
    archive_library: str | None
    archive_directory: str | None
    archive_timeout_seconds: int | None
    summarize_wal: str | None
    into_repository: bool  # the server archives into this repository
    archived_count: int | None = None
    failed_count: int | None = None
    last_archived_wal: str | None = None
    last_archived_time: datetime | None = None
    last_failed_wal: str | None = None
    last_failed_time: datetime | None = None
    failing: bool = False
    current_wal: str | None = None
    newest_in_repository: str | None = None
    newest_in_repository_time: datetime | None = None
    segments_behind: int | None = None
    receiver_slot: dict | None = None  # pg_receivewal's slot, for a remote server
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)




def status(settings: Settings, repo_dir: Path | None = None) -> WalStatus:
    from datetime import timezone

    embedded = settings.embedded
    settings = resolve(settings)
    repo = Repository.for_settings(settings, repo_dir)
    with connect(settings, autocommit=True) as conn:
        (mode, library, directory, timeout, summarize, archived, failed, last_wal, last_time,
         failed_wal, failed_time, failing, current) = conn.execute(
            query("backup_wal_status")).fetchone()
        slot = None
        if not embedded:
            row = conn.execute(
                "SELECT active, restart_lsn::text, wal_status FROM pg_replication_slots "
                "WHERE slot_name = %s", (SLOT,)).fetchone()
            if row:
                slot = {"slot": SLOT, "active": row[0], "restart_lsn": row[1], "wal_status": row[2]}
    into = bool(directory) and Path(directory) == repo.wal_dir and library == "basic_archive"
    result = WalStatus(str(repo.path), embedded, mode, library, directory, timeout,
                       summarize, into, archived, failed, last_wal, last_time, failed_wal,
                       failed_time, bool(failing and mode != "off"), current, receiver_slot=slot)
    segments = repo.segments()
    if segments:
        newest = segments[-1]
        result.newest_in_repository = newest.name
        mtime = (repo.wal_dir / newest.name).stat().st_mtime
        result.newest_in_repository_time = datetime.fromtimestamp(mtime, timezone.utc)
        current_seg = parse_segment(current) if current else None
        if current_seg is not None:
            result.segments_behind = max(0, current_seg.segno - newest.segno - 1)
    if mode == "off":
        result.notes.append("archive_mode is off: nothing is archived "
                            + ("(`dmdb backup wal on`)" if embedded
                               else "by the server (pg_receivewal may still stream)"))
    elif embedded and not into:
        result.notes.append(f"the server archives elsewhere ({library or 'archive_command'}"
                            f" {directory or ''}), not into {repo.wal_dir}")
    if not embedded and slot is None:
        result.notes.append(f"no replication slot {SLOT}: pg_receivewal is not set up "
                            "(`dmdb backup wal service`)")
    return result


# ----------------------------------------------------------------------- restore points

_MARK_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,63}")


def check_mark_name(name: str) -> str:
    """A name `restore --to NAME` can tell from a time or an LSN; PostgreSQL allows 63 bytes."""
    if not _MARK_NAME.fullmatch(name) or len(name.encode()) > 63:
        raise ConfigError(f"restore point name {name!r} must be 1 to 63 bytes without control "
                          "characters")
    if name == "latest" or is_lsn(name) or _looks_like_time(name):
        raise ConfigError(f"restore point name {name!r} reads as a time, an LSN or `latest` "
                          "to `restore --to`; choose a name such as before-migration-0012")
    return name


def _looks_like_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


@dataclass
class MarkResult:
    repo: str
    mark: Mark | None
    switched: str | None = None  # the segment switched out for archiving, with --switch
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"repo": self.repo, "mark": self.mark.to_dict() if self.mark else None,
                "switched": self.switched, "dry_run": self.dry_run}


def mark(settings: Settings, name: str, repo_dir: Path | None = None, *, switch: bool = False,
         dry_run: bool = False) -> MarkResult:
    import psycopg

    check_mark_name(name)
    settings = resolve(settings)
    repo = Repository.for_settings(settings, repo_dir).require()
    if repo.read().mark(name) is not None:
        raise ConfigError(f"the catalog of {repo.path} already has a restore point {name!r} "
                          "(a restore stops at the first of a name); choose another name")
    if dry_run:
        return MarkResult(str(repo.path), None, dry_run=True)
    with connect(settings, autocommit=True) as conn:
        try:
            lsn, when, walfile = conn.execute(
                "SELECT p, clock_timestamp(), pg_walfile_name(p) "
                "FROM pg_create_restore_point(%s) AS p", (name,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            provider = providers.detect(settings, conn)
            if provider:
                raise DmdbError(providers.explain(provider, "a named restore point")) from None
            raise DmdbError("pg_create_restore_point needs a superuser, or GRANT EXECUTE ON "
                            "FUNCTION pg_create_restore_point(text) TO this role") from None
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise DmdbError(f"cannot create a restore point: {exc.diag.message_primary}; "
                            "wal_level must be replica or logical") from None
        switched = None
        if switch:
            switched = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    entry = Mark(name, str(lsn), when.isoformat(), int(walfile[:8], 16))
    with repo.updating() as catalog:
        catalog.marks.append(entry)
    return MarkResult(str(repo.path), entry, switched)


# --------------------------------------------------------------------- pg_receivewal unit


@dataclass
class ServiceFiles:
    service: str
    service_name: str
    command: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _conninfo_value(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9_./:@,-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_service(settings: Settings, repo_dir: Path | None = None, *,
                   user: str | None = None, env_file: str | None = None,
                   pg_receivewal: str | None = None) -> ServiceFiles:
    """The systemd unit that streams a remote server's WAL into `<repo>/wal`. No password in
    it: libpq reads PGPASSWORD from EnvironmentFile= or the user's ~/.pgpass."""
    from dmdb.files import refuse_control
    from dmdb.partitions.cron import systemd_path, systemd_user, systemd_word
    from dmdb.resources import render_template
    from dmdb.server import tools

    if settings.embedded:
        raise ConfigError("the embedded server archives through basic_archive: run "
                          "`dmdb backup wal on`; the service is for a remote server "
                          "(DATABASE_URL / DB_HOST)")
    provider = providers.detect(settings)
    if provider:
        raise DmdbError(providers.explain(provider, "streaming WAL out (pg_receivewal)"))
    repo = Repository.for_settings(settings, repo_dir)
    tool = pg_receivewal or tools.find("pg_receivewal", settings=settings).path
    refuse_control(tool, "--pg-receivewal")
    if not tool.startswith("/"):
        raise ConfigError(f"--pg-receivewal {tool!r} must be an absolute path")
    info = settings.conninfo()
    info.pop("password", None)
    info.pop("dbname", None)
    info["application_name"] = "dmdb_wal_receive"
    conninfo = " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in info.items()
                        if v is not None)
    refuse_control(conninfo, "the connection settings")
    wal_dir = str(repo.path / "wal")
    common = ["--slot", SLOT, "--no-password", "--dbname", conninfo]
    create = [tool, "--create-slot", "--if-not-exists", *common]
    receive = [tool, "--directory", wal_dir, "--synchronous", *common]
    context = {
        "service_name": SERVICE_NAME, "host": str(settings.host).replace("%", "%%"),
        "wal_dir": wal_dir.replace("%", "%%"), "slot": SLOT,
        "user": systemd_user(user) if user else None,
        "env_file": systemd_path(env_file, "--env-file") if env_file else None,
        "exec_start_pre": " ".join(systemd_word(w, "a command word") for w in create),
        "exec_start": " ".join(systemd_word(w, "a command word") for w in receive),
    }
    return ServiceFiles(render_template("backup_wal_receive.service.j2", **context),
                        SERVICE_NAME, receive)
