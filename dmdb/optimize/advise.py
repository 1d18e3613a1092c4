"""`dmdb optimize indexes`: index advice from the real workload.

read (live, read-only) -> parse (pglast) -> candidates -> trial (scratch copy) -> choose.

The live database is read on one session connection (advisory lock of the scratch copy,
`default_transaction_read_only`): pg_stat_statements, the tables and their columns,
`dmdb.indexes.report` (the existing indexes, unused and duplicate ones) and
`dmdb.maintenance.read_table_stats` (row counts). Nothing is written to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb.db import connect, describe_target, die_with_client, resolve
from dmdb.optimize import candidates as cands
from dmdb.optimize.candidates import create_sql, index_name
from dmdb.optimize.choose import Decision, TableWrites, decide
from dmdb.optimize.migration import WrittenMigration, create_blocks, drop_blocks, write_pair
from dmdb.optimize.parse import index_columns, index_referenced_columns
from dmdb.optimize.trial import (
    SAMPLES,
    WRITE_SAMPLE,
    CandidateTrial,
    Copied,
    TableTrial,
    clean_leftovers,
    prepare_scratch,
    run_trial,
    scratch_database,
)
from dmdb.optimize.workload import (
    LiveTable,
    Statement,
    parse_all,
    read_tables,
    read_workload,
    search_path,
)

if TYPE_CHECKING:
    from dmdb.config import Settings

TOP = 50  # statements by total time whose scans make candidates
MIN_CALLS = 2
MIN_ROWS = 1000  # smaller tables are read whole faster than through an index
SESSION = "dmdb optimize indexes"


@dataclass
class IndexAdvice:
    target: str
    role: str
    privileged: bool
    stats_reset: object
    statements: int  # statements of this database in pg_stat_statements
    hidden: int  # of them, those whose text this role may not read
    considered: list[dict] = field(default_factory=list)  # the top statements, parsed
    skipped: list[dict] = field(default_factory=list)  # candidates not tried, and why
    copied: list[Copied] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    unused: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    scratch: str | None = None
    cleaned: list[str] = field(default_factory=list)  # leftover scratch databases dropped
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    migration: WrittenMigration | None = None  # --write-migration: the new indexes
    drop_migration: WrittenMigration | None = None  # --write-drop-migration


    @property
    def suggestions(self) -> list[Decision]:
        return [d for d in self.decisions if d.kept]

    @property
    def status(self) -> str:
        """OK: nothing to change; WARNING: indexes to add or drop; UNKNOWN: statements
        this role could not read (the advice may be incomplete)."""
        if self.suggestions or self.unused or self.duplicates:
            return "WARNING"
        if self.hidden:
            return "UNKNOWN"
        return "OK"

    def to_dict(self) -> dict:
        return {
            "status": self.status, "target": self.target, "role": self.role,
            "privileged": self.privileged, "stats_reset": self.stats_reset,
            "statements": self.statements, "hidden": self.hidden,
            "suggestions": [d.to_dict() for d in self.suggestions],
            "dropped": [d.to_dict() for d in self.decisions if not d.kept],
            "skipped": self.skipped, "considered": self.considered,
            "copied": [asdict(c) for c in self.copied],
            "unused": self.unused, "duplicates": self.duplicates,
            "scratch": self.scratch, "cleaned": self.cleaned, "notes": self.notes,
            "migration": self.migration.to_dict() if self.migration else None,
            "drop_migration": self.drop_migration.to_dict() if self.drop_migration else None,
            "seconds": round(self.seconds, 3),
        }


def _existing(report_rows: list[dict]) -> list[cands.ExistingIndex]:
    out = []
    for r in report_rows:
        try:
            method, _, cols, where = index_columns(r["definition"])
        except Exception:  # an index pglast cannot read is no candidate's cover
            continue
        out.append(cands.ExistingIndex(r["index"], f"{r['schema']}.{r['table']}", method,
                                       tuple(cols), where, bool(r["valid"])))
    return out


def _derived(catalog, table: str):
    """name -> the partitions' index names that depend on `name`: none. `dmdb indexes
    build` names a partition's index as PostgreSQL does, from the partition and the
    index's columns (the first of <partition>_<columns>_idx, ..._idx1, ... not taken),
    whatever the parent index is called, so a parent name never collides through them."""
    return lambda name: []


def _row_counts(stats) -> dict[str, float]:
    """Rows of each top-level table: its own, or its leaves' (partitioned)."""
    by_oid = {t.oid: t for t in stats}

    def root(t):
        while t.parent_oid is not None and t.parent_oid in by_oid:
            t = by_oid[t.parent_oid]
        return t

    out: dict[str, float] = {}
    for t in stats:
        if t.kind == "p":
            out.setdefault(root(t).qualified, 0.0)
            continue
        key = root(t).qualified
        out[key] = out.get(key, 0.0) + max(0.0, float(t.reltuples))
    return out


def _writes(statements: list[Statement]) -> dict[str, TableWrites]:
    out: dict[str, TableWrites] = {}
    for s in statements:
        if s.parsed is None:
            continue
        for w in s.parsed.writes:
            tw = out.setdefault(w.table, TableWrites())
            if w.kind == "insert":
                tw.inserted += s.rows
            elif w.kind == "update":
                tw.updates.append((w.columns, s.rows))
    return out


def advise_indexes(settings: Settings, *, top: int = TOP, min_calls: int = MIN_CALLS,
                   min_rows: int = MIN_ROWS, schemas: tuple[str, ...] = ("public",),
                   max_per_table: int = 3, candidates_per_table: int = cands.MAX_PER_TABLE,
                   samples: int = SAMPLES, write_rows: int = WRITE_SAMPLE,
                   unused_min_size_mb: float = 10.0, statement_timeout: str = "30s",
                   sql_dir: Path | None = None, write_migration: bool = False,
                   write_drop_migration: bool = False,
                   progress: Callable[[str], None] | None = None) -> IndexAdvice:
    """Advice from the workload; with `write_migration` / `write_drop_migration`, the
    migration pairs written into `sql_dir` (the project's SQL tree)."""
    from dmdb import indexes, maintenance

    started = time.monotonic()
    settings = resolve(settings.session())
    with connect(settings, autocommit=True, session=SESSION) as live:
        die_with_client(live)
        live.execute("SET default_transaction_read_only = on")
        cleaned = clean_leftovers(settings, live)
        workload = read_workload(live)
        tables = read_tables(live, schemas)
        parse_all(workload, tables, search_path(live))
        report = indexes.report(live, min_size_mb=unused_min_size_mb)
        catalog = indexes.read_catalog(live)
        stats = [t for s in schemas for t in maintenance.read_table_stats(live, s)]
        advice = IndexAdvice(describe_target(settings), workload.role, workload.privileged,
                             workload.stats_reset, len(workload.statements) + workload.hidden,
                             workload.hidden, unused=report.unused,
                             duplicates=report.duplicates, cleaned=cleaned)
        if not workload.privileged:
            advice.notes.append(
                f"role {workload.role} lacks pg_read_all_stats: statements of other roles are "
                f"not seen ({workload.hidden} hidden); fix: GRANT pg_read_all_stats TO "
                f"{workload.role}; (or pg_monitor)")
        elif workload.hidden:
            advice.notes.append(f"{workload.hidden} statement(s) with hidden text left out")
        existing = _existing(report.indexes)
        rows = _row_counts(stats)
        heavy = [s for s in workload.statements if s.calls >= min_calls and s.parsed
                 and s.parsed.kind in ("select", "update", "delete", "insert")
                 and any(sc.searched for sc in s.parsed.scans)][:top]
        by_id = {s.queryid: s for s in workload.statements}
        weighted, small = [], set()
        table_of: dict[str, list[str]] = {}
        for s in heavy:
            advice.considered.append(s.to_dict())
            for sc in s.parsed.scans:
                if rows.get(sc.table, 0.0) < min_rows:
                    small.add(sc.table)
                    continue
                weighted.append(cands.Weighted(sc, s.queryid, s.total_ms))
                if s.queryid not in table_of.setdefault(sc.table, []):
                    table_of[sc.table].append(s.queryid)
        for t in sorted(small):
            advice.notes.append(f"{t}: under {min_rows} rows, read whole; no index tried")
        types = {name: t.table.columns for name, t in tables.items()}
        found = cands.generate(weighted, types, existing, max_per_table=candidates_per_table)
        advice.skipped = [{"table": c.table, "columns": list(c.columns), "where": c.where,
                           "reason": why} for c, why in found.skipped]
        if found.tried:
            taken = {i.name for i in catalog.indexes} | {t.name for t in catalog.tables}
            trials: dict[str, TableTrial] = {}
            for c in found.tried:
                name = index_name(c, taken, _derived(catalog, c.table))
                trials.setdefault(c.table, TableTrial(c.table)).candidates.append(
                    CandidateTrial(c, name, create_sql(c, name)))
            # The tried tables, and every table their statements also read (a join's
            # other side, however small): plans over an empty copy of it would mislead.
            wanted = set(trials)
            for t in trials:
                for qid in table_of.get(t, []):
                    wanted |= by_id[qid].parsed.tables & set(tables)
            live_tables: list[LiveTable] = [tables[t] for t in sorted(wanted)]
            with scratch_database(settings, live) as scratch:
                advice.scratch = scratch
                if progress:
                    progress(f"copying {len(live_tables)} table(s) into {scratch}")
                advice.copied = prepare_scratch(settings, scratch, live_tables, advice.notes)
                columns = {name: list(t.table.columns) for name, t in tables.items()}
                run_trial(settings, scratch, list(trials.values()), by_id, table_of, columns,
                          samples=samples, write_rows=write_rows,
                          statement_timeout=statement_timeout, progress=progress)
            writes = _writes(workload.statements)
            by_table: dict[str, list[cands.ExistingIndex]] = {}
            hot: dict[str, set[str]] = {}
            for r in report.indexes:
                key = f"{r['schema']}.{r['table']}"
                hot.setdefault(key, set())
                try:
                    hot[key] |= index_referenced_columns(r["definition"])
                except Exception:
                    continue
            for e in existing:
                by_table.setdefault(e.table, []).append(e)
            sizes = {name: t.size_bytes for name, t in tables.items()}
            advice.decisions = decide(list(trials.values()), by_id, writes, by_table, hot,
                                      sizes, max_per_table=max_per_table)
        if write_migration and advice.suggestions:
            forward, backward = create_blocks(advice.decisions, catalog)
            advice.migration = write_pair(
                _sql_dir(sql_dir), "optimize indexes", "indexes --write-migration",
                [f"{len(forward)} index(es) advised from the workload of {advice.target} "
                 f"(pg_stat_statements since {advice.stats_reset}); the evidence is above "
                 "each statement"], forward, backward)
        drops = report.unused + report.duplicates
        if write_drop_migration and drops:
            forward, backward = drop_blocks(drops, catalog)
            advice.drop_migration = write_pair(
                _sql_dir(sql_dir), "optimize drop unused indexes",
                "indexes --write-drop-migration",
                [f"{len(forward)} unused or duplicate index(es) of {advice.target} "
                 f"(dmdb indexes report, statistics since "
                 f"{report.stats_reset or 'the server started: never reset'})"],
                forward, backward)
    advice.seconds = time.monotonic() - started
    return advice


def _sql_dir(sql_dir: Path | None) -> Path:
    from dmdb import resources

    return Path(sql_dir) if sql_dir is not None else resources.sql_dir()
