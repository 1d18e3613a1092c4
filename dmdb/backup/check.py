"""`dmdb restore --check`: prove the newest backup restores, by restoring it.

On the live server: count the rows of every table of the database (one snapshot), create
a restore point, switch the WAL segment out and wait until it is archived, count again.
Then restore the newest backup to that restore point in a scratch directory of the
repository, start it, and on the copy: amcheck (every B-tree index with its heap,
verify_heapam on every table) and the same counts, each of which must lie between the
live counts before and after the restore point. The scratch copy is removed; the result
and its duration go into the catalog (`checks`), which `dmdb monitor` reads.

Unlogged tables are not in a physical backup (they restore empty) and are not counted.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from dmdb.backup import providers
from dmdb.backup.repository import Repository
from dmdb.backup.restore import RestoredServer, Target, restore_to
from dmdb.backup.walnames import parse_lsn
from dmdb.config import Settings
from dmdb.db import connect, resolve
from dmdb.errors import DmdbError
from dmdb.resources import query

KEEP_RESULTS = 50


@dataclass
class TableCount:
    table: str
    before: int  # live, before the restore point
    restored: int | None
    after: int  # live, after it

    @property
    def ok(self) -> bool:
        return (self.restored is not None
                and min(self.before, self.after) <= self.restored <= max(self.before, self.after))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass
class CheckResult:
    repo: str
    ok: bool
    database: str
    restore_point: str
    lsn: str
    chain: list[str]
    tables: list[TableCount]
    indexes_checked: int
    tables_checked: int
    problems: list[str]
    seconds: float
    restore_seconds: float
    checked_at: str
    kept: str | None = None  # --keep: where the copy still runs
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tables"] = [t.to_dict() for t in self.tables]
        return data


def _tables(conn) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(query("backup_check_tables")).fetchall()]


def _count(conn, tables: list[tuple[str, str]]) -> dict[str, int]:
    """Rows of each table ("schema.table"), all in one snapshot."""
    from psycopg import sql

    out = {}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for schema, rel in tables:
            out[f"{schema}.{rel}"] = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(rel))).fetchone()[0]
    return out


def _wait_archived(repo: Repository, segment: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (repo.wal_dir / segment).is_file():
            return True
        time.sleep(0.2)
    return False


def _amcheck(conn) -> tuple[int, int, list[str]]:
    """(indexes checked, tables checked, problems) by amcheck on the restored copy."""
    import psycopg

    conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    problems: list[str] = []
    indexes = conn.execute(query("backup_check_indexes")).fetchall()
    for oid, name in indexes:
        try:
            conn.execute("SELECT bt_index_check(%s::regclass, true)", (oid,))
        except psycopg.Error as exc:
            problems.append(f"index {name}: {exc.diag.message_primary or exc}")
    tables = conn.execute(query("backup_check_heaps")).fetchall()
    for oid, name in tables:
        rows = conn.execute("SELECT blkno, offnum, msg FROM verify_heapam(%s::regclass) "
                            "LIMIT 3", (oid,)).fetchall()
        problems += [f"table {name}: block {b}, item {o}: {m}" for b, o, m in rows]
    return len(indexes), len(tables), problems


@dataclass
class CheckPlan:
    """`restore --check --dry-run`: what a check would do; nothing is changed."""

    repo: str
    database: str
    chain: list[str]
    tables: list[str]
    scratch: str
    dry_run: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _clear_scratch(repo: Repository) -> list[str]:
    """Copies a killed check left running in the scratch directory: stopped, removed."""
    cleared = []
    if repo.scratch_dir.is_dir():
        for left in sorted(repo.scratch_dir.iterdir()):
            RestoredServer(left, 0).destroy()
            shutil.rmtree(left, ignore_errors=True)
            cleared.append(left.name)
    return cleared


def restore_check(settings: Settings, repo_dir: Path | None = None, *,
                  archive_wait: float = 120.0, keep: bool = False, dry_run: bool = False,
                  progress: Callable[[str, int, int], None] | None = None
                  ) -> CheckResult | CheckPlan:

    started = time.monotonic()
    live = resolve(replace(settings.session(), create_embedded=False))
    repo = Repository.for_settings(live, repo_dir).require()
    catalog = repo.read()
    if not catalog.backups:
        raise DmdbError(f"no base backup in {repo.path} to check; take one (`dmdb backup base`)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"dmdb-check-{stamp}"
    if dry_run:
        newest = max(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn))
        with connect(live, autocommit=True) as conn:
            tables = [f"{s}.{t}" for s, t in _tables(conn)]
        return CheckPlan(str(repo.path), live.dbname, [b.name for b in catalog.chain(newest)],
                         tables, str(repo.scratch_dir / f"check-{stamp}"))
    with repo._flock(".check.lock", exclusive=True, wait=False,
                     busy=f"another `dmdb restore --check` is running on {repo.path}"):
        cleared = _clear_scratch(repo)
        result = _check(live, settings, repo, name, stamp, archive_wait, keep, progress,
                        started)
        if cleared:
            result.notes.append("removed copies a killed check left: " + ", ".join(cleared))
        return result


def _check(live: Settings, settings: Settings, repo: Repository, name: str, stamp: str,
           archive_wait: float, keep: bool, progress, started: float) -> CheckResult:
    import psycopg

    with connect(live, autocommit=True, session="dmdb restore --check") as conn:
        tables = _tables(conn)
        before = _count(conn, tables)
        try:
            lsn, segment = conn.execute(
                "SELECT p::text, pg_walfile_name(p) FROM pg_create_restore_point(%s) AS p",
                (name,)).fetchone()
            conn.execute("SELECT pg_switch_wal()")
        except psycopg.errors.InsufficientPrivilege:
            provider = providers.detect(live, conn)
            if provider:
                raise DmdbError(providers.explain(provider, "a restore check")) from None
            raise DmdbError("restore --check creates a restore point and switches the WAL "
                            "segment: it needs a superuser, or EXECUTE on "
                            "pg_create_restore_point(text) and pg_switch_wal()") from None
        if not _wait_archived(repo, segment, archive_wait):
            raise DmdbError(f"WAL segment {segment} (holding restore point {name}) did not "
                            f"reach {repo.wal_dir} within {archive_wait:.0f}s: is archiving on "
                            "and working? (`dmdb backup wal status`)")
        after = _count(conn, tables)
    target = Target("name", name, lsn=parse_lsn(lsn), time=datetime.now(timezone.utc))
    scratch = repo.scratch_dir / f"check-{stamp}"
    repo.scratch_dir.mkdir(mode=0o700, exist_ok=True)
    restored_at = time.monotonic()
    result = restore_to(repo, target, scratch, live_home=Path(settings.home),
                        progress=progress, dbname=live.dbname)
    restore_seconds = round(time.monotonic() - restored_at, 2)
    server = RestoredServer(scratch, result.port or 0)
    problems: list[str] = []
    try:
        with psycopg.connect(host=result.socket_dir, port=result.port, user="postgres",
                             dbname=live.dbname, autocommit=True) as copy:
            restored = _count(copy, tables)
            indexes, heaps, amcheck_problems = _amcheck(copy)
    finally:
        if not keep:
            server.destroy()
            shutil.rmtree(scratch, ignore_errors=True)
    counts = [TableCount(t, before[t], restored.get(t), after[t]) for t in before]
    problems += [f"table {c.table}: {c.restored} rows restored, live {c.before} before and "
                 f"{c.after} after the restore point" for c in counts if not c.ok]
    problems += amcheck_problems
    check = CheckResult(str(repo.path), not problems, live.dbname, name, lsn, result.plan.chain,
                        counts, indexes, heaps, problems, round(time.monotonic() - started, 2),
                        restore_seconds, datetime.now(timezone.utc).isoformat(),
                        kept=str(scratch) if keep else None)
    with repo.updating() as catalog:
        catalog.checks.append({
            "time": check.checked_at, "ok": check.ok, "seconds": check.seconds,
            "restore_seconds": restore_seconds, "database": check.database,
            "restore_point": name, "lsn": lsn, "chain": check.chain,
            "tables": len(counts), "rows": sum(c.restored or 0 for c in counts),
            "indexes_checked": indexes, "problems": problems[:20]})
        del catalog.checks[:-KEEP_RESULTS]
    return check
