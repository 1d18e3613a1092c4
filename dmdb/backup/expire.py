"""`dmdb backup expire --keep N --window DAYS`: retention of base backups and WAL.

Kept: the N newest full backups with the incrementals built on them (Barman's REDUNDANCY,
pgBackRest's repo-retention-full), and everything needed to restore to any moment of the
last DAYS days (Barman's RECOVERY WINDOW): the newest backup consistent before the
window's start and every later one. Either rule keeping a backup keeps it, and a kept
incremental keeps the backups it builds on. WAL older than the oldest kept backup's start
goes, as pg_archivecleanup removes it (segments and .backup files whose position precedes
that segment, whatever their timeline; .history files stay); so do restore points before
the oldest restorable moment, which no restore could reach. The plan is pure; `--dry-run`
prints it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dmdb.backup.repository import BackupEntry, Catalog, Repository
from dmdb.backup.walnames import SEGMENT, parse_lsn, segment_of
from dmdb.errors import ConfigError


@dataclass
class ExpirePlan:
    keep: list[str]
    remove: list[str]  # backups
    wal_before: str | None  # WAL files before this segment go
    wal_remove: list[str] = field(default_factory=list)
    marks_remove: list[str] = field(default_factory=list)
    oldest_restorable: dict | None = None  # backup, lsn, time

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExpireResult:
    repo: str
    plan: ExpirePlan
    dry_run: bool
    bytes_freed: int = 0

    def to_dict(self) -> dict:
        return {"repo": self.repo, "dry_run": self.dry_run, "bytes_freed": self.bytes_freed,
                **self.plan.to_dict()}


def plan_expire(catalog: Catalog, wal_files: list[str], *, keep: int | None,
                window_days: float | None, now: datetime) -> ExpirePlan:
    """Which backups, WAL files and restore points go (pure)."""
    if keep is None and window_days is None:
        raise ConfigError("say what to keep: --keep N (full backups) and/or --window DAYS")
    if keep is not None and keep < 1:
        raise ConfigError("--keep must be 1 or more: the newest full backup always stays")
    if window_days is not None and window_days < 0:
        raise ConfigError("--window must not be negative")
    by_stop = sorted(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn))
    if not by_stop:
        return ExpirePlan([], [], None)
    kept: set[str] = set()
    fulls = [b for b in by_stop if b.kind == "full"]
    if keep is not None:
        chosen = {b.name for b in fulls[-keep:]}
        for b in by_stop:  # the chosen fulls and whatever builds on them
            if _root(catalog, b) in chosen:
                kept.add(b.name)
    if window_days is not None:
        start = now - timedelta(days=window_days)
        before = [b for b in by_stop if datetime.fromisoformat(b.stop_time) <= start]
        first = before[-1] if before else by_stop[0]
        kept.update(b.name for b in by_stop if parse_lsn(b.stop_lsn) >= parse_lsn(first.stop_lsn))
    kept.add(by_stop[-1].name)  # never the newest
    for name in list(kept):  # a kept incremental keeps its chain
        kept.update(b.name for b in catalog.chain(catalog.backup(name)))
    keep_list = [b for b in by_stop if b.name in kept]
    oldest = min(keep_list, key=lambda b: parse_lsn(b.start_lsn))
    cut = segment_of(oldest.timeline, parse_lsn(oldest.start_lsn), catalog.segment_size)
    restorable = min(keep_list, key=lambda b: parse_lsn(b.stop_lsn))
    wal_remove = sorted(f for f in wal_files if _precedes(f, cut))
    marks = [m.name for m in catalog.marks if parse_lsn(m.lsn) < parse_lsn(restorable.stop_lsn)]
    return ExpirePlan([b.name for b in keep_list], [b.name for b in by_stop if b.name not in kept],
                      cut, wal_remove, marks,
                      {"backup": restorable.name, "lsn": restorable.stop_lsn,
                       "time": restorable.stop_time})


def _root(catalog: Catalog, entry: BackupEntry) -> str:
    return catalog.chain(entry)[0].name


def _precedes(name: str, cut: str) -> bool:
    """pg_archivecleanup's rule: a WAL segment (or its .partial, or a .backup file) whose
    position, timeline ignored, comes before `cut`'s."""
    stem = name.split(".")[0]
    if not SEGMENT.fullmatch(stem) or name.endswith(".history"):
        return False
    return stem[8:] < cut[8:]


def expire(repo: Repository, *, keep: int | None = None, window_days: float | None = None,
           dry_run: bool = False, now: datetime | None = None) -> ExpireResult:
    repo.require()
    now = now or datetime.now(timezone.utc)
    with repo.removing():
        catalog = repo.read()
        try:
            wal_files = os.listdir(repo.wal_dir)
        except FileNotFoundError:
            wal_files = []
        the_plan = plan_expire(catalog, wal_files, keep=keep, window_days=window_days, now=now)
        result = ExpireResult(str(repo.path), the_plan, dry_run)
        if dry_run:
            result.bytes_freed = sum(_size(repo.backup_dir(n)) for n in the_plan.remove) + sum(
                _size(repo.wal_dir / f) for f in the_plan.wal_remove)
            return result
        # The catalog first: a crash after it leaves files nobody lists (the next base
        # backup clears such directories), never a listed backup with files missing.
        with repo.updating() as current:
            gone = set(the_plan.remove)
            current.backups = [b for b in current.backups if b.name not in gone]
            current.marks = [m for m in current.marks if m.name not in the_plan.marks_remove]
        for name in the_plan.remove:
            result.bytes_freed += _size(repo.backup_dir(name))
            shutil.rmtree(repo.backup_dir(name), ignore_errors=True)
        for name in the_plan.wal_remove:
            path = repo.wal_dir / name
            result.bytes_freed += _size(path)
            path.unlink(missing_ok=True)
    return result


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
