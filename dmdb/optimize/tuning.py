"""`dmdb optimize`: the tuning an operator does by hand, each finding with its evidence and
the command that fixes it.

Checks (each runs on its own; one that cannot read what it needs is UNKNOWN, and the
others still run):

- `stale_statistics`: tables whose rows changed past autovacuum's analyze threshold, and
  partitioned tables never analyzed (autovacuum never analyzes those) -> `ANALYZE`;
- `index_bloat`: btree indexes estimated at `bloat_ratio` times their size or more
  (the monitor's estimate, sql/queries/monitor/index_bloat.sql) -> `REINDEX INDEX
  CONCURRENTLY`;
- `hot_updates`: tables whose updates are mostly not HOT: for lack of room on the page
  (PostgreSQL 16+ counts those) -> a lower fillfactor; else because they change an
  indexed column (named; no setting fixes that);
- `default_rows`: rows waiting in a DEFAULT partition (`dmdb.partitions`' one count) ->
  `dmdb partitions create --fill`;
- `shared_buffers` (against the machine's memory, 25 %), `work_mem` (from the temporary
  files queries wrote), `max_wal_size` (from requested checkpoints, the monitor's rule)
  and `random_page_cost` (on SSD storage, 1.1) -> `ALTER SYSTEM SET ...`. The memory and
  the storage of the server's machine are read from this machine when the server runs
  here (the embedded one, a Unix socket, localhost), or given (`ram_bytes`, `storage`);
  else those two checks are UNKNOWN;
- `indexes`: `advise_indexes`' suggestions, unused and duplicate indexes -> `dmdb
  optimize indexes --write-migration` / `--write-drop-migration`.

`apply` runs only the safe, online fixes (ANALYZE, REINDEX CONCURRENTLY) on a session of
its own, and says what it did; everything else is printed for the operator.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmdb import resources
from dmdb.db import connect, describe_target, die_with_client, resolve
from dmdb.errors import DmdbError, first_line

if TYPE_CHECKING:

    from dmdb.config import Settings

CHECKS = ("stale_statistics", "index_bloat", "hot_updates", "default_rows", "shared_buffers",
          "work_mem", "max_wal_size", "random_page_cost", "indexes")
SEVERITY = {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}  # the monitor's order
# Index bloat: the monitor's thresholds (dmdb monitor --index-bloat-*).
BLOAT_RATIO = 2.0
BLOAT_MIN_BYTES = 100 * 1024 * 1024
BLOAT_MIN_PAGES = 100
# HOT: tables with at least this many updates, under this share of them HOT.
HOT_MIN_UPDATES = 1000
HOT_RATIO = 0.5
FILLFACTOR = 90
# shared_buffers: a quarter of the memory; out of line under half of that or over 40 %.
SHARED_BUFFERS_SHARE = 0.25
# max_wal_size: the monitor's checkpoints rule.
CHECKPOINT_REQ_RATIO = 0.5
CHECKPOINT_MIN = 20
SSD_RANDOM_PAGE_COST = 1.1
# A partitioned table never analyzed is worth an ANALYZE from this many rows on.
PARTITIONED_MIN_ROWS = 1000
MB = 1024 * 1024


@dataclass
class Finding:
    check: str
    subject: str  # the table, index or setting
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None  # the command that fixes it (SQL, or a dmdb command line)
    safe: bool = False  # online and harmless: `--apply` runs it
    applied: bool = False
    error: str | None = None  # why applying it failed
    seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Check:
    name: str
    status: str  # OK | WARNING | UNKNOWN
    summary: str
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass
class Machine:
    """What is known of the server's machine: its memory and its storage."""

    local: bool
    ram_bytes: int | None
    storage: str | None  # ssd | hdd | None (not known)
    how: str  # where these come from


@dataclass
class TuningReport:
    target: str
    machine: Machine
    checks: list[Check]
    applied: bool = False  # --apply ran
    index_advice: Any = None  # IndexAdvice, when the indexes check ran
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    @property
    def status(self) -> str:
        """The worst check, a finding fixed by --apply no longer counting."""
        worst = "OK"
        for c in self.checks:
            status = c.status
            if status == "WARNING" and c.findings and all(f.applied for f in c.findings):
                status = "OK"
            if SEVERITY[status] > SEVERITY[worst]:
                worst = status
        return worst

    def to_dict(self) -> dict:
        return {
            "status": self.status, "target": self.target, "machine": asdict(self.machine),
            "checks": [c.to_dict() for c in self.checks], "applied": self.applied,
            "index_advice": self.index_advice.to_dict() if self.index_advice else None,
            "seconds": round(self.seconds, 3),
        }


# -- sizes and the machine ---------------------------------------------------------------


def pretty(n: float) -> str:
    """Bytes as a PostgreSQL setting value: GB or MB, exact when they divide it, else
    rounded (GB from 10 GB on); kB under a MB."""
    n = int(n)
    gb = 1024 * MB
    if n >= gb and n % gb == 0:
        return f"{n // gb}GB"
    if n >= MB and n % MB == 0 and n < 10 * gb:
        return f"{n // MB}MB"
    if n >= 10 * gb:
        return f"{round(n / gb)}GB"
    if n >= MB:
        return f"{round(n / MB)}MB"
    return f"{max(n // 1024, 64)}kB"


def _power_of_two_mb(n: float) -> int:
    mb = 1
    while mb * MB < n:
        mb *= 2
    return mb * MB


def shared_buffers_advice(current: int, ram: int) -> int | None:
    """The shared_buffers to set, or None when `current` is in line with `ram`."""
    quarter = int(ram * SHARED_BUFFERS_SHARE)
    step = 1024 * MB if quarter >= 2048 * MB else 128 * MB  # whole GB from 2 GB on
    target = quarter // step * step or 128 * MB
    if current < target / 2 or current > ram * 0.4:
        return target
    return None


def work_mem_advice(current: int, temp_files: int, temp_bytes: int, ram: int | None,
                    max_connections: int) -> int | None:
    """A work_mem that holds the average spilled sort or hash (a power of two in MB),
    capped at a quarter of the memory shared by every connection; None: no spill, or
    nothing higher to suggest."""
    if temp_files <= 0:
        return None
    target = max(current * 2, _power_of_two_mb(temp_bytes / temp_files))
    if ram:
        cap = max(int(ram * 0.25 / max(max_connections, 1)), 4 * MB)
        target = min(target, _power_of_two_mb(cap) // 2 if _power_of_two_mb(cap) > cap else cap)
    return target if target > current else None


def max_wal_size_advice(current: int, timed: int, requested: int) -> int | None:
    total = timed + requested
    if total >= CHECKPOINT_MIN and requested / total >= CHECKPOINT_REQ_RATIO:
        return current * 2
    return None


def _local(settings: Settings) -> bool:
    host = settings.host or ""
    return settings.embedded or host.startswith("/") or host in ("localhost", "127.0.0.1",
                                                                   "::1", "")


def _ram() -> int | None:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < ram:
            ram = int(text)
    return ram


def rotational(path: str | None, sys_root: Path = Path("/sys")) -> bool | None:
    """Whether the storage under `path` spins: its block device's queue/rotational; for a
    path on no block device (overlay, tmpfs) or an unknown one, every disk of the machine
    (loop, ram and zram devices aside) agreeing; None when that cannot be told."""
    if path:
        try:
            dev = os.stat(path).st_dev
            block = sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
            for candidate in (block / "queue" / "rotational",
                              block / ".." / "queue" / "rotational"):
                if candidate.exists():
                    return candidate.read_text().strip() == "1"
        except OSError:
            pass
    flags = []
    for disk in sorted((sys_root / "block").glob("*")):
        if disk.name.startswith(("loop", "ram", "zram")):
            continue
        try:
            flags.append((disk / "queue" / "rotational").read_text().strip() == "1")
        except OSError:
            continue
    if flags and all(flags) == any(flags):
        return flags[0]
    return None


def machine(settings: Settings, data_directory: str | None, *, ram_bytes: int | None = None,
            storage: str | None = None) -> Machine:
    local = _local(settings)
    how = []
    if ram_bytes is None and local:
        ram_bytes = _ram()
        how.append("memory read on this machine (the server runs here)")
    elif ram_bytes is not None:
        how.append("memory given (--ram-gb)")
    if storage is None and local:
        path = data_directory or (str(Path(settings.home)) if settings.embedded and settings.home
                                  else None)
        spins = rotational(path)
        storage = None if spins is None else ("hdd" if spins else "ssd")
        how.append("storage read from /sys")
    elif storage is not None:
        how.append("storage given (--storage)")
    return Machine(local, ram_bytes, storage, "; ".join(how) or
                   "a remote server: its memory and storage are not visible from here")


# -- the checks ----------------------------------------------------------------------------


def _ident(schema: str, name: str) -> str:
    from psycopg import sql

    return sql.Identifier(schema, name).as_string()


def check_stale_statistics(conn, ctx: dict) -> Check:
    from dmdb import maintenance

    findings = []
    for schema in ctx["schemas"]:
        stats = maintenance.read_table_stats(conn, schema)
        for t in stats:
            never = t.last_analyze is None and t.last_autoanalyze is None
            if t.kind == "p":
                rows = sum(x.n_live_tup for x in stats if x.parent_oid == t.oid)
                if never and rows >= PARTITIONED_MIN_ROWS:
                    findings.append(Finding(
                        "stale_statistics", t.qualified,
                        f"partitioned table {t.qualified} was never analyzed (autovacuum never "
                        "analyzes a partitioned table): plans over all its partitions guess",
                        {"partition_rows": rows}, f"ANALYZE {_ident(t.schema, t.name)}", True))
                continue
            if t.analyze_due:
                why = (f"{t.n_mod_since_analyze:,} rows changed since the last analyze, over "
                       f"autovacuum's threshold {t.analyze_threshold:,.0f}"
                       + (" (never analyzed)" if never else ""))
                findings.append(Finding(
                    "stale_statistics", t.qualified, f"{t.qualified}: {why}",
                    {"n_mod_since_analyze": t.n_mod_since_analyze,
                     "analyze_threshold": round(t.analyze_threshold, 1),
                     "n_live_tup": t.n_live_tup, "last_analyze": t.last_analyze,
                     "last_autoanalyze": t.last_autoanalyze},
                    f"ANALYZE {_ident(t.schema, t.name)}", True))
    if not findings:
        return Check("stale_statistics", "OK", "every table's statistics are within "
                     "autovacuum's analyze threshold")
    return Check("stale_statistics", "WARNING",
                 f"{len(findings)} table(s) with stale statistics", findings)


def check_index_bloat(conn, ctx: dict) -> Check:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("monitor/index_bloat"),
                           {"min_pages": ctx["bloat_min_pages"]}).fetchall()
    findings = []
    for r in rows:
        if r["bloat_ratio"] >= ctx["bloat_ratio"] and r["wasted_bytes"] >= ctx["bloat_min_bytes"]:
            name = f"{r['schemaname']}.{r['indexrelname']}"
            findings.append(Finding(
                "index_bloat", name,
                f"{name} on {r['relname']}: ~{r['bloat_ratio']:g}x the size its rows need "
                f"(~{r['wasted_bytes']:,} bytes wasted; estimate, +/- 20 %)",
                {k: r[k] for k in ("pages", "expected_pages", "reltuples", "bloat_ratio",
                                   "wasted_bytes")},
                f"REINDEX INDEX CONCURRENTLY {_ident(r['schemaname'], r['indexrelname'])}", True))
    if not findings:
        return Check("index_bloat", "OK", f"no btree index estimated >= {ctx['bloat_ratio']:g}x "
                     f"its size with >= {ctx['bloat_min_bytes']:,} bytes wasted "
                     f"({len(rows)} estimated)")
    return Check("index_bloat", "WARNING", f"{len(findings)} bloated index(es)", findings)


def check_hot_updates(conn, ctx: dict) -> Check:
    from psycopg import sql
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("optimize_hot_updates"),
                           {"schemas": list(ctx["schemas"]), "min_updates": ctx["hot_min_updates"],
                            "hot_ratio": HOT_RATIO}).fetchall()
    findings = []
    for r in rows:
        name = f"{r['schema']}.{r['name']}"
        cold = r["updates"] - r["hot_updates"]
        share = r["hot_updates"] / r["updates"]
        evidence = {k: r[k] for k in ("updates", "hot_updates", "newpage_updates", "fillfactor",
                                      "size_bytes")}
        newpage = r["newpage_updates"] or 0
        if newpage >= cold / 2 and r["fillfactor"] > FILLFACTOR and r["kind"] == "r":
            ff = FILLFACTOR if r["fillfactor"] >= 100 else max(50, r["fillfactor"] - 10)
            fix = sql.SQL("ALTER TABLE {} SET (fillfactor = {})").format(
                sql.Identifier(r["schema"], r["name"]), sql.Literal(ff)).as_string()
            findings.append(Finding(
                "hot_updates", name,
                f"{name}: {share:.0%} of {r['updates']:,} updates HOT; {newpage:,} found no room "
                f"on their page (fillfactor {r['fillfactor']}): a lower fillfactor leaves room "
                "on pages written from now on (existing pages as their rows move, or after "
                "a rewrite)", evidence, fix, False))
        else:
            findings.append(Finding(
                "hot_updates", name,
                f"{name}: {share:.0%} of {r['updates']:,} updates HOT; most change a column "
                "an index names, which no setting makes HOT: drop or narrow that index if the "
                "updated column need not be indexed (dmdb optimize indexes shows its use)",
                evidence, None, False))
    if not findings:
        return Check("hot_updates", "OK", f"no table with >= {ctx['hot_min_updates']:,} updates "
                     f"under {HOT_RATIO:.0%} HOT")
    return Check("hot_updates", "WARNING", f"{len(findings)} table(s) whose updates are not HOT",
                 findings)


def check_default_rows(conn, ctx: dict) -> Check:
    from dmdb.partitions import read_bounds, read_default

    findings = []
    parents = sorted({b.parent_oid for b in read_bounds(conn) if b.is_default})
    for oid in parents:
        contents = read_default(conn, oid)
        if contents is None or contents.rows == 0:
            continue
        months = {m.label: m.rows for m in (contents.months or [])}
        findings.append(Finding(
            "default_rows", contents.parent,
            f"{contents.rows:,} row(s) in the DEFAULT partition of {contents.parent}: every "
            "query on it reads them, and a month created for them must move them first",
            {"rows": contents.rows, "months": months},
            "dmdb partitions create --fill" + (f" --table {contents.parent}"
                                                if contents.parent != "public.learning_events"
                                                else ""), False))
    if not findings:
        return Check("default_rows", "OK", f"no row in the DEFAULT partitions ({len(parents)})")
    return Check("default_rows", "WARNING", f"{sum(f.evidence['rows'] for f in findings):,} "
                 "row(s) in DEFAULT partitions", findings)


def _alter_system(name: str, value: str, restart: bool) -> str:
    from psycopg import sql

    # `name` is one of this module's setting names, never input.
    stmt = sql.SQL("ALTER SYSTEM SET {} = {};").format(sql.SQL(name),
                                                        sql.Literal(value)).as_string()
    return stmt + (" -- then restart the server" if restart else " SELECT pg_reload_conf();")


def check_shared_buffers(conn, ctx: dict) -> Check:
    s, m = ctx["settings"], ctx["machine"]
    if m.ram_bytes is None:
        return Check("shared_buffers", "UNKNOWN",
                     f"shared_buffers {pretty(s['shared_buffers'])}; the server's memory is not "
                     "known from here ({}); give it with --ram-gb".format(m.how))
    target = shared_buffers_advice(s["shared_buffers"], m.ram_bytes)
    share = s["shared_buffers"] / m.ram_bytes
    text = (f"shared_buffers {pretty(s['shared_buffers'])} is {share:.1%} of "
            f"{pretty(m.ram_bytes).replace('GB', ' GB').replace('MB', ' MB')}")
    if target is None:
        return Check("shared_buffers", "OK", f"{text} of memory")
    return Check("shared_buffers", "WARNING", f"{text}: out of line", [Finding(
        "shared_buffers", "shared_buffers",
        f"{text} of memory; about {SHARED_BUFFERS_SHARE:.0%} ({pretty(target)}) is usual",
        {"shared_buffers": s["shared_buffers"], "ram_bytes": m.ram_bytes, "machine": m.how},
        _alter_system("shared_buffers", pretty(target), True), False)])


def check_work_mem(conn, ctx: dict) -> Check:
    from psycopg.rows import dict_row

    s = ctx["settings"]
    with conn.cursor(row_factory=dict_row) as cur:
        t = cur.execute(resources.query("optimize_temp_files")).fetchone()
    target = work_mem_advice(s["work_mem"], t["temp_files"], t["temp_bytes"],
                             ctx["machine"].ram_bytes, s["max_connections"])
    text = (f"{t['temp_files']:,} temporary file(s), {t['temp_bytes']:,} bytes, since "
            f"{t['stats_reset'] or 'the statistics were last reset'}; work_mem "
            f"{pretty(s['work_mem'])}")
    if target is None:
        return Check("work_mem", "OK", text)
    spilling = sorted((st for st in ctx.get("statements", []) if st.temp_blks_written),
                      key=lambda st: -st.temp_blks_written)[:3]
    evidence = {"temp_files": t["temp_files"], "temp_bytes": t["temp_bytes"],
                "average_bytes": t["temp_bytes"] // t["temp_files"], "work_mem": s["work_mem"],
                "statements": [{"queryid": st.queryid, "temp_blks_written": st.temp_blks_written,
                                "query": " ".join(st.query.split())[:200]} for st in spilling]}
    return Check("work_mem", "WARNING", f"{text}: sorts and hashes spill to disk", [Finding(
        "work_mem", "work_mem",
        f"queries wrote {t['temp_files']:,} temporary file(s) averaging "
        f"{evidence['average_bytes']:,} bytes: work_mem {pretty(target)} holds them in memory "
        "(per sort or hash node and connection: for a few heavy queries, `ALTER ROLE ... SET "
        "work_mem` instead)", evidence, _alter_system("work_mem", pretty(target), False), False)])


def check_max_wal_size(conn, ctx: dict) -> Check:
    from psycopg.rows import dict_row

    s = ctx["settings"]
    name = "monitor/checkpoints" if conn.info.server_version >= 170000 else "monitor/checkpoints_16"
    with conn.cursor(row_factory=dict_row) as cur:
        c = cur.execute(resources.query(name)).fetchone()
    total = c["timed"] + c["requested"]
    text = (f"{c['requested']:,} of {total:,} checkpoints requested since "
            f"{c['stats_reset'] or 'the statistics were last reset'}; max_wal_size "
            f"{pretty(s['max_wal_size'])}")
    target = max_wal_size_advice(s["max_wal_size"], c["timed"], c["requested"])
    if target is None:
        return Check("max_wal_size", "OK", text + ("" if total >= CHECKPOINT_MIN else
                                                   " (too few to judge)"))
    return Check("max_wal_size", "WARNING", f"{text}: WAL fills max_wal_size before "
                 "checkpoint_timeout", [Finding(
                     "max_wal_size", "max_wal_size",
                     f"{c['requested'] / total:.0%} of checkpoints were requested (WAL reached "
                     f"max_wal_size, or a CHECKPOINT command): each writes every dirty page "
                     f"early and makes the next writes log full pages; max_wal_size "
                     f"{pretty(target)} spaces them out", {"timed": c["timed"],
                                                          "requested": c["requested"],
                                                          "max_wal_size": s["max_wal_size"]},
                     _alter_system("max_wal_size", pretty(target), False), False)])


def check_random_page_cost(conn, ctx: dict) -> Check:
    s, m = ctx["settings"], ctx["machine"]
    cost = s["random_page_cost"]
    if m.storage is None:
        return Check("random_page_cost", "UNKNOWN",
                     f"random_page_cost {cost:g}; the server's storage is not known from here "
                     f"({m.how}); give it with --storage ssd|hdd (managed services run on SSD)")
    if m.storage == "ssd" and cost >= 2:
        return Check("random_page_cost", "WARNING", f"random_page_cost {cost:g} on SSD", [Finding(
            "random_page_cost", "random_page_cost",
            f"random_page_cost {cost:g} prices a random read as a spinning disk's; on SSD "
            f"{SSD_RANDOM_PAGE_COST:g} lets the planner choose index scans where they are cheaper",
            {"random_page_cost": cost, "storage": m.storage, "machine": m.how},
            _alter_system("random_page_cost", f"{SSD_RANDOM_PAGE_COST:g}", False), False)])
    return Check("random_page_cost", "OK", f"random_page_cost {cost:g} on {m.storage.upper()}")


def check_indexes(conn, ctx: dict) -> Check:
    from dmdb.optimize.advise import advise_indexes

    advice = advise_indexes(ctx["settings_obj"], schemas=ctx["schemas"],
                            progress=ctx.get("progress"), **ctx.get("index_options", {}))
    ctx["index_advice"] = advice
    findings = [Finding(
        "indexes", f"{d.table} ({', '.join(d.columns)})",
        f"add {d.name} on {d.table} ({', '.join(d.columns)})"
        + (f" WHERE {d.where}" if d.where else "") + f": {d.reason}",
        {"benefit_ms": round(d.benefit_ms, 3), "write_cost_ms": round(d.write_cost_ms, 3),
         "size_bytes": d.size_bytes}, "dmdb optimize indexes --write-migration", False)
        for d in advice.suggestions]
    for r in advice.unused:
        findings.append(Finding(
            "indexes", f"{r['schema']}.{r['index']}",
            f"{r['schema']}.{r['index']} on {r['table']}: unused since the statistics reset",
            {"size_bytes": r["size_bytes"], "scans": r["scans"]},
            "dmdb optimize indexes --write-drop-migration", False))
    for r in advice.duplicates:
        findings.append(Finding(
            "indexes", f"{r['schema']}.{r['index']}",
            f"{r['schema']}.{r['index']} on {r['table']}: covered by {r['covered_by']}",
            {"size_bytes": r["size_bytes"]}, "dmdb optimize indexes --write-drop-migration", False))
    summary = (f"{len(advice.suggestions)} index(es) to add, "
               f"{len(advice.unused) + len(advice.duplicates)} to drop")
    return Check("indexes", advice.status if advice.status != "OK" else "OK", summary, findings)


_FUNCTIONS: dict[str, Callable[[Any, dict], Check]] = {
    "stale_statistics": check_stale_statistics, "index_bloat": check_index_bloat,
    "hot_updates": check_hot_updates, "default_rows": check_default_rows,
    "shared_buffers": check_shared_buffers, "work_mem": check_work_mem,
    "max_wal_size": check_max_wal_size, "random_page_cost": check_random_page_cost,
    "indexes": check_indexes,
}


def apply_fixes(settings: Settings, findings: list[Finding],
                progress: Callable[[str], None] | None = None) -> None:
    """Run the safe fixes (ANALYZE, REINDEX CONCURRENTLY), one by one, on a session of
    their own; each finding says whether it was applied, how long it took, or why not."""
    import psycopg

    safe = [f for f in findings if f.safe and f.fix]
    if not safe:
        return
    with connect(settings, autocommit=True, session="dmdb optimize --apply") as conn:
        die_with_client(conn)
        for f in safe:
            if progress:
                progress(f.fix)
            started = time.monotonic()
            try:
                conn.execute(f.fix)
                f.applied = True
            except psycopg.Error as exc:
                f.error = first_line(exc)
            f.seconds = round(time.monotonic() - started, 3)


def optimize(settings: Settings, *, schemas: tuple[str, ...] = ("public",),
             only: list[str] | None = None, apply: bool = False, ram_bytes: int | None = None,
             storage: str | None = None, bloat_ratio: float = BLOAT_RATIO,
             bloat_min_bytes: int = BLOAT_MIN_BYTES, bloat_min_pages: int = BLOAT_MIN_PAGES,
             hot_min_updates: int = HOT_MIN_UPDATES, index_options: dict | None = None,
             progress: Callable[[str], None] | None = None) -> TuningReport:
    """Every check (or those of `only`), each on its own read-only transaction; with
    `apply`, the safe fixes run afterwards."""
    from psycopg.rows import dict_row

    from dmdb.optimize.workload import read_workload

    started = time.monotonic()
    names = [c for c in CHECKS if only is None or c in only]
    settings = resolve(settings)
    checks: list[Check] = []
    with connect(settings, autocommit=True) as conn:
        with conn.cursor(row_factory=dict_row) as cur:
            values = cur.execute(resources.query("optimize_settings")).fetchone()
        found = machine(settings, values["data_directory"], ram_bytes=ram_bytes, storage=storage)
        ctx: dict[str, Any] = {
            "schemas": schemas, "settings": values, "machine": found, "settings_obj": settings,
            "bloat_ratio": bloat_ratio, "bloat_min_bytes": bloat_min_bytes,
            "bloat_min_pages": bloat_min_pages, "hot_min_updates": hot_min_updates,
            "index_options": index_options or {}, "progress": progress,
        }
        try:
            ctx["statements"] = read_workload(conn).statements
        except Exception:  # work_mem's evidence only (no pg_stat_statements: none)
            ctx["statements"] = []
        for name in names:
            if progress:
                progress(name)
            try:
                if name == "indexes":
                    checks.append(_FUNCTIONS[name](conn, ctx))
                    continue
                conn.execute("BEGIN READ ONLY")
                try:
                    conn.execute("SELECT set_config('statement_timeout', '30s', true)")
                    checks.append(_FUNCTIONS[name](conn, ctx))
                finally:
                    conn.execute("ROLLBACK")
            except DmdbError as exc:
                checks.append(Check(name, "UNKNOWN", str(exc)))
            except Exception as exc:  # a check that fails is UNKNOWN; the others run
                from dmdb.db import redact

                checks.append(Check(name, "UNKNOWN", redact(first_line(exc), settings)))
    report = TuningReport(describe_target(settings), found, checks, apply,
                          ctx.get("index_advice"))
    if apply:
        apply_fixes(settings, report.findings, progress)
    report.seconds = time.monotonic() - started
    return report
