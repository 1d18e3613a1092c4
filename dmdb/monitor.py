"""Health checks and pg_stat metrics for `dmdb monitor`.

Each check is a small function `check_x(conn, thresholds) -> CheckResult` running the
read-only queries in sql/queries/monitor/. `run_checks` runs them all (or a selection),
each on its own so that one failing check turns UNKNOWN and the others still run, and
returns a `Report`. Renderers (dashboard, JSON, Prometheus) live in dmdb.monitor_render.

Thresholds follow pghero, heroku pg-extras and check_postgres (see README, "Monitor").
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dmdb.errors import ConfigError, first_line
from dmdb.resources import query

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT = "30s"


class Status(enum.IntEnum):
    """check_postgres / Nagios states; the value is the exit code of `--check`."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        """Order for "the worst": CRITICAL > WARNING > UNKNOWN > OK."""
        return {0: 0, 3: 1, 1: 2, 2: 3}[self.value]


def worst(statuses) -> Status:
    statuses = list(statuses)
    if not statuses:
        return Status.OK
    return max(statuses, key=lambda s: s.severity)


@dataclass
class CheckResult:
    name: str
    status: Status
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status.name,
            "summary": self.summary,
            "metrics": self.metrics,
            "rows": self.rows,
            "notes": self.notes,
        }


@dataclass
class Report:
    checks: list[CheckResult]
    generated_at: datetime
    target: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return worst(c.status for c in self.checks)

    def worst_check(self) -> CheckResult | None:
        if not self.checks:
            return None
        return max(self.checks, key=lambda c: c.status.severity)

    def check_line(self) -> str:
        """check_postgres style: `STATE: description` for the worst check."""
        top = self.worst_check()
        if top is None or top.status is Status.OK:
            return f"OK: {len(self.checks)} checks OK"
        others = [c.name for c in self.checks
                  if c.status is not Status.OK and c is not top]
        tail = f" (also not OK: {', '.join(others)})" if others else ""
        return f"{top.status.name}: {top.name}: {top.summary}{tail}"

    def to_dict(self) -> dict:
        return {
            "checks": [c.to_dict() for c in self.checks],
            "status": self.status.name,
            "generated_at": self.generated_at.isoformat(),
        }


@dataclass
class Thresholds:
    """Every threshold a check uses; defaults from pghero / pg-extras / check_postgres."""

    connections_warn_pct: float = 90.0         # check_postgres
    connections_critical_pct: float = 95.0
    idle_in_transaction_warn: int = 100         # pghero: < 100 idle in transaction
    idle_in_transaction_seconds: float = 300.0  # any one idle in transaction this long
    long_query_seconds: float = 60.0            # pghero
    blocked_seconds: float = 5.0                # a lock wait this long is a WARNING
    cache_hit_warn: float = 0.99                # pghero (pg-extras diagnose: 0.985)
    cache_min_reads: int = 1000                 # fewer block accesses: too few to judge
    xid_warn: int = 1_300_000_000               # check_postgres txn_wraparound
    xid_critical: int = 1_400_000_000
    seq_warn_pct: float = 85.0                  # check_postgres sequence
    seq_critical_pct: float = 95.0
    unused_min_bytes: int = 10 * 1024 * 1024    # pghero: unused indexes >= 10 MB
    dead_tuples_factor: float = 2.0             # dead tuples >= factor x autovacuum trigger
    bloat_warn_ratio: float = 2.0               # pages >= ratio x expected pages ...
    bloat_min_bytes: int = 100 * 1024 * 1024    # ... and at least this much wasted
    bloat_min_pages: int = 100                  # smaller tables are not estimated
    replication_lag_warn_seconds: float = 5.0   # pghero
    replication_lag_critical_seconds: float = 60.0
    partition_months_ahead: int = 2             # future monthly partitions wanted
    partitioned_tables: tuple[str, ...] = ("public.learning_events",)
    slow_query_mean_seconds: float = 0.020      # pghero: mean >= 20 ms ...
    slow_query_calls: int = 100                 # ... and calls >= 100
    top_queries: int = 10
    xid_tables: int = 10

    def validate(self) -> Thresholds:
        def bad(msg: str):
            raise ConfigError(msg)

        if not 0 < self.connections_warn_pct <= self.connections_critical_pct <= 100:
            bad("--connections-warn and --connections-critical are percentages of "
                "max_connections with 0 < warn <= critical <= 100")
        if not 0 < self.seq_warn_pct <= self.seq_critical_pct <= 100:
            bad("--seq-warn and --seq-critical are percentages with 0 < warn <= critical <= 100")
        if not 0 < self.xid_warn <= self.xid_critical:
            bad("--xid-warn and --xid-critical are transaction ages with 0 < warn <= critical")
        if not 0 <= self.cache_hit_warn <= 1:
            bad("--cache-hit-warn is a ratio between 0 and 1, e.g. 0.99")
        if not 0 <= self.replication_lag_warn_seconds <= self.replication_lag_critical_seconds:
            bad("--replication-lag-warn must be >= 0 and <= --replication-lag-critical")
        for name in ("idle_in_transaction_warn", "long_query_seconds", "blocked_seconds",
                     "cache_min_reads", "unused_min_bytes", "dead_tuples_factor",
                     "bloat_warn_ratio", "bloat_min_bytes", "bloat_min_pages",
                     "partition_months_ahead", "idle_in_transaction_seconds"):
            if getattr(self, name) < 0:
                bad(f"--{name.replace('_', '-')} must not be negative")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------- helpers

def _sql(name: str) -> str:
    return query(f"monitor/{name}")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _rows(conn: psycopg.Connection, name: str, params: dict | None = None,
          text: Any = None) -> list[dict]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(text if text is not None else _sql(name), params)
        return [{k: _plain(v) for k, v in row.items()} for row in cur.fetchall()]


def _pct(x: float) -> str:
    return f"{x:.1f}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover


# ---------------------------------------------------------------------------- checks

def check_connections(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "connections")
    idle = _rows(conn, "idle_in_transaction")
    max_conn = rows[0]["max_connections"] if rows else int(
        conn.execute("SELECT current_setting('max_connections')::int").fetchone()[0])
    total = sum(r["count"] for r in rows)
    used_pct = 100.0 * total / max_conn
    idle_count = len(idle)
    oldest = max((r["idle_seconds"] or 0.0 for r in idle), default=0.0)
    status = Status.OK
    problems = []
    if used_pct >= t.connections_critical_pct:
        status = Status.CRITICAL
        problems.append(f"connections at {_pct(used_pct)} of max_connections "
                        f"(critical {t.connections_critical_pct:g}%)")
    elif used_pct >= t.connections_warn_pct:
        status = Status.WARNING
        problems.append(f"connections at {_pct(used_pct)} of max_connections "
                        f"(warning {t.connections_warn_pct:g}%)")
    if idle_count and idle_count >= t.idle_in_transaction_warn:
        status = worst([status, Status.WARNING])
        problems.append(f"{idle_count} idle in transaction (warning {t.idle_in_transaction_warn})")
    if idle_count and oldest >= t.idle_in_transaction_seconds:
        status = worst([status, Status.WARNING])
        problems.append(f"a session idle in transaction for {oldest:.0f} s "
                        f"(warning {t.idle_in_transaction_seconds:g} s)")
    summary = (f"{total}/{max_conn} connections ({_pct(used_pct)}), "
               f"{idle_count} idle in transaction"
               + (f", oldest {oldest:.0f} s" if idle_count else ""))
    if problems:
        summary = "; ".join(problems) + f" — {summary}"
    by_state = [{"datname": r["datname"], "state": r["state"], "count": r["count"],
                 "oldest_seconds": r["oldest_seconds"]} for r in rows]
    return CheckResult(
        "connections", status, summary,
        metrics={"total": total, "max_connections": max_conn, "used_pct": round(used_pct, 2),
                 "idle_in_transaction": idle_count,
                 "idle_in_transaction_oldest_seconds": round(oldest, 3),
                 "by_state": by_state},
        rows=[{"status": "WARNING" if (r["idle_seconds"] or 0) >= t.idle_in_transaction_seconds
               else "OK", **r} for r in idle],
    )


def check_long_running(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "long_running", {"seconds": t.long_query_seconds})
    longest = max((r["duration_seconds"] for r in rows), default=0.0)
    if rows:
        return CheckResult(
            "long_running_queries", Status.WARNING,
            f"{_plural(len(rows), 'query')} running >= {t.long_query_seconds:g} s "
            f"(longest {longest:.0f} s, pid {rows[0]['pid']})",
            metrics={"count": len(rows), "max_seconds": round(longest, 3)}, rows=rows)
    return CheckResult("long_running_queries", Status.OK,
                       f"no query running >= {t.long_query_seconds:g} s",
                       metrics={"count": 0, "max_seconds": 0.0})


def check_blocked(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "blocked")
    blocked = sorted({r["blocked_pid"] for r in rows})
    blockers = sorted({r["blocking_pid"] for r in rows})
    longest = max((r["waiting_seconds"] or 0.0 for r in rows), default=0.0)
    for r in rows:
        r["status"] = "WARNING" if (r["waiting_seconds"] or 0) >= t.blocked_seconds else "OK"
    metrics = {"count": len(blocked), "blocking": len(blockers),
               "max_wait_seconds": round(longest, 3)}
    if not rows:
        return CheckResult("blocked_queries", Status.OK, "no query waiting for a lock",
                           metrics=metrics)
    status = Status.WARNING if longest >= t.blocked_seconds else Status.OK
    summary = (f"{_plural(len(blocked), 'query')} waiting for a lock (longest {longest:.1f} s), "
               f"blocked by pid {', '.join(map(str, blockers))}")
    return CheckResult("blocked_queries", status, summary, metrics=metrics, rows=rows)


def check_cache_hit(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "cache_hit")
    metrics: dict[str, Any] = {}
    status = Status.OK
    parts, notes, out_rows = [], [], []
    for r in rows:
        kind, hits, reads = r["kind"], r["hits"], r["reads"]
        accesses = hits + reads
        ratio = hits / accesses if accesses else None
        metrics[f"{kind}_hits"] = hits
        metrics[f"{kind}_reads"] = reads
        metrics[f"{kind}_ratio"] = round(ratio, 6) if ratio is not None else None
        if accesses < t.cache_min_reads:
            verdict = "OK"
            notes.append(f"{kind} ratio: too few block accesses to judge ({accesses} < "
                         f"{t.cache_min_reads}, --cache-min-reads)")
            parts.append(f"{kind} " + (f"{ratio:.4f}" if ratio is not None else "n/a")
                         + " (too few reads)")
        elif ratio < t.cache_hit_warn:
            verdict = "WARNING"
            status = Status.WARNING
            parts.append(f"{kind} {ratio:.4f} < {t.cache_hit_warn:g}")
        else:
            verdict = "OK"
            parts.append(f"{kind} {ratio:.4f}")
        out_rows.append({"status": verdict, "kind": kind, "hits": hits, "reads": reads,
                         "ratio": metrics[f"{kind}_ratio"]})
    return CheckResult("cache_hit", status, "hit ratio " + ", ".join(parts),
                       metrics=metrics, rows=out_rows, notes=notes)


def _xid_status(age: int, t: Thresholds) -> Status:
    if age >= t.xid_critical:
        return Status.CRITICAL
    if age >= t.xid_warn:
        return Status.WARNING
    return Status.OK


def check_xid_wraparound(conn, t: Thresholds) -> CheckResult:
    dbs = _rows(conn, "xid_databases")
    tables = _rows(conn, "xid_tables", {"limit": t.xid_tables})
    rows = []
    for r in dbs:
        rows.append({"status": _xid_status(r["xid_age"], t).name, "scope": "database",
                     "name": r["datname"], "xid_age": r["xid_age"], "mxid_age": r["mxid_age"]})
    for r in tables:
        rows.append({"status": _xid_status(r["xid_age"], t).name, "scope": "table",
                     "name": f"{r['schemaname']}.{r['relname']}", "xid_age": r["xid_age"],
                     "mxid_age": None})
    status = worst(Status[r["status"]] for r in rows)
    oldest = max(rows, key=lambda r: r["xid_age"], default=None)
    max_age = oldest["xid_age"] if oldest else 0
    summary = (f"oldest transaction ID age {max_age:,} ({oldest['scope']} {oldest['name']}; "
               f"{100.0 * max_age / 2**31:.1f}% of the way to wraparound)"
               if oldest else "no databases")
    if status is not Status.OK:
        limit = t.xid_critical if status is Status.CRITICAL else t.xid_warn
        summary = f"{summary}, over {limit:,}"
    return CheckResult(
        "xid_wraparound", status, summary,
        metrics={"max_age": max_age,
                 "databases": {r["datname"]: r["xid_age"] for r in dbs},
                 "tables": {f"{r['schemaname']}.{r['relname']}": r["xid_age"] for r in tables}},
        rows=rows)


def check_sequences(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "sequences")
    out = []
    for r in rows:
        pct = 100.0 * (r["used_ratio"] or 0.0)
        if pct >= t.seq_critical_pct:
            s = Status.CRITICAL
        elif pct >= t.seq_warn_pct:
            s = Status.WARNING
        else:
            s = Status.OK
        out.append({"status": s.name, "schemaname": r["schemaname"],
                    "sequencename": r["sequencename"], "owned_by": r["owned_by"],
                    "data_type": r["data_type"], "last_value": r["last_value"],
                    "max_value": r["limit_value"], "used_pct": round(pct, 3)})
    status = worst(Status[r["status"]] for r in out)
    top = out[0] if out else None
    if top is None:
        summary = "no sequences"
    else:
        bad = [r for r in out if r["status"] != "OK"]
        head = f"{top['schemaname']}.{top['sequencename']} at {_pct(top['used_pct'])} of its maximum"
        summary = (f"{_plural(len(bad), 'sequence')} near the maximum; {head}" if bad
                   else f"{_plural(len(out), 'sequence')}, fullest {head}")
    return CheckResult("sequences", status, summary,
                       metrics={"count": len(out),
                                "max_used_pct": top["used_pct"] if top else 0.0},
                       rows=out)


def check_invalid_indexes(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "invalid_indexes")
    for r in rows:
        r["status"] = "OK" if r["building"] else "WARNING"
    broken = [r for r in rows if not r["building"]]
    if not rows:
        return CheckResult("invalid_indexes", Status.OK, "no invalid index",
                           metrics={"count": 0, "building": 0})
    names = ", ".join(f"{r['schemaname']}.{r['indexrelname']}" for r in broken[:5])
    summary = (f"{_plural(len(broken), 'invalid index')}: {names} — drop and rebuild "
               "(`dmdb indexes`)" if broken else
               f"{_plural(len(rows), 'index')} being built concurrently")
    return CheckResult("invalid_indexes", Status.WARNING if broken else Status.OK, summary,
                       metrics={"count": len(broken), "building": len(rows) - len(broken)},
                       rows=rows)


def check_not_valid_constraints(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "not_valid_constraints")
    if not rows:
        return CheckResult("not_valid_constraints", Status.OK, "every constraint validated",
                           metrics={"count": 0})
    for r in rows:
        r["status"] = "WARNING"
    names = ", ".join(f"{r['relname']}.{r['conname']}" for r in rows[:5])
    return CheckResult(
        "not_valid_constraints", Status.WARNING,
        f"{_plural(len(rows), 'constraint')} NOT VALID: {names} — existing rows unchecked; "
        "run ALTER TABLE ... VALIDATE CONSTRAINT",
        metrics={"count": len(rows)}, rows=rows)


def check_unused_indexes(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "unused_indexes", {"min_bytes": t.unused_min_bytes})
    reset = rows[0]["stats_reset"] if rows else conn.execute(
        query("indexes_stats_reset")).fetchone()[0]
    reset = _plain(reset)
    since = f"since statistics reset at {reset}" if reset else "since statistics began"
    total = sum(r["size_bytes"] for r in rows)
    for r in rows:
        r["status"] = "WARNING"
    metrics = {"count": len(rows), "size_bytes": total, "stats_reset": reset}
    if not rows:
        return CheckResult("unused_indexes", Status.OK,
                           f"no unused index >= {_size(t.unused_min_bytes)} ({since})",
                           metrics=metrics)
    return CheckResult(
        "unused_indexes", Status.WARNING,
        f"{_plural(len(rows), 'index')} never scanned {since}, {_size(total)} in all "
        "(scans counted on this server only)", metrics=metrics, rows=rows)


def check_duplicate_indexes(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "duplicate_indexes")
    total = sum(r["size_bytes"] for r in rows)
    for r in rows:
        r["status"] = "WARNING"
    metrics = {"count": len(rows), "size_bytes": total}
    if not rows:
        return CheckResult("duplicate_indexes", Status.OK, "no duplicate index",
                           metrics=metrics)
    names = ", ".join(f"{r['indexrelname']} (covered by {r['covered_by']})" for r in rows[:5])
    return CheckResult("duplicate_indexes", Status.WARNING,
                       f"{_plural(len(rows), 'redundant index')}: {names}",
                       metrics=metrics, rows=rows)


def check_dead_tuples(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "dead_tuples")
    over = []
    for r in rows:
        trigger = max(r["vacuum_trigger"], 1.0)
        r["trigger_ratio"] = round(r["n_dead_tup"] / trigger, 3)
        late = r["n_dead_tup"] >= t.dead_tuples_factor * trigger
        r["status"] = "WARNING" if late else "OK"
        if late:
            over.append(r)
    rows.sort(key=lambda r: (-r["trigger_ratio"], r["schemaname"], r["relname"]))
    total = sum(r["n_dead_tup"] for r in rows)
    metrics = {"dead_tuples": total, "tables_over_trigger": len(over)}
    if not over:
        return CheckResult(
            "dead_tuples", Status.OK,
            f"{total:,} dead tuples; no table beyond {t.dead_tuples_factor:g} x its autovacuum "
            "trigger point", metrics=metrics, rows=rows)
    worst_row = max(over, key=lambda r: r["trigger_ratio"])
    off = [r for r in over if not r["autovacuum_enabled"]]
    hint = (f"; autovacuum is off for {', '.join(r['relname'] for r in off)}" if off else "")
    return CheckResult(
        "dead_tuples", Status.WARNING,
        f"{_plural(len(over), 'table')} with dead tuples >= {t.dead_tuples_factor:g} x the "
        f"autovacuum trigger point (worst {worst_row['schemaname']}.{worst_row['relname']}: "
        f"{worst_row['n_dead_tup']:,} dead, trigger {worst_row['vacuum_trigger']:,.0f}){hint}",
        metrics=metrics, rows=rows)


def check_bloat(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "bloat", {"min_pages": t.bloat_min_pages})
    skipped = rows[0]["skipped"] if rows else 0
    bad = []
    for r in rows:
        r.pop("skipped", None)
        flagged = (r["bloat_ratio"] >= t.bloat_warn_ratio
                   and r["wasted_bytes"] >= t.bloat_min_bytes)
        r["status"] = "WARNING" if flagged else "OK"
        if flagged:
            bad.append(r)
    wasted = sum(r["wasted_bytes"] for r in rows)
    notes = [f"{_plural(skipped, 'table')} without statistics skipped (run ANALYZE)"] \
        if skipped else []
    if not rows:
        notes.append(f"no table of {t.bloat_min_pages}+ pages to estimate")
    metrics = {"tables_estimated": len(rows), "tables_bloated": len(bad),
               "wasted_bytes": wasted, "tables_skipped": skipped}
    if not bad:
        return CheckResult("bloat", Status.OK,
                           f"no table estimated >= {t.bloat_warn_ratio:g}x its size with "
                           f">= {_size(t.bloat_min_bytes)} wasted ({len(rows)} estimated)",
                           metrics=metrics, rows=rows, notes=notes)
    top = bad[0]
    return CheckResult(
        "bloat", Status.WARNING,
        f"{_plural(len(bad), 'table')} bloated (worst {top['schemaname']}.{top['relname']}: "
        f"{top['bloat_ratio']:g}x, ~{_size(top['wasted_bytes'])} wasted); estimate, "
        "+/- 20 %", metrics=metrics, rows=rows, notes=notes)


def _lag_status(seconds: float, t: Thresholds) -> Status:
    if seconds >= t.replication_lag_critical_seconds:
        return Status.CRITICAL
    if seconds >= t.replication_lag_warn_seconds:
        return Status.WARNING
    return Status.OK


def check_replication(conn, t: Thresholds, *, primary: Callable | None = None) -> CheckResult:
    """`conn` is the read connection; `primary()` gives the primary's connection (the only
    one pg_stat_replication lists replicas on)."""
    rows: list[dict] = []
    standby = _rows(conn, "replication_standby")[0]
    if standby["in_recovery"]:
        # Reading from a standby: how far behind it is.
        rows.append({"role": "standby (read connection)", "application_name": None,
                     "client_addr": None, "state": "streaming", "lag_bytes": standby["lag_bytes"],
                     "lag_seconds": standby["lag_seconds"]})
    pconn = primary() if primary is not None else conn
    if pconn is not conn or not standby["in_recovery"]:
        for r in _rows(pconn, "replication_primary"):
            rows.append({"role": "replica", **{k: r[k] for k in (
                "application_name", "client_addr", "state", "lag_bytes", "lag_seconds")}})
    for r in rows:
        r["status"] = _lag_status(r["lag_seconds"] or 0.0, t).name
    if not rows:
        return CheckResult("replication", Status.OK, "no replicas",
                           metrics={"replicas": 0, "max_lag_seconds": 0.0, "max_lag_bytes": 0.0})
    max_s = max(r["lag_seconds"] or 0.0 for r in rows)
    max_b = max(r["lag_bytes"] or 0.0 for r in rows)
    status = worst(Status[r["status"]] for r in rows)
    return CheckResult(
        "replication", status,
        f"{_plural(len(rows), 'replica')}, max replay lag {max_s:.1f} s / {_size(max_b)}"
        + (f" (warning {t.replication_lag_warn_seconds:g} s)" if status is not Status.OK else ""),
        metrics={"replicas": len(rows), "max_lag_seconds": max_s, "max_lag_bytes": max_b},
        rows=rows)


def check_partitions(conn, t: Thresholds) -> CheckResult:
    """DEFAULT partitions' rows (by month) and the months ahead of the monitored tables,
    read through dmdb.partitions_catalog, as `dmdb partitions` reads them."""
    from dmdb.partitions_catalog import db_now, find_table, read_bounds, read_default
    from dmdb.partitions_plan import coverage

    rows: list[dict] = []
    status = Status.OK
    problems: list[str] = []
    notes: list[str] = []
    metrics: dict[str, Any] = {"default_partition_rows": {}, "default_months": {},
                               "months_ahead": {}}
    cap = 1_000_000
    for parent_oid in sorted({b.parent_oid for b in read_bounds(conn) if b.is_default}):
        d = read_default(conn, parent_oid, cap=cap)
        if d is None:
            continue
        n = d.rows
        months = [m.to_dict() for m in d.months] if d.months is not None else None
        metrics["default_partition_rows"][d.qualified] = n
        metrics["default_months"][d.qualified] = months
        s = Status.WARNING if n else Status.OK
        by_month = ", ".join(f"{m['rows']:,} of {m['month']}" for m in (months or [])[:6])
        if n:
            detail = (f"{n:,} rows outside every range" + (f" ({by_month}"
                      + (", …" if len(months) > 6 else "") + ")" if months else "")
                      + "; `dmdb partitions create --fill` moves them into their partitions")
            if d.capped:
                detail = f">= {cap:,} rows (count capped); " + detail
        else:
            detail = "empty"
        rows.append({"status": s.name, "kind": "default partition", "table": d.qualified,
                     "parent": d.parent, "rows": n, "detail": detail, "months": months})
        if n:
            status = worst([status, s])
            problems.append(f"{n:,} rows in DEFAULT partition {d.qualified}"
                            + (f" ({by_month})" if by_month else ""))
    now = db_now(conn)
    for parent in t.partitioned_tables:
        oid = find_table(conn, parent)
        if oid is None:
            notes.append(f"{parent} does not exist: months ahead not checked")
            continue
        cov = coverage(read_bounds(conn, oid), now)
        ahead = cov.ahead
        metrics["months_ahead"][parent] = ahead
        if cov.current is None:
            s = Status.CRITICAL
            detail = f"no partition for the current month {cov.months[0][0]}"
        elif ahead < t.partition_months_ahead:
            s = Status.WARNING
            detail = (f"{ahead} future monthly partitions (want {t.partition_months_ahead}); "
                      "run `dmdb partitions`")
        else:
            s = Status.OK
            detail = f"{ahead} future monthly partitions" + (
                " (a MAXVALUE partition covers every later month)" if cov.unbounded else "")
        if s is not Status.OK:
            problems.append(f"{parent}: {detail}")
        status = worst([status, s])
        rows.append({"status": s.name, "kind": "months ahead", "table": parent, "parent": None,
                     "rows": None, "detail": detail,
                     "months": [{"month": m, "partition": p} for m, p in cov.months]})
    summary = "; ".join(problems) if problems else (
        "no rows in DEFAULT partitions; "
        + ", ".join(f"{p}: {n} months ahead" for p, n in metrics["months_ahead"].items())
        if metrics["months_ahead"] else "no rows in DEFAULT partitions")
    return CheckResult("partitions", status, summary, metrics=metrics, rows=rows, notes=notes)


PGSS_HOWTO = (
    "pg_stat_statements not installed: add shared_preload_libraries = 'pg_stat_statements' "
    "to postgresql.conf, restart the server, then run CREATE EXTENSION pg_stat_statements "
    "in this database (migration 0001 does it for a superuser)"
)


def check_top_queries(conn, t: Thresholds) -> CheckResult:
    import psycopg
    from psycopg import sql

    found = _rows(conn, "statements_available")
    if not found:
        return CheckResult("top_queries", Status.OK, PGSS_HOWTO,
                           metrics={"available": False}, notes=[PGSS_HOWTO])
    text = sql.SQL(_sql("top_statements")).format(schema=sql.Identifier(found[0]["schemaname"]))
    try:
        rows = _rows(conn, "top_statements", {"limit": t.top_queries}, text=text)
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        note = ("pg_stat_statements is installed but not loaded: add it to "
                "shared_preload_libraries and restart the server ("
                + str(exc).strip().splitlines()[0] + ")")
        return CheckResult("top_queries", Status.OK, note, metrics={"available": False},
                           notes=[note])
    slow = 0
    for r in rows:
        r["slow"] = (r["mean_seconds"] >= t.slow_query_mean_seconds
                     and r["calls"] >= t.slow_query_calls)
        slow += r["slow"]
    total = sum(r["total_seconds"] for r in rows)
    summary = (f"top {len(rows)} statements by total time: {total:.2f} s"
               + (f"; {_plural(slow, 'slow statement')} (mean >= "
                  f"{t.slow_query_mean_seconds * 1000:g} ms, calls >= {t.slow_query_calls})"
                  if slow else "")) if rows else "no statements recorded yet"
    return CheckResult("top_queries", Status.OK, summary,
                       metrics={"available": True, "statements": len(rows), "slow": slow,
                                "total_seconds": round(total, 6)},
                       rows=rows)


CHECKS: dict[str, Callable[..., CheckResult]] = {
    "connections": check_connections,
    "long_running_queries": check_long_running,
    "blocked_queries": check_blocked,
    "cache_hit": check_cache_hit,
    "xid_wraparound": check_xid_wraparound,
    "sequences": check_sequences,
    "invalid_indexes": check_invalid_indexes,
    "not_valid_constraints": check_not_valid_constraints,
    "unused_indexes": check_unused_indexes,
    "duplicate_indexes": check_duplicate_indexes,
    "dead_tuples": check_dead_tuples,
    "bloat": check_bloat,
    "replication": check_replication,
    "partitions": check_partitions,
    "top_queries": check_top_queries,
}
PRIMARY_ONLY = {"replication"}


def select_checks(only: list[str] | None) -> list[str]:
    if not only:
        return list(CHECKS)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    return [n for n in CHECKS if n in names]


def prepare(conn) -> None:
    """Make a monitoring session harmless: read-only, bounded statements, autocommit."""
    conn.autocommit = True
    conn.execute("SELECT set_config('default_transaction_read_only', 'on', false), "
                 "set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))


def run_checks(conn, thresholds: Thresholds | None = None, *, only: list[str] | None = None,
               primary: Callable | None = None, settings=None) -> Report:
    """Run the selected checks on `conn` (the read connection). `primary()` returns a
    connection to the primary for the checks only it can answer (default: `conn`).
    A check that raises becomes UNKNOWN with the (redacted) error; the others still run."""
    from dmdb.db import redact

    t = (thresholds or Thresholds()).validate()
    results = []
    for name in select_checks(only):
        fn = CHECKS[name]
        try:
            if name in PRIMARY_ONLY:
                result = fn(conn, t, primary=primary)
            else:
                result = fn(conn, t)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            first = first_line(exc)
            result = CheckResult(name, Status.UNKNOWN,
                                 f"check failed: {redact(f'{type(exc).__name__}: {first}', settings)}")
            if not conn.autocommit and not conn.closed:
                conn.rollback()
        results.append(result)
    return Report(results, datetime.now(timezone.utc))


def monitor(settings, thresholds: Thresholds | None = None, *, only: list[str] | None = None,
            warn: Callable[[str], None] | None = None) -> Report:
    """Connect (the read replica when configured), run the checks, close. Checks only the
    primary can answer use a primary connection, opened only when needed."""
    from dmdb.db import connect, connect_read, describe_target

    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    t = (thresholds or Thresholds()).validate()
    select_checks(only)
    read = connect_read(settings, warn=_warn, autocommit=True)
    on_replica = bool(settings.read_replica_host) and not any(
        "read replica unreachable" in w for w in warnings)
    extra: list = []

    def primary():
        if not on_replica:
            return read
        if not extra:
            conn = connect(settings, autocommit=True)
            prepare(conn)
            extra.append(conn)
        return extra[0]

    try:
        prepare(read)
        report = run_checks(read, t, only=only, primary=primary, settings=settings)
    finally:
        read.close()
        for conn in extra:
            conn.close()
    report.target = (f"embedded PostgreSQL/{settings.dbname}" if settings.embedded
                     else describe_target(settings, replica=on_replica))
    report.warnings = warnings
    return report
