"""`dmdb privacy erase` and `export`: one learner's rows, everywhere the inventory says
they live.

Erase is one transaction: the learner's row locked first (answers of that learner wait,
as they wait for each other), every covered relation's rows counted and deleted (the
archived months too, which the foreign-key cascade no longer reaches), the materialized
views refreshed so they no longer show the learner, a tombstone for event consumers when
the database has the feed, and the ledger row — all or nothing, a SIGKILL included.
Shared aggregates (content counters, bandit arms) hold no identifier and keep their
totals. The dead tuples left behind are vacuumed afterwards, table by table.

Export reads the same relations in one snapshot, streamed to JSON lines (a learner with
100,000 events is never held in memory), into a file created 0600.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb.errors import ConfigError, DmdbError
from dmdb.privacy import ledger
from dmdb.privacy.inventory import Inventory, Relation

if TYPE_CHECKING:
    import psycopg

# How long the oldest kept backup can be: after this, no backup holds erased data.
DEFAULT_BACKUP_DAYS = 35
# The event feed's tombstone, when the database has it (issue 26, events.sql): emitted
# before the learner's rows go, under the learner's lock, so consumers see it after the
# learner's last events.
TOMBSTONE = "emit_learner_erased(bigint,timestamp with time zone,text)"


@dataclass
class EraseResult:
    user_id: int
    dry_run: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    refreshed: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    tombstone: bool = False
    request_id: int | None = None
    backups_clean_after: datetime | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExportResult:
    user_id: int
    file: str
    rows: dict[str, int]
    request_id: int

    def to_dict(self) -> dict:
        return asdict(self)


def _ident(relation: Relation):
    from psycopg import sql

    return sql.Identifier(relation.schema, relation.name)


def _check_inventory(inv: Inventory) -> None:
    if inv.unclassified:
        names = ", ".join(r.qualified for r in inv.unclassified)
        raise DmdbError(f"the privacy inventory does not classify {names}; classify it in "
                        "sql/privacy.toml (`dmdb privacy inventory` shows why it was found) "
                        "before exporting or erasing")


def _leaf_counts(conn, relation: Relation, user_id: int) -> dict[str, int]:
    """Rows of the learner per leaf table (partitions named), for the report and VACUUM."""
    from psycopg import sql

    query = sql.SQL("SELECT tableoid::regclass::text, count(*) FROM {} WHERE {} = %s "
                    "GROUP BY 1").format(_ident(relation), sql.Identifier(relation.key))
    return dict(conn.execute(query, (user_id,)).fetchall())


def erase(conn: psycopg.Connection, user_id: int, inv: Inventory, *, dry_run: bool = False,
          backup_days: int = DEFAULT_BACKUP_DAYS, vacuum: bool = True) -> EraseResult:
    """Erase the learner `user_id` (see the module). `conn` in autocommit mode."""
    from psycopg import sql

    _check_inventory(inv)
    if not conn.autocommit:
        raise DmdbError("privacy erase needs an autocommit connection")
    result = EraseResult(user_id, dry_run)
    deletes = sorted(inv.covered("delete"), key=lambda r: r.qualified == "public.users")
    leaves: dict[str, int] = {}
    received = datetime.now(timezone.utc)
    key = ledger.subject_key(conn)
    import psycopg

    subject_hash = ledger.subject(key, user_id)
    with conn.transaction():
        conn.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (user_id,))
        if not dry_run and conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                                        (TOMBSTONE,)).fetchone()[0]:
            conn.execute("SELECT emit_learner_erased(%s, now(), %s)",
                         (user_id, f"dmdb-privacy:{subject_hash[:32]}"))
            result.tombstone = True
        for relation in deletes:
            per_leaf = _leaf_counts(conn, relation, user_id)
            leaves.update(per_leaf)
            before = sum(per_leaf.values())
            deleted = 0
            if before and not dry_run:
                deleted = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                    _ident(relation), sql.Identifier(relation.key)), (user_id,)).rowcount
            result.counts[relation.qualified] = {"before": before, "deleted": deleted}
        if not any(c["before"] for c in result.counts.values()):
            raise DmdbError(f"no data of learner {user_id} in any relation of the inventory; "
                            "nothing to erase (an earlier erasure is in `dmdb privacy "
                            "requests`)")
        if dry_run:
            result.refreshed = [r.qualified for r in inv.covered("refresh")]
            raise psycopg.Rollback()  # counted, nothing changed
        for relation in inv.covered("refresh"):
            conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {} {}").format(
                sql.SQL("CONCURRENTLY") if _concurrently(conn, relation) else sql.SQL(""),
                _ident(relation)))
            result.refreshed.append(relation.qualified)
        result.backups_clean_after = received + timedelta(days=backup_days)
        result.request_id = ledger.record(conn, "erase", subject_hash, received,
                                          result.counts, result.backups_clean_after)
    if dry_run:
        return result
    if vacuum:
        for leaf in sorted(t for t, n in leaves.items() if n):
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(leaf)))
            result.vacuumed.append(leaf)
    return result


def _concurrently(conn, relation: Relation) -> bool:
    """REFRESH ... CONCURRENTLY needs a populated view with a unique index."""
    return bool(conn.execute(
        "SELECT c.relispopulated AND EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid "
        "AND i.indisunique AND i.indpred IS NULL) FROM pg_class c WHERE c.oid = %s::regclass",
        (relation.qualified,)).fetchone()[0])


def export(conn: psycopg.Connection, user_id: int, inv: Inventory, out: Path, *,
           force: bool = False) -> ExportResult:
    """Every covered row of the learner, as JSON lines in `out` (0600), then a ledger row."""
    from psycopg import sql

    _check_inventory(inv)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it")
    received = datetime.now(timezone.utc)
    key = ledger.subject_key(conn)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    rows: dict[str, int] = {}
    try:
        with os.fdopen(fd, "w") as handle, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            handle.write(json.dumps({"subject": user_id, "exported_at": received.isoformat(),
                                     "relations": [r.qualified for r in inv.covered("delete")]})
                         + "\n")
            for relation in sorted(inv.covered("delete"), key=lambda r: r.qualified):
                query = sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {} = %s").format(
                    _ident(relation), sql.Identifier(relation.key))
                n = 0
                with conn.cursor(name="dmdb_privacy_export") as cur:
                    cur.itersize = 2000
                    cur.execute(query, (user_id,))
                    for (row,) in cur:
                        handle.write(json.dumps({"relation": relation.qualified, "row": row},
                                                default=str) + "\n")
                        n += 1
                rows[relation.qualified] = n
        if not any(rows.values()):
            raise DmdbError(f"no data of learner {user_id} in any relation of the inventory")
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with conn.transaction():
        request_id = ledger.record(conn, "export", ledger.subject(key, user_id), received,
                                   {k: {"exported": v} for k, v in rows.items()})
    return ExportResult(user_id, str(out), rows, request_id)


def reapply(live: psycopg.Connection, restored: psycopg.Connection, since: datetime,
            inv: Inventory) -> list[int]:
    """Erase again, in a restored copy, the learners erased in `live` after `since` (the
    backup's time): a backup restored is handed over without them (CCPA §7022(d), the
    UK ICO's "beyond use"). Matched by the ledger's keyed hash, with the copy's own key
    (the same database, so the same key). Returns the learner ids erased again."""
    if live.execute("SELECT to_regclass('dmdb_privacy.requests') IS NULL").fetchone()[0]:
        return []
    if restored.execute("SELECT to_regclass('dmdb_privacy.subject_key') IS NULL").fetchone()[0]:
        return []
    wanted = {r.subject: r.request_id for r in ledger.requests(live, since=since, kind="erase")}
    if not wanted:
        return []
    key = ledger.subject_key(restored)
    ids = [uid for (uid,) in restored.execute("SELECT user_id FROM users").fetchall()
           if ledger.subject(key, uid) in wanted]
    for uid in ids:
        result = erase(restored, uid, inv, vacuum=False)
        restored.execute("UPDATE dmdb_privacy.requests SET reapplied_from = %s "
                         "WHERE request_id = %s", (wanted[ledger.subject(key, uid)],
                                                   result.request_id))
    return ids
