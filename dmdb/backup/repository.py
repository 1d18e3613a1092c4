"""The backup repository: a directory holding base backups, archived WAL and their catalog.

    <repo>/catalog.json      what is in it: backups (label, LSNs, times), named restore
                             points, verifications and restore checks (0600)
    <repo>/base/<name>/      one base backup each: base.tar.gz, pg_wal.tar.gz, backup_manifest
    <repo>/base/.partial-*   a base backup being written (never in the catalog)
    <repo>/wal/              archived WAL segments (basic_archive or pg_receivewal)
    <repo>/scratch/          restore checks' throw-away clusters

Default `<home>/backups`, else DMDB_BACKUP_REPO / `backup_repo` / `--repo`. Everything is
0600/0700. The catalog is replaced whole (written to a temporary file, synced, renamed), so
a reader sees the old one or the new one; a base backup enters it only once its directory
is complete and renamed into place.

As root the embedded server runs as SYSTEM_USER, which writes `wal/` (basic_archive) and
reads it (a restored cluster's restore_command): the repository directory and `wal/`
belong to that user, and the directories above must let it through. The default
repository, under a home only root may enter, lives under SYSTEM_HOME instead (like the
cluster itself), linked from `<home>/backups`.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dmdb.backup.walnames import DEFAULT_SEGMENT_SIZE, Segment, parse_segment
from dmdb.config import Settings
from dmdb.errors import ConfigError, DmdbError

CATALOG = "catalog.json"
FORMAT = 1
PARTIAL_PREFIX = ".partial-"


def _from_dict(cls, data: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class BackupEntry:
    """One base backup as the catalog holds it; LSNs as PostgreSQL prints them, times
    ISO 8601 with their offset (the server's clock)."""

    name: str
    kind: str  # "full" or "incremental"
    parent: str | None  # the backup an incremental builds on
    label: str
    timeline: int
    start_lsn: str
    stop_lsn: str  # the backup is consistent from here on
    start_time: str
    stop_time: str
    bytes: int
    seconds: float
    server_version: str
    compression: str = "gzip"
    format: str = "tar"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Mark:
    """A named restore point (pg_create_restore_point)."""

    name: str
    lsn: str
    time: str
    timeline: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Catalog:
    system_identifier: str | None = None
    segment_size: int = DEFAULT_SEGMENT_SIZE
    backups: list[BackupEntry] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    # Results of `backup verify` and `restore --check`, newest last (plain dicts: their
    # dataclasses live with the code that makes them).
    verifications: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "system_identifier": self.system_identifier,
                "segment_size": self.segment_size,
                "backups": [b.to_dict() for b in self.backups],
                "marks": [m.to_dict() for m in self.marks],
                "verifications": self.verifications, "checks": self.checks}

    @classmethod
    def from_dict(cls, data: dict) -> Catalog:
        return cls(system_identifier=data.get("system_identifier"),
                   segment_size=int(data.get("segment_size") or DEFAULT_SEGMENT_SIZE),
                   backups=[_from_dict(BackupEntry, b) for b in data.get("backups", [])],
                   marks=[_from_dict(Mark, m) for m in data.get("marks", [])],
                   verifications=list(data.get("verifications", [])),
                   checks=list(data.get("checks", [])))

    def backup(self, name: str) -> BackupEntry | None:
        return next((b for b in self.backups if b.name == name), None)

    def chain(self, entry: BackupEntry) -> list[BackupEntry]:
        """The full backup `entry` builds on, then each incremental up to `entry`."""
        out = [entry]
        while out[0].parent is not None:
            parent = self.backup(out[0].parent)
            if parent is None:
                raise DmdbError(f"backup {out[0].name} builds on {out[0].parent}, which is "
                                "not in the catalog; restore from an older full backup")
            out.insert(0, parent)
        return out

    def mark(self, name: str) -> Mark | None:
        return next((m for m in self.marks if m.name == name), None)


# ----------------------------------------------------------------------------- where


def _server_owner() -> tuple[int, int] | None:
    """(uid, gid) the embedded server runs as when that is not us (as root)."""
    if os.geteuid() != 0:
        return None
    from dmdb.server.embedded import _system_user

    return _system_user()


def repository_path(settings: Settings, repo: Path | None = None) -> Path:
    """`--repo`, else DMDB_BACKUP_REPO / backup_repo, else `<home>/backups`."""
    chosen = repo or settings.backup_repo
    return Path(chosen or Path(settings.home) / "backups").expanduser().absolute()


def _default_real_dir(home: Path) -> Path:
    """As root, where the default repository of `home` really is (beside its cluster's
    directory under SYSTEM_HOME: the server's user must reach `wal/`)."""
    from dmdb.server.embedded import SYSTEM_HOME, _sha

    return SYSTEM_HOME / f"{_sha(str(home.absolute()), 16)}-backups"


def _reachable_by(path: Path, owner: tuple[int, int]) -> Path | None:
    """The first directory above `path` that `owner` cannot pass through, or None."""
    uid, gid = owner
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except OSError:
            return parent
        mode = st.st_mode
        if st.st_uid == uid:
            ok = mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = mode & stat.S_IXGRP
        else:
            ok = mode & stat.S_IXOTH
        if not ok:
            return parent
    return None


class Repository:
    def __init__(self, path: Path, *, home: Path | None = None):
        self.path = Path(path).absolute()
        # The home whose default repository this is (as root it is a link to SYSTEM_HOME).
        self.home = Path(home).absolute() if home is not None else None

    @classmethod
    def for_settings(cls, settings: Settings, repo: Path | None = None) -> Repository:
        path = repository_path(settings, repo)
        default = repo is None and settings.backup_repo is None
        return cls(path, home=Path(settings.home) if default else None)

    # -- layout ----------------------------------------------------------------
    @property
    def real(self) -> Path:
        """The directory itself (the link's target for root's default repository)."""
        return Path(os.path.realpath(self.path))

    @property
    def base_dir(self) -> Path:
        return self.real / "base"

    @property
    def wal_dir(self) -> Path:
        return self.real / "wal"

    @property
    def scratch_dir(self) -> Path:
        return self.real / "scratch"

    @property
    def catalog_file(self) -> Path:
        return self.real / CATALOG

    def backup_dir(self, name: str) -> Path:
        return self.base_dir / name

    def planned_wal_dir(self) -> Path:
        """Where `wal/` is, or will be once `ensure` made the repository."""
        if self.path.exists() or self.home is None or _server_owner() is None:
            return self.real / "wal"
        return _default_real_dir(self.home) / "wal"

    def exists(self) -> bool:
        return (self.real / CATALOG).is_file() or self.wal_dir.is_dir()

    def require(self) -> Repository:
        if not self.exists():
            raise DmdbError(f"no backup repository at {self.path}; take a base backup "
                            "(`dmdb backup base`) or give --repo DIR (DMDB_BACKUP_REPO)")
        return self

    def ensure(self) -> Repository:
        """Create the repository (0700; as root the server's user owns it and `wal/`)."""
        from dmdb.server.embedded import _private_dir, _system_home

        owner = _server_owner()
        if owner is not None and self.home is not None and not self.path.is_symlink():
            if self.path.exists():
                if not self.path.is_dir():
                    raise ConfigError(f"{self.path} is in the way of the backup repository; "
                                      "move it away or give --repo DIR")
            else:
                real = _default_real_dir(self.home)
                _system_home()
                _private_dir(real, owner)
                marker = real / "home"  # so that a deleted throw-away home's goes too
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(str(self.home))
                self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.path.symlink_to(real)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        real = self.real
        if owner is not None:
            blocked = _reachable_by(real, owner)
            if blocked is not None:
                from dmdb.server.embedded import SYSTEM_USER

                raise ConfigError(
                    f"the backup repository {self.path} is out of reach of the server's user "
                    f"{SYSTEM_USER} (it archives WAL there and restores read it): {blocked} "
                    f"does not let it through; `chmod o+x {blocked}` or choose another --repo")
        _private_dir(real, owner)
        _private_dir(self.wal_dir, owner)
        _private_dir(self.base_dir)
        return self

    # -- catalog ---------------------------------------------------------------
    def read(self) -> Catalog:
        try:
            text = self.catalog_file.read_text()
        except FileNotFoundError:
            return Catalog()
        try:
            return Catalog.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise DmdbError(f"{self.catalog_file} is not a dmdb catalog ({exc}); restore it "
                            "from a copy, or move the repository away") from None

    def write(self, catalog: Catalog) -> None:
        """Replace the catalog atomically and durably (call under `updating`)."""
        tmp = self.catalog_file.with_name(f".{CATALOG}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(catalog.to_dict(), indent=1) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.catalog_file)
        sync_dir(self.real)

    @contextmanager
    def updating(self):
        """The catalog, read under the catalog lock and written back when the block ends
        without an error."""
        with self._flock(".catalog.lock", exclusive=True, wait=True):
            catalog = self.read()
            yield catalog
            self.write(catalog)

    # -- locks -------------------------------------------------------------------
    @contextmanager
    def _flock(self, name: str, *, exclusive: bool, wait: bool, busy: str = ""):
        path = self.real / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                raise DmdbError(busy or f"{self.path} is locked by another dmdb command") from None
            yield
        finally:
            os.close(fd)

    def using(self):
        """Shared: backups and WAL are read or added, none removed (restore, verify, base)."""
        return self._flock(".lock", exclusive=False, wait=False, busy=(
            f"`dmdb backup expire` is removing backups from {self.path}; run this again "
            "when it is done"))

    def removing(self):
        """Exclusive: `expire` deletes backups and WAL nobody else is reading."""
        return self._flock(".lock", exclusive=True, wait=False, busy=(
            f"another dmdb command (a base backup, restore or verify) is using {self.path}; "
            "expire when it is done"))

    def taking_backup(self):
        return self._flock(".base.lock", exclusive=True, wait=False, busy=(
            f"another `dmdb backup base` is writing into {self.path}; wait for it"))

    # -- WAL -----------------------------------------------------------------------
    def segments(self, segment_size: int | None = None) -> list[Segment]:
        """The archived segments, in WAL order."""
        size = segment_size or DEFAULT_SEGMENT_SIZE
        try:
            names = os.listdir(self.wal_dir)
        except FileNotFoundError:
            return []
        return sorted(s for s in (parse_segment(n, size) for n in names) if s is not None)


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_tree(path: Path) -> None:
    """Directories 0700, files 0600, under `path` (links left alone)."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for name in files:
            f = os.path.join(root, name)
            if not os.path.islink(f):
                os.chmod(f, 0o600)
