"""`dmdb backup base`: a physical base backup (pg_basebackup) into the repository.

Tar format, gzip-compressed (the embedded build has no lz4/zstd), with its WAL streamed
into it (`-X stream`: each backup restores on its own) and a manifest (CRC32C per file)
that `backup verify` checks. `--incremental` (PostgreSQL 17+, summarize_wal = on) sends
only the blocks changed since the newest backup of the catalog, whose manifest it names;
a restore combines the chain with pg_combinebackup.

Crash-safe: the backup is written into `base/.partial-<name>`, renamed into place when
complete, and only then entered into the catalog. A backup killed at any instant leaves
nothing in the catalog; the next one clears what it left. The server side needs a role
that may replicate (superuser or REPLICATION) and a `replication` line in pg_hba.conf; a
managed service that refuses is named with its own point-in-time recovery.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dmdb.backup import providers
from dmdb.backup.process import run
from dmdb.backup.repository import (
    PARTIAL_PREFIX,
    BackupEntry,
    Catalog,
    Repository,
    private_tree,
    sync_dir,
)
from dmdb.backup.walnames import parse_lsn
from dmdb.config import Settings
from dmdb.db import connect, redact, resolve
from dmdb.errors import ConfigError, DmdbError
from dmdb.resources import query

# Client-side gzip at level 1: on the seeded 1.1M-event database (433 MB) 105 MB in
# 2.8 s, where level 6 takes 6.0 s for 92 MB and none 0.8 s for 472 MB (bench/bench_backup.py).
COMPRESSION = "gzip:1"


@dataclass
class ServerFacts:
    version: str
    version_num: int
    system_identifier: str | None
    segment_size: int
    summarize_wal: bool | None  # None before PostgreSQL 17
    may_replicate: bool
    role: str
    now: datetime
    provider: str | None = None

    @property
    def major(self) -> int:
        return self.version_num // 10000


@dataclass
class BaseBackupResult:
    repo: str
    backup: BackupEntry | None
    kind: str
    parent: str | None
    dry_run: bool = False
    command: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)  # left-overs of killed backups

    def to_dict(self) -> dict:
        data = asdict(self)
        data["backup"] = self.backup.to_dict() if self.backup else None
        return data




def server_facts(conn, settings: Settings) -> ServerFacts:
    import psycopg

    version, num, segment_size, summarize, may, role, now = conn.execute(
        query("backup_server_facts")).fetchone()
    try:
        sysid = str(conn.execute(
            "SELECT system_identifier FROM pg_control_system()").fetchone()[0])
    except psycopg.Error:  # not granted to every role everywhere; the manifest says it too
        sysid = None
    return ServerFacts(version, num, sysid, int(segment_size),
                       None if summarize is None else summarize == "on", bool(may), role, now,
                       providers.detect(settings, conn))


def refuse_replication(facts: ServerFacts, what: str) -> DmdbError:
    if facts.provider:
        return DmdbError(providers.explain(facts.provider, what))
    return DmdbError(
        f"{what} needs a role that may replicate, and {facts.role} may not: "
        f"ALTER ROLE {facts.role} REPLICATION (and a `replication` line for it in "
        "pg_hba.conf), or use `dmdb backup --out FILE` for a logical dump")


def _tool(name: str, major: int, settings: Settings) -> str:
    from dmdb.server import tools

    return tools.find(name, major, settings=settings).path


def _check_repo_cluster(catalog: Catalog, facts: ServerFacts, repo: Repository) -> None:
    if (catalog.system_identifier and facts.system_identifier
            and catalog.system_identifier != facts.system_identifier):
        raise DmdbError(
            f"the repository {repo.path} holds backups of another cluster (system identifier "
            f"{catalog.system_identifier}; this server's is {facts.system_identifier}); give "
            "this server its own --repo DIR")


def _name(catalog: Catalog, repo: Repository, now: datetime, kind: str) -> str:
    stem = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ("F" if kind == "full" else "I")
    name, n = stem, 1
    taken = {b.name for b in catalog.backups}
    while name in taken or repo.backup_dir(name).exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def clear_leftovers(repo: Repository, catalog: Catalog) -> list[str]:
    """Remove what killed backups left: `.partial-*` directories, and a complete one that
    never reached the catalog (killed between its rename and the catalog write). Call
    while holding `taking_backup`."""
    cleared = []
    if not repo.base_dir.is_dir():
        return cleared
    known = {b.name for b in catalog.backups}
    for entry in sorted(repo.base_dir.iterdir()):
        if entry.name.startswith(PARTIAL_PREFIX) or (entry.is_dir() and entry.name not in known):
            shutil.rmtree(entry, ignore_errors=True)
            cleared.append(entry.name)
    return cleared


def _manifest_range(directory: Path) -> tuple[int, str, str, str | None]:
    """(timeline, start LSN, end LSN, system identifier) from backup_manifest."""
    data = json.loads((directory / "backup_manifest").read_text())
    ranges = data["WAL-Ranges"]
    sysid = data.get("System-Identifier")
    return (int(ranges[-1]["Timeline"]), ranges[0]["Start-LSN"], ranges[-1]["End-LSN"],
            str(sysid) if sysid is not None else None)


_PROGRESS = re.compile(r"(\d+)/(\d+) kB \((\d+)%\)")


_COMPRESSION = re.compile(r"none|gzip(:[1-9])?")


def take(settings: Settings, repo_dir: Path | None = None, *, incremental: bool = False,
         label: str | None = None, dry_run: bool = False, compression: str = COMPRESSION,
         progress: Callable[[int, int], None] | None = None) -> BaseBackupResult:
    """Take a base backup of the configured server into the repository.

    `compression`: gzip:1 (default), gzip:N or none. `progress(done_kb, total_kb)` follows
    pg_basebackup's own estimate."""
    from dmdb.server.tools import tool_env

    if not _COMPRESSION.fullmatch(compression):
        raise ConfigError(f"--compress {compression!r}: gzip, gzip:1 .. gzip:9 or none (this "
                          "PostgreSQL build has no lz4 or zstd)")

    settings = resolve(settings.session())
    repo = Repository.for_settings(settings, repo_dir)
    if label is not None:
        from dmdb.files import refuse_control

        refuse_control(label, "--label")
        if len(label.encode()) > 1000:
            raise ConfigError("--label is longer than 1000 bytes; shorten it")
    with connect(settings, autocommit=True, session="dmdb backup base") as conn:
        facts = server_facts(conn, settings)
        if not facts.may_replicate:
            raise refuse_replication(facts, "a physical backup (pg_basebackup)")
        catalog = repo.read()
        _check_repo_cluster(catalog, facts, repo)
        kind = "incremental" if incremental else "full"
        parent = None
        if incremental:
            if facts.major < 17:
                raise ConfigError(f"--incremental needs PostgreSQL 17 or later; this server is "
                                  f"{facts.version}: take a full backup")
            if not facts.summarize_wal:
                raise ConfigError(
                    "--incremental needs summarize_wal = on on the server ("
                    + ("`dmdb backup wal on` sets it" if settings.embedded else
                       "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()")
                    + "), then a full backup to build on")
            if not catalog.backups:
                raise ConfigError(f"no backup in {repo.path} to build an incremental on; "
                                  "take a full one first (`dmdb backup base`)")
            parent = max(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn)).name
        name = _name(catalog, repo, facts.now, kind)
        label = label or f"dmdb {name}"
        final = repo.backup_dir(name)
        partial = repo.base_dir / f"{PARTIAL_PREFIX}{name}"
        args = [_tool("pg_basebackup", facts.major, settings), "-D", str(partial),
                "--format=tar", f"--compress={compression}", "--wal-method=stream",
                "--checkpoint=fast", "--label", label, "--progress", "--no-password",
                "--manifest-checksums=CRC32C"]
        if parent is not None:
            args.append(f"--incremental={repo.backup_dir(parent) / 'backup_manifest'}")
        if dry_run:
            return BaseBackupResult(str(repo.path), None, kind, parent, dry_run=True,
                                    command=args)
        repo.ensure()
        with repo.using(), repo.taking_backup():
            cleared = clear_leftovers(repo, repo.read())
            started = datetime.now(timezone.utc)
            start_time = conn.execute("SELECT clock_timestamp()").fetchone()[0]

            def on_line(line: str) -> None:
                m = _PROGRESS.search(line)
                if m and progress is not None:
                    progress(int(m.group(1)), int(m.group(2)))

            try:
                done = run(args, env=tool_env(settings, settings.dbname), on_line=on_line,
                           group=True)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            if done.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                line = redact(done.error_line(), settings)
                if "replication" in line.lower() and (
                        "permission" in line.lower() or "pg_hba" in line.lower()
                        or "must be" in line.lower()) and facts.provider:
                    raise DmdbError(providers.explain(facts.provider, "a physical backup"))
                if "summar" in line.lower():
                    line += ("; the WAL since the last backup was not summarized (summarize_wal "
                             "was off): take a full backup")
                raise DmdbError(f"pg_basebackup failed: {line}")
            stop_time = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            seconds = round((datetime.now(timezone.utc) - started).total_seconds(), 2)
            timeline, start_lsn, stop_lsn, sysid = _manifest_range(partial)
            private_tree(partial)
            size = sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())
            entry = BackupEntry(
                name=name, kind=kind, parent=parent, label=label, timeline=timeline,
                start_lsn=start_lsn, stop_lsn=stop_lsn, start_time=start_time.isoformat(),
                stop_time=stop_time.isoformat(), bytes=size, seconds=seconds,
                server_version=facts.version, compression=compression)
            os.rename(partial, final)
            sync_dir(repo.base_dir)
            with repo.updating() as catalog:
                catalog.system_identifier = (catalog.system_identifier or sysid
                                             or facts.system_identifier)
                catalog.segment_size = facts.segment_size
                catalog.backups.append(entry)
    return BaseBackupResult(str(repo.path), entry, kind, parent, cleared=cleared)
