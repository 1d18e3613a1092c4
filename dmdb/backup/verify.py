"""`dmdb backup verify`: is what the repository holds restorable?

Each base backup: its directory is there, its chain is whole (an incremental's parents
are kept), and pg_verifybackup finds every file of its manifest with the right size and
CRC32C (tar format: the archives are read through; their WAL is checked below instead).

The archived WAL: every segment from the oldest backup's start to the newest archived one
is there (a segment a backup carries in its own pg_wal.tar.gz counts), and pg_waldump
reads every record of them: a record whose CRC does not match, a torn page or a foreign
file is named by its segment. The result is recorded in the catalog (`verifications`),
which `dmdb monitor` reads.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from dmdb.backup.process import run
from dmdb.backup.repository import Catalog, Repository
from dmdb.backup.restore import waldump
from dmdb.backup.walnames import parse_lsn, parse_segment, segment_name, segment_number

KEEP_RESULTS = 50


@dataclass
class BackupVerdict:
    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class WalVerdict:
    timeline: int | None
    first: str | None
    last: str | None
    segments: int
    missing: list[str] = field(default_factory=list)
    corrupt: list[dict] = field(default_factory=list)  # {"segment", "lsn", "error"}

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


@dataclass
class VerifyResult:
    repo: str
    ok: bool
    backups: list[BackupVerdict]
    wal: WalVerdict
    problems: list[str]  # one line each, naming the backup or segment
    seconds: float
    verified_at: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["wal"]["ok"] = self.wal.ok
        return data


def _verify_backup(repo: Repository, catalog: Catalog, name: str) -> BackupVerdict:
    from dmdb.server.embedded import pg_tool

    entry = catalog.backup(name)
    verdict = BackupVerdict(name, True)
    directory = repo.backup_dir(name)
    if entry.parent is not None and catalog.backup(entry.parent) is None:
        verdict.problems.append(f"backup {name}: it builds on {entry.parent}, which is gone")
    if not (directory / "backup_manifest").is_file():
        verdict.problems.append(f"backup {name}: {directory} or its backup_manifest is missing")
    else:
        done = run([str(pg_tool("pg_verifybackup")), "--no-parse-wal", "--quiet", str(directory)])
        if done.returncode != 0:
            lines = [ln.strip() for ln in done.lines if ln.strip()
                     and not ln.strip().startswith("pg_verifybackup: hint")]
            for line in lines[:5]:
                verdict.problems.append(f"backup {name}: {_name_archive(line, directory)}")
            if len(lines) > 5:
                verdict.problems.append(f"backup {name}: {len(lines) - 5} more problems "
                                        f"(pg_verifybackup {directory})")
    verdict.ok = not verdict.problems
    return verdict


def _name_archive(line: str, directory) -> str:
    """pg_verifybackup names a file inside a tar archive; say which archive holds it."""
    line = line.removeprefix("pg_verifybackup: error: ").removeprefix("pg_verifybackup: ")
    if any(a in line for a in ("base.tar", "pg_wal.tar", "backup_manifest")):
        return line
    inner = re.search(r'"([^"]+)"', line)
    if inner and inner.group(1).startswith("pg_wal/"):
        return f"pg_wal.tar.gz: {line}"
    return f"base.tar.gz: {line}"


_AT_LSN = re.compile(r"([0-9A-F]+/[0-9A-F]+)")
_SEGMENT = re.compile(r"\b([0-9A-F]{24})\b")


def _verify_wal(repo: Repository, catalog: Catalog) -> WalVerdict:
    size = catalog.segment_size
    if not catalog.backups:
        segs = repo.segments(size)
        return WalVerdict(None, segs[0].name if segs else None, segs[-1].name if segs else None,
                          len(segs))
    timeline = max(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn)).timeline
    segments = [s for s in repo.segments(size) if s.timeline == timeline]
    backups = [b for b in catalog.backups if b.timeline == timeline]
    first_lsn = min(parse_lsn(b.start_lsn) for b in backups)
    first = segment_number(first_lsn, size)
    own = set()  # segments the backups carry themselves
    for b in backups:
        own.update(range(segment_number(parse_lsn(b.start_lsn), size),
                         segment_number(parse_lsn(b.stop_lsn), size) + 1))
    have = {s.segno for s in segments}
    last = max(have | own)
    verdict = WalVerdict(timeline, segment_name(timeline, first, size),
                         segment_name(timeline, last, size), len(segments))
    # Gaps: a segment neither archived nor inside a backup.
    for segno in range(first, last + 1):
        if segno not in have and segno not in own:
            verdict.missing.append(segment_name(timeline, segno, size))
    # Records: pg_waldump over each run of archived segments.
    runs: list[tuple[int, int]] = []
    for segno in sorted(n for n in have if n >= first):
        if runs and runs[-1][1] == segno - 1:
            runs[-1] = (runs[-1][0], segno)
        else:
            runs.append((segno, segno))
    for lo, hi in runs:
        start = max(lo * size, first_lsn)
        end = (hi + 1) * size
        while start < end:
            done = waldump(repo.wal_dir, timeline, start, quiet=True, end_lsn=end)
            if done.returncode == 0:
                break
            error = done.error_line().removeprefix("pg_waldump: error: ")
            segno = _bad_segno(error, size)
            if segno is None:
                segno = start // size
            if segno > hi:
                break  # the last record goes on into a segment not archived yet
            segno = max(segno, lo)
            lsn = _AT_LSN.findall(error)
            verdict.corrupt.append({"segment": segment_name(timeline, segno, size),
                                    "lsn": lsn[-1] if lsn else None, "error": error})
            start = (segno + 1) * size
    return verdict


def _bad_segno(error: str, size: int) -> int | None:
    """The segment pg_waldump's error is about: the file it names (not found, bad page
    header), else the LSN where the record broke ("error in WAL record at X: <reason> at
    Y": Y)."""
    named = _SEGMENT.search(error)
    if named:
        parsed = parse_segment(named.group(1), size)
        return parsed.segno if parsed else None
    lsns = _AT_LSN.findall(error)
    return segment_number(parse_lsn(lsns[-1]), size) if lsns else None


def verify(repo: Repository, *, record: bool = True) -> VerifyResult:
    started = time.monotonic()
    repo.require()
    with repo.using():
        catalog = repo.read()
        verdicts = [_verify_backup(repo, catalog, b.name) for b in catalog.backups]
        wal = _verify_wal(repo, catalog)
    problems = [p for v in verdicts for p in v.problems]
    problems += [f"WAL segment {m} is missing from {repo.wal_dir}: backups before it cannot "
                 "be restored past it" for m in wal.missing]
    problems += [f"WAL segment {c['segment']} is corrupt"
                 + (f" at {c['lsn']}" if c["lsn"] else "") + f": {c['error']}"
                 for c in wal.corrupt]
    if not catalog.backups:
        problems.append(f"no base backup in {repo.path}: nothing can be restored "
                        "(`dmdb backup base`)")
    result = VerifyResult(str(repo.path), not problems, verdicts, wal, problems,
                          round(time.monotonic() - started, 2),
                          datetime.now(timezone.utc).isoformat())
    if record:
        with repo.updating() as catalog:
            catalog.verifications.append({
                "time": result.verified_at, "ok": result.ok, "seconds": result.seconds,
                "backups": len(verdicts), "segments": wal.segments, "problems": problems[:20]})
            del catalog.verifications[:-KEEP_RESULTS]
    return result

