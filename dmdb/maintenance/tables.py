"""`dmdb maintenance vacuum`: every table of a schema (or one, with its partitions), one
at a time, on an autocommit connection: leaf tables, leaf partitions and materialized
views get `VACUUM [(ANALYZE)]`; a partitioned table itself holds no rows, so it only gets
`ANALYZE` (ONLY, on PostgreSQL 18+: its partitions were just analyzed). `stale_only`
keeps the tables autovacuum itself would pick: dead tuples above
`autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × reltuples`, or changes
since the last analyze above the analyze threshold, per-table reloptions overriding the
server's settings (sql/queries/maintenance_tables.sql). `read_table_stats` is the one
reader of those statistics (the monitor uses it too).

Planning is pure (`plan_vacuum`); `vacuum` executes a plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import DmdbError, first_line

if TYPE_CHECKING:
    import psycopg

SCHEMA = "public"


@dataclass(frozen=True)
class TableStats:
    oid: int
    schema: str
    name: str
    kind: str  # r | p | m
    parent_oid: int | None
    reltuples: float
    n_live_tup: int
    n_dead_tup: int
    n_mod_since_analyze: int
    vacuum_threshold: float
    analyze_threshold: float
    last_vacuum: object = None
    last_autovacuum: object = None
    last_analyze: object = None
    last_autoanalyze: object = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def vacuum_due(self) -> bool:
        return self.kind != "p" and self.n_dead_tup > self.vacuum_threshold

    @property
    def analyze_due(self) -> bool:
        return self.n_mod_since_analyze > self.analyze_threshold


@dataclass
class VacuumTarget:
    table: str  # schema-qualified
    oid: int
    kind: str
    action: str  # VACUUM | VACUUM (ANALYZE) | ANALYZE | ANALYZE ONLY
    command: str  # the SQL
    reasons: list[str] = field(default_factory=list)  # why it was picked with stale_only
    dead_before: int = 0
    dead_after: int | None = None
    live_after: int | None = None
    seconds: float | None = None
    error: str | None = None
    _statement: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("_statement", None)
        return data


@dataclass
class VacuumResult:
    analyze: bool
    stale_only: bool
    dry_run: bool
    tables: list[VacuumTarget]
    seconds: float = 0.0

    @property
    def dead_before(self) -> int:
        return sum(t.dead_before for t in self.tables)

    @property
    def dead_after(self) -> int | None:
        if self.dry_run:
            return None
        return sum(t.dead_after or 0 for t in self.tables)

    @property
    def failed(self) -> list[VacuumTarget]:
        return [t for t in self.tables if t.error]

    def to_dict(self) -> dict:
        return {
            "analyze": self.analyze, "stale_only": self.stale_only, "dry_run": self.dry_run,
            "tables": [t.to_dict() for t in self.tables],
            "dead_before": self.dead_before, "dead_after": self.dead_after,
            "seconds": round(self.seconds, 3),
        }


def read_table_stats(conn: psycopg.Connection, schema: str = SCHEMA) -> list[TableStats]:
    from psycopg.rows import dict_row

    conn.execute("SELECT pg_stat_clear_snapshot()")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("maintenance_tables"), {"schema": schema}).fetchall()
    if not conn.autocommit:
        conn.rollback()
    return [TableStats(**r) for r in rows]


def _vacuum_sql(t: TableStats, analyze: bool, analyze_only: bool):
    from psycopg import sql

    name = sql.Identifier(t.schema, t.name)
    if t.kind == "p":
        return sql.SQL("ANALYZE {only}{name}").format(
            only=sql.SQL("ONLY " if analyze_only else ""), name=name)
    if analyze:
        return sql.SQL("VACUUM (ANALYZE) {}").format(name)
    return sql.SQL("VACUUM {}").format(name)


def plan_vacuum(
    stats: list[TableStats],
    *,
    analyze: bool = False,
    stale_only: bool = False,
    table_oid: int | None = None,
    server_version: int = 180000,
) -> list[VacuumTarget]:
    """Which relations to vacuum, in order (pure). Each top-level table in name order;
    a partitioned one as its leaf partitions (depth first), then, with `analyze`, its
    partitioned levels bottom-up (ANALYZE only). `table_oid` keeps one table's tree."""
    by_oid = {t.oid: t for t in stats}
    children: dict[int, list[TableStats]] = {}
    for t in stats:
        if t.parent_oid is not None:
            children.setdefault(t.parent_oid, []).append(t)
    for kids in children.values():
        kids.sort(key=lambda t: t.name)

    def tree(t: TableStats) -> list[TableStats]:
        """Leaves first, then the partitioned levels bottom-up."""
        if t.kind != "p":
            return [t]
        leaves, parents = [], []
        for child in children.get(t.oid, []):
            sub = tree(child)
            leaves.extend(x for x in sub if x.kind != "p")
            parents.extend(x for x in sub if x.kind == "p")
        return leaves + parents + [t]

    if table_oid is not None:
        if table_oid not in by_oid:
            return []
        roots = [by_oid[table_oid]]
    else:
        roots = [t for t in stats if t.parent_oid is None or t.parent_oid not in by_oid]
        roots.sort(key=lambda t: t.name)

    analyze_only = server_version >= 180000
    out: list[VacuumTarget] = []
    for root in roots:
        chosen_leaves = 0
        for t in tree(root):
            reasons = []
            if t.kind == "p":
                # No rows of its own: only analyzed, and only when some partition was
                # picked (autovacuum never analyzes a partitioned table).
                if not analyze or (stale_only and chosen_leaves == 0):
                    continue
            else:
                if t.vacuum_due:
                    reasons.append(
                        f"n_dead_tup {t.n_dead_tup} > vacuum threshold {t.vacuum_threshold:.0f}")
                if t.analyze_due:
                    reasons.append(f"n_mod_since_analyze {t.n_mod_since_analyze} > analyze "
                                   f"threshold {t.analyze_threshold:.0f}")
                if stale_only and not reasons:
                    continue
                chosen_leaves += 1
            stmt = _vacuum_sql(t, analyze, analyze_only)
            if t.kind == "p":
                action = "ANALYZE ONLY" if analyze_only else "ANALYZE"
            else:
                action = "VACUUM (ANALYZE)" if analyze else "VACUUM"
            out.append(VacuumTarget(t.qualified, t.oid, t.kind, action, stmt.as_string(), reasons,
                                    dead_before=t.n_dead_tup, _statement=stmt))
    return out


def _dead_tuples(conn: psycopg.Connection, oid: int) -> tuple[int | None, int | None]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(resources.query("maintenance_dead_tuples"), {"oids": [oid]}).fetchone()
    return (row[1], row[2]) if row else (None, None)


def vacuum(
    conn: psycopg.Connection,
    *,
    analyze: bool = False,
    table: str | None = None,
    stale_only: bool = False,
    dry_run: bool = False,
    schema: str = SCHEMA,
    progress: Callable[[int, int, VacuumTarget, bool], None] | None = None,
) -> VacuumResult:
    """VACUUM [(ANALYZE)] one relation at a time (autocommit: VACUUM cannot run in a
    transaction block). A relation that fails (lock not obtained after the retries, or
    dropped meanwhile) is recorded with its error and the run goes on.
    `progress(number, total, target, finished)` is called around each one."""
    import psycopg

    from dmdb.db import die_with_client, retry_on_lock_timeout
    from dmdb.indexes import resolve_table

    if not conn.autocommit:
        raise DmdbError("maintenance vacuum needs an autocommit connection (VACUUM cannot run "
                        "inside a transaction block)")
    die_with_client(conn)  # a killed run's VACUUM stops on the server
    started = time.monotonic()
    target_oid = None
    if table:
        found = resolve_table(conn, table)
        schema, target_oid = found.schema, found.oid
    stats = read_table_stats(conn, schema)
    version = conn.info.server_version
    targets = plan_vacuum(stats, analyze=analyze, stale_only=stale_only, table_oid=target_oid,
                          server_version=version)
    result = VacuumResult(analyze, stale_only, dry_run, targets)
    if dry_run:
        result.seconds = time.monotonic() - started
        return result
    total = len(targets)
    for number, target in enumerate(targets, 1):
        if progress is not None:
            progress(number, total, target, False)
        t0 = time.monotonic()
        try:
            retry_on_lock_timeout(lambda t=target: conn.execute(t._statement))
        except psycopg.Error as exc:
            target.error = first_line(exc)
        target.seconds = round(time.monotonic() - t0, 3)
        if target.kind != "p":
            target.dead_after, target.live_after = _dead_tuples(conn, target.oid)
        else:
            target.dead_after = 0
        if progress is not None:
            progress(number, total, target, True)
    result.seconds = time.monotonic() - started
    return result
