"""`dmdb backup list`, and the repository's state as `dmdb monitor` reads it: the catalog
and the archive directory only — no server is reached, none is started."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dmdb.backup.repository import BackupEntry, Mark, Repository
from dmdb.backup.walnames import parse_lsn
from dmdb.config import Settings


@dataclass
class Listing:
    repo: str
    exists: bool
    system_identifier: str | None
    backups: list[BackupEntry]
    marks: list[Mark]
    wal_first: str | None
    wal_last: str | None
    wal_segments: int
    wal_bytes: int
    last_verification: dict | None
    last_check: dict | None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["backups"] = [b.to_dict() for b in self.backups]
        data["marks"] = [m.to_dict() for m in self.marks]
        return data


def listing(repo: Repository) -> Listing:
    catalog = repo.read()
    segments = repo.segments(catalog.segment_size)
    size = sum((repo.wal_dir / s.name).stat().st_size for s in segments
               if (repo.wal_dir / s.name).exists())
    return Listing(str(repo.path), repo.exists(), catalog.system_identifier,
                   sorted(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn)),
                   catalog.marks, segments[0].name if segments else None,
                   segments[-1].name if segments else None, len(segments), size,
                   catalog.verifications[-1] if catalog.verifications else None,
                   catalog.checks[-1] if catalog.checks else None)


@dataclass
class RepositoryState:
    """What the monitor judges: ages in seconds (None: never)."""

    repo: str
    exists: bool
    backups: int = 0
    newest_backup: str | None = None
    newest_backup_age_seconds: float | None = None
    newest_check_ok_age_seconds: float | None = None  # restore --check that passed
    newest_check: dict | None = None
    newest_verification: dict | None = None
    newest_segment: str | None = None
    newest_segment_age_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _age(iso: str, now: datetime) -> float:
    return max(0.0, (now - datetime.fromisoformat(iso)).total_seconds())


def state(settings: Settings, repo_dir: Path | None = None, *,
          now: datetime | None = None) -> RepositoryState:
    """The repository's backups, checks and archive, for `dmdb monitor`."""
    repo = Repository.for_settings(settings, repo_dir)
    now = now or datetime.now(timezone.utc)
    if not repo.exists():
        return RepositoryState(str(repo.path), False)
    catalog = repo.read()
    out = RepositoryState(str(repo.path), True, len(catalog.backups))
    if catalog.backups:
        newest = max(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn))
        out.newest_backup = newest.name
        out.newest_backup_age_seconds = _age(newest.stop_time, now)
    passed = [c for c in catalog.checks if c.get("ok")]
    if passed:
        out.newest_check_ok_age_seconds = _age(passed[-1]["time"], now)
    out.newest_check = catalog.checks[-1] if catalog.checks else None
    out.newest_verification = catalog.verifications[-1] if catalog.verifications else None
    segments = repo.segments(catalog.segment_size)
    if segments:
        out.newest_segment = segments[-1].name
        mtime = os.stat(repo.wal_dir / segments[-1].name).st_mtime
        out.newest_segment_age_seconds = max(0.0, now.timestamp() - mtime)
    return out
