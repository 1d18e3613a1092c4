"""Renderers for `dmdb monitor`: one per format, each from the same `Report`.

- `dashboard(report)`: rich renderables (an overview with a verdict per check, then one
  table per check that has rows);
- `to_json(report)`: the stable JSON document (keys in README, "Monitor");
- `to_prometheus(report)`: Prometheus text exposition format 0.0.4.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dmdb.monitor.core import CheckResult, Report, Status

STYLE = {"OK": "green", "WARNING": "yellow", "CRITICAL": "bold red", "UNKNOWN": "magenta"}
MAX_ROWS = 10
MAX_CELL = 80
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

# Columns shown in the detail tables per check (all keys are in --json), and headers.
COLUMNS: dict[str, tuple[str, ...]] = {
    "schema": ("item", "detail"),
    "capabilities": ("feature", "state", "detail"),
    "connections": ("pid", "datname", "usename", "application_name", "idle_seconds",
                    "last_query"),
    "long_running_queries": ("pid", "datname", "usename", "state", "duration_seconds",
                             "wait_event", "query"),
    "blocked_queries": ("blocked_pid", "datname", "waiting_seconds", "blocked_query",
                        "blocking_pid", "blocking_state", "blocking_query"),
    "xmin_horizon": ("kind", "holder", "datname", "state", "xmin_age", "seconds", "detail"),
    "cache_hit": ("kind", "hits", "reads", "ratio"),
    "xid_wraparound": ("scope", "name", "xid_age", "mxid_age"),
    "sequences": ("schemaname", "sequencename", "owned_by", "last_value", "max_value",
                  "used_pct"),
    "invalid_indexes": ("schemaname", "relname", "indexrelname", "building", "size_bytes",
                        "definition"),
    "not_valid_constraints": ("schemaname", "relname", "conname", "type", "definition"),
    "unused_indexes": ("schema", "table", "index", "size_bytes", "partitioned", "scans"),
    "duplicate_indexes": ("schema", "table", "index", "covered_by", "size_bytes"),
    "missing_indexes": ("schemaname", "relname", "n_live_tup", "seq_scan", "idx_scan",
                        "index_scan_pct", "size_bytes"),
    "dead_tuples": ("schemaname", "relname", "n_live_tup", "n_dead_tup", "vacuum_trigger",
                    "autovacuum_enabled", "last_autovacuum", "last_vacuum"),
    "bloat": ("schemaname", "relname", "pages", "expected_pages", "bloat_ratio",
              "wasted_bytes"),
    "index_bloat": ("schemaname", "indexrelname", "pages", "expected_pages", "bloat_ratio",
                    "wasted_bytes"),
    "replication": ("role", "application_name", "client_addr", "state", "lag_seconds",
                    "lag_bytes", "error"),
    "replication_slots": ("slot_name", "slot_type", "database", "active", "wal_status",
                          "retained_bytes", "problem"),
    "wal_archiving": ("archive_mode", "archived_count", "failed_count", "last_failed_wal",
                      "last_failed_time", "ready"),
    "disk_space": ("location", "path", "used_pct", "free_bytes", "size_bytes",
                   "inodes_used_pct", "detail"),
    "partitions": ("kind", "table", "rows", "detail"),
    "pgbouncer": ("database", "user", "pool_mode", "cl_active", "cl_waiting", "sv_active",
                  "sv_idle", "maxwait_seconds"),
    "top_queries": ("queryid", "calls", "total_seconds", "mean_seconds", "percent_of_total",
                    "slow", "query"),
}
HEADERS = {
    "schemaname": "schema", "relname": "table", "indexrelname": "index", "datname": "database",
    "usename": "user", "application_name": "application", "idle_seconds": "idle s",
    "duration_seconds": "running s", "waiting_seconds": "waiting s", "seconds": "held s",
    "xmin_age": "xmin age", "n_live_tup": "live rows", "n_dead_tup": "dead rows",
    "vacuum_trigger": "vacuum at", "autovacuum_enabled": "autovacuum",
    "last_autovacuum": "last autovacuum", "last_vacuum": "last vacuum",
    "size_bytes": "size", "wasted_bytes": "wasted", "retained_bytes": "WAL kept",
    "lag_seconds": "lag s", "lag_bytes": "lag", "index_scan_pct": "index %",
    "seq_scan": "seq scans", "idx_scan": "index scans", "expected_pages": "needed pages",
    "bloat_ratio": "ratio", "used_pct": "used %", "mxid_age": "mxid age",
    "maxwait_seconds": "max wait s", "total_seconds": "total s", "mean_seconds": "mean s",
    "percent_of_total": "% of total", "covered_by": "covered by", "last_query": "query",
    "free_bytes": "free", "inodes_used_pct": "inodes used %",
}
_BYTES = {"size_bytes", "wasted_bytes", "retained_bytes", "lag_bytes", "free_bytes"}
_FREE_TEXT = {"query", "last_query", "blocked_query", "blocking_query", "detail", "problem",
              "definition", "error"}
PROBLEM_ROWS = 5  # detail rows under a problem check by default (--verbose: MAX_ROWS)


# ---------------------------------------------------------------------------- rich

def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column in _BYTES and isinstance(value, (int, float)) and not isinstance(value, bool):
        from dmdb.monitor.core import _size

        text = _size(value)
    elif isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.3g}"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, str) and _ISO.match(value):
        text = value[:19].replace("T", " ")
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _verdict(status: str):
    from rich.text import Text

    return Text(status, style=STYLE.get(status, ""))


def _problem_rows(check: CheckResult) -> list[dict]:
    return [r for r in check.rows if r.get("status", check.status.name) != "OK"] or check.rows


def _table_lines(check: CheckResult, detail: int) -> int:
    """Lines a problem check's detail table takes: label, header, rule, rows, caption."""
    if not check.rows or check.cause:
        return 0
    rows = len(_problem_rows(check))
    return 3 + min(rows, detail) + (1 if rows > detail else 0) if check.rows and detail else 0


def _fit(problems: list[CheckResult], healthy: int, max_lines: int,
         fixed: int) -> tuple[int, bool, int]:
    """(detail rows per problem, fold the OK checks into one line, problems shown) so the
    dashboard takes at most `max_lines` lines: fewer detail rows first, then the OK checks
    folded, then the last problems cut."""
    for fold in (False, True):
        for detail in range(PROBLEM_ROWS, -1, -1):
            lines = (fixed + len(problems) + (min(healthy, 1) if fold else healthy)
                     + sum(_table_lines(c, detail) for c in problems))
            if lines <= max_lines:
                return detail, fold, len(problems)
    room = max_lines - fixed - min(healthy, 1) - 1  # one line says what was cut
    return 0, True, max(0, min(len(problems), room))


def _check_table(check: CheckResult, limit: int, problems_only: bool = False,
                 width: int | None = None):
    """A check's rows as a table. With `width` (the dashboard's problems), every row is
    one line: columns that do not fit are left out (they are all in --json) and free
    text is cut to what is left."""
    from rich import box
    from rich.table import Table

    rows = _problem_rows(check) if problems_only else check.rows
    cols = [c for c in COLUMNS.get(check.name, ()) if any(c in r for r in rows)]
    if not cols:
        cols = [k for k in rows[0] if k != "status"]
    shown = rows[:limit]
    cells = {c: [_cell(r.get(c), c) for r in shown] for c in cols}
    headers = {c: HEADERS.get(c, c.replace("_", " ")) for c in cols}
    limits: dict[str, int | None] = dict.fromkeys(cols)
    if width is not None:
        used, kept = 8 + 3, []  # each column: its text and 3 of padding (rounded up)
        for c in cols:
            need = max([len(headers[c]), *map(len, cells[c])])
            if c in _FREE_TEXT:
                need = min(need, max(12, width - used - 3))
            if used + need + 3 <= width:
                kept.append(c)
                limits[c] = need
                used += need + 3
        cols = kept
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                  padding=(0, 1), show_edge=False)
    table.add_column("", no_wrap=True, width=8)
    for c in cols:
        table.add_column(headers[c], overflow="ellipsis", no_wrap=width is not None,
                         max_width=limits[c] or MAX_CELL, min_width=limits[c])
    for i, row in enumerate(shown):
        table.add_row(_verdict(row.get("status", check.status.name)),
                      *(cells[c][i] for c in cols))
    if len(rows) > limit:
        table.caption = f"… {len(rows) - limit} more (--verbose --only {check.name}, or --json)"
        table.caption_justify = "left"
    return table


def _trend_line(trends: dict | None) -> str | None:
    from dmdb.monitor.core import _size

    if not trends:
        return None
    head = f"trends, last {trends['days']:g} days ({trends['snapshots']} snapshots): "
    if trends["table_bytes_per_day"] is None:
        return head + "one snapshot so far; trends need two (`dmdb monitor --record` from cron)"

    def rate(n):
        return ("+" if n >= 0 else "-") + _size(abs(n)) + "/day"

    parts = [f"tables {rate(trends['table_bytes_per_day'])}",
             f"indexes {rate(trends['index_bytes_per_day'])}",
             f"rows {trends['rows_per_day']:+,}/day"]
    if trends["table_hit_ratio"] is not None:
        parts.append(f"cache hit {trends['table_hit_ratio']:.4f}")
    parts.append(f"dead tuples {trends['dead_tuples']:,} ({trends['dead_tuples_change']:+,})")
    parts.append(f"connections {trends['connections']} (max {trends['connections_max']})")
    if trends["top_growth"]:
        g = trends["top_growth"][0]
        parts.append(f"fastest {g['table']} "
                     f"{rate(g['table_bytes_per_day'] + g['index_bytes_per_day'])}")
    return head + ", ".join(parts)


def dashboard(report: Report, *, verbose: bool = False, max_lines: int | None = None,
              width: int = 80):
    """The dashboard as one rich renderable (printable, or updated in place by Live):
    a head line, the checks not OK with a few of their rows, one line per OK check, the
    trends. `verbose`: every check's rows. `max_lines` (--watch: the terminal's height):
    fewer detail rows, then OK checks folded into one line, to fit. `width`: the
    terminal's, so that each detail row is one line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    problems = [c for c in report.checks if c.status is not Status.OK]
    problems.sort(key=lambda c: -c.status.severity)
    healthy = [c for c in report.checks if c.status is Status.OK]
    head = Text.assemble(
        ("dmdb monitor", "bold"), f"  {report.target}  ",
        report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"), "  ",
        (report.status.name, STYLE[report.status.name]),
        f"  ({len(report.checks) - len(problems)}/{len(report.checks)} checks OK)")
    head.no_wrap, head.overflow = True, "ellipsis"
    parts: list = [head]
    parts += [Text(f"warning: {w}", style="yellow", no_wrap=not verbose, overflow="ellipsis")
              for w in report.warnings]
    if report.blind_line():  # checks UNKNOWN for one reason (a missing GRANT): said once
        parts.append(Text(report.blind_line(), style=STYLE["UNKNOWN"], no_wrap=not verbose,
                          overflow="ellipsis"))
    if not report.up:
        parts.append(Text(f"cannot reach the server: {report.error}", style="bold red"))
        return Group(*parts)
    trend = _trend_line(report.trends)

    def overview(checks, fold: bool = False):
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1),
                      expand=False)
        table.add_column(no_wrap=True, width=8)
        table.add_column(no_wrap=True, style="bold",
                         width=max(10, *(len(c.name) for c in report.checks)),
                         overflow="ellipsis")
        table.add_column(ratio=1)
        if fold:
            table.add_row(_verdict("OK"), f"{len(checks)} checks",
                          Text(", ".join(c.name for c in checks), no_wrap=True,
                               overflow="ellipsis"))
            return table
        for c in checks:
            summary = c.summary
            if verbose and c.notes and c.notes[0] != summary:
                summary += "\n" + "\n".join(f"note: {n}" for n in c.notes)
            # One line per check unless --verbose: cut at the terminal's edge, not wrapped.
            table.add_row(_verdict(c.status.name), c.name,
                          Text(summary, no_wrap=not verbose, overflow="ellipsis"))
        return table

    detail = MAX_ROWS if verbose else PROBLEM_ROWS
    fold = False
    if max_lines is not None and not verbose:
        detail, fold, shown = _fit(problems, len(healthy), max_lines,
                                   len(parts) + (1 if trend else 0))
        more, problems = problems[shown:], problems[:shown]
    else:
        more = []
    if problems:
        parts.append(overview(problems))
    if more:
        parts.append(Text(f"… {len(more)} more not OK: " + ", ".join(c.name for c in more),
                          no_wrap=True, overflow="ellipsis"))
    if problems:
        if detail:
            for c in problems:
                if c.rows and not c.cause:  # blind (no GRANT): its rows are not the problem
                    parts.append(Text(f"  {c.name}:", style="dim"))
                    parts.append(_check_table(c, detail, problems_only=not verbose,
                                              width=None if verbose else width))
    if healthy:
        parts.append(overview(healthy, fold=fold))
        if verbose:
            for c in healthy:
                if c.rows:
                    parts.append(Text(f"  {c.name}:", style="dim"))
                    parts.append(_check_table(c, MAX_ROWS))
    if trend:
        parts.append(Text(trend, style="cyan", no_wrap=not verbose, overflow="ellipsis"))
    return Group(*parts)


# ---------------------------------------------------------------------------- json

def to_json(report: Report) -> str:
    from dmdb.render import to_json as dump

    return dump(report.to_dict())


# ---------------------------------------------------------------------- prometheus

class _Exposition:
    """Collects metric families (HELP, TYPE, samples) in first-seen order."""

    def __init__(self) -> None:
        self.families: dict[str, dict] = {}

    def add(self, name: str, kind: str, help_text: str, value: Any,
            labels: dict[str, Any] | None = None) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            value = int(value)
        fam = self.families.setdefault(name, {"type": kind, "help": help_text, "samples": []})
        fam["samples"].append((labels or {}, float(value)))

    def text(self) -> str:
        out: list[str] = []
        for name, fam in self.families.items():
            out.append(f"# HELP {name} {_escape_help(fam['help'])}")
            out.append(f"# TYPE {name} {fam['type']}")
            for labels, value in fam["samples"]:
                out.append(f"{name}{_labels(labels)} {_number(value)}")
        return "\n".join(out) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**63:
        return str(int(value))
    return repr(value)


def _split(qualified: str) -> tuple[str, str]:
    schema, _, rel = qualified.rpartition(".")
    return schema or "public", rel


def to_prometheus(report: Report) -> str:
    """Text exposition: `dmdb_`/`pg_` names, base units (seconds, bytes), ratios 0..1,
    `_total` only on counters."""
    x = _Exposition()
    g = "gauge"
    x.add("dmdb_up", g, "1 when the database server answered the monitor, 0 when it could "
          "not be reached (then no other metric but the statuses).", int(report.up))
    for check in report.checks:
        x.add("dmdb_check_status", g,
              "Verdict of each dmdb monitor check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
              int(check.status), {"check": check.name})
    x.add("dmdb_monitor_status", g, "Worst verdict of all checks (the --check exit code).",
          int(report.status))
    x.add("dmdb_monitor_generated_timestamp_seconds", g,
          "When this report was generated (Unix time).", report.generated_at.timestamp())
    by = {c.name: c for c in report.checks if c.status is not Status.UNKNOWN}
    if report.up:
        _emit_metrics(x, by)
        _emit_new_metrics(x, by)
        from dmdb.monitor.checks_backup import emit_metrics

        emit_metrics(x, by)
        from dmdb.monitor.checks_events import prometheus as emit_events

        emit_events(x.add, by)
        _emit_trends(x, report.trends)
    return x.text()


def _emit_metrics(x: _Exposition, by: dict[str, CheckResult]) -> None:
    g = "gauge"
    c = by.get("connections")
    if c:
        m = c.metrics
        x.add("pg_settings_max_connections", g, "Server setting max_connections.",
              m["max_connections"])
        for r in m["by_state"]:
            x.add("pg_stat_activity_count", g,
                  "Client connections by database and state (pg_stat_activity).",
                  r["count"], {"datname": r["datname"], "state": r["state"]})
        x.add("dmdb_connections_used_ratio", g,
              "Client connections over max_connections (0..1).", m["used_pct"] / 100.0)
        x.add("dmdb_idle_in_transaction_sessions", g,
              "Sessions idle in a transaction.", m["idle_in_transaction"])
        x.add("dmdb_idle_in_transaction_max_seconds", g,
              "Longest time a session has been idle in a transaction.",
              m["idle_in_transaction_oldest_seconds"])
    c = by.get("long_running_queries")
    if c:
        x.add("dmdb_long_running_queries", g,
              "Statements running longer than the --long-query-seconds threshold.",
              c.metrics["count"])
        x.add("dmdb_long_running_query_max_seconds", g,
              "Duration of the longest of those statements.", c.metrics["max_seconds"])
    c = by.get("blocked_queries")
    if c:
        x.add("dmdb_blocked_queries", g, "Sessions waiting for a lock held by another.",
              c.metrics["count"])
        x.add("dmdb_blocking_sessions", g, "Sessions holding locks others wait for.",
              c.metrics["blocking"])
        x.add("dmdb_blocked_query_max_wait_seconds", g, "Longest current lock wait.",
              c.metrics["max_wait_seconds"])
    c = by.get("cache_hit")
    if c:
        for kind in ("table", "index"):
            x.add("dmdb_cache_hit_ratio", g,
                  "Buffer cache hit ratio of this database's user tables and indexes (0..1).",
                  c.metrics.get(f"{kind}_ratio"), {"kind": kind})
        for kind in ("table", "index"):
            x.add("dmdb_cache_blocks_hit_total", "counter",
                  "Block accesses found in shared buffers.", c.metrics.get(f"{kind}_hits"),
                  {"kind": kind})
        for kind in ("table", "index"):
            x.add("dmdb_cache_blocks_read_total", "counter",
                  "Block accesses read from outside shared buffers.",
                  c.metrics.get(f"{kind}_reads"), {"kind": kind})
    c = by.get("xid_wraparound")
    if c:
        for datname, age in c.metrics["databases"].items():
            x.add("pg_database_xid_age", g,
                  "Age of the database's oldest unfrozen transaction ID (datfrozenxid).",
                  age, {"datname": datname})
        for qualified, age in c.metrics["tables"].items():
            schema, rel = _split(qualified)
            x.add("dmdb_table_xid_age", g,
                  "Age of relfrozenxid of the tables with the oldest one.",
                  age, {"schemaname": schema, "relname": rel})
    c = by.get("sequences")
    if c:
        for r in c.rows:
            x.add("dmdb_sequence_used_ratio", g,
                  "Part of a sequence's range (capped by its column's type) already used.",
                  r["used_pct"] / 100.0,
                  {"schemaname": r["schemaname"], "sequencename": r["sequencename"]})
    for name, metric, help_text in (
        ("invalid_indexes", "dmdb_invalid_indexes", "Invalid indexes (not being built)."),
        ("not_valid_constraints", "dmdb_not_valid_constraints",
         "Constraints added NOT VALID and not validated."),
        ("unused_indexes", "dmdb_unused_indexes",
         "Indexes never scanned since stats reset, not unique, over the size floor."),
        ("duplicate_indexes", "dmdb_duplicate_indexes",
         "Indexes made redundant by another on the same columns."),
    ):
        c = by.get(name)
        if c:
            x.add(metric, g, help_text, c.metrics["count"])
            if "size_bytes" in c.metrics:
                x.add(metric + "_size_bytes", g, "Total size of those indexes.",
                      c.metrics["size_bytes"])
    c = by.get("dead_tuples")
    if c:
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"]}
            x.add("pg_stat_user_tables_n_dead_tup", g, "Estimated dead rows of the table.",
                  r["n_dead_tup"], labels)
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"]}
            x.add("dmdb_dead_tuples_trigger_ratio", g,
                  "Dead rows over the autovacuum trigger point (threshold + scale_factor x "
                  "reltuples); above 1 autovacuum is due.", r["trigger_ratio"], labels)
    c = by.get("bloat")
    if c:
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"]}
            x.add("dmdb_table_bloat_ratio", g,
                  "Estimated pages over pages needed (1 = no bloat).", r["bloat_ratio"], labels)
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"]}
            x.add("dmdb_table_bloat_bytes", g, "Estimated wasted bytes of the table.",
                  r["wasted_bytes"], labels)
    c = by.get("replication")
    if c:
        x.add("dmdb_replicas", g, "Replicas streaming from the primary (or this standby).",
              c.metrics["replicas"])
        for r in c.rows:
            labels = {"application_name": r["application_name"] or "",
                      "client_addr": r["client_addr"] or "", "role": r["role"]}
            x.add("pg_replication_lag_seconds", g, "Replay lag of a replica in seconds.",
                  r["lag_seconds"], labels)
        for r in c.rows:
            labels = {"application_name": r["application_name"] or "",
                      "client_addr": r["client_addr"] or "", "role": r["role"]}
            x.add("pg_replication_lag_bytes", g, "WAL bytes not yet replayed by a replica.",
                  r["lag_bytes"], labels)
    c = by.get("partitions")
    if c:
        for qualified, n in c.metrics["default_partition_rows"].items():
            schema, rel = _split(qualified)
            x.add("dmdb_default_partition_rows", g,
                  "Rows in a DEFAULT partition (counted up to 1,000,000).", n,
                  {"schemaname": schema, "relname": rel})
        for qualified, n in c.metrics["months_ahead"].items():
            schema, rel = _split(qualified)
            x.add("dmdb_partition_months_ahead", g,
                  "Consecutive future monthly partitions after the current month.", n,
                  {"schemaname": schema, "relname": rel})
    c = by.get("top_queries")
    if c:
        x.add("dmdb_pg_stat_statements_available", g,
              "1 when pg_stat_statements is installed and loaded in this database.",
              c.metrics.get("available"))
        for r in c.rows:
            x.add("dmdb_statements_seconds_total", "counter",
                  "Execution time of the top statements since pg_stat_statements' reset.",
                  r["total_seconds"], {"queryid": r["queryid"]})
        for r in c.rows:
            x.add("dmdb_statements_calls_total", "counter",
                  "Calls of the top statements since pg_stat_statements' reset.",
                  r["calls"], {"queryid": r["queryid"]})
        for r in c.rows:
            x.add("dmdb_statements_mean_seconds", g, "Mean execution time of the statement.",
                  r["mean_seconds"], {"queryid": r["queryid"]})



def _emit_new_metrics(x: _Exposition, by: dict[str, CheckResult]) -> None:
    g = "gauge"
    c = by.get("schema")
    if c:
        x.add("dmdb_schema_present", g, "1 when the dmdb schema (migration ledger) exists.",
              c.metrics["present"])
        x.add("dmdb_schema_pending_migrations", g, "Migrations not applied yet.",
              c.metrics.get("pending"))
    c = by.get("capabilities")
    if c:
        x.add("dmdb_role_sees_all_sessions", g,
              "1 when the monitoring role sees every session (superuser or pg_monitor), 0 "
              "when other roles' sessions are hidden from it.", c.metrics["sees_all_sessions"])
        x.add("dmdb_ddl_audit_enabled", g,
              "1 when the DDL audit's event triggers are there and enabled (0005).",
              c.metrics["ddl_audit"])
    c = by.get("xmin_horizon")
    if c:
        m = c.metrics
        x.add("dmdb_xmin_horizon_age", g,
              "Transactions between the oldest xmin held back and the next transaction ID.",
              m["max_xmin_age"])
        for kind, age in m["max_xmin_age_by_kind"].items():
            x.add("dmdb_xmin_holder_age", g,
                  "Oldest xmin age held by each kind of holder (transaction, prepared "
                  "transaction, replication slot, standby feedback).", age, {"kind": kind})
        for kind, n in m["holders_by_kind"].items():
            x.add("dmdb_xmin_holders", g, "Holders of the xmin horizon by kind.", n,
                  {"kind": kind})
        x.add("pg_prepared_transactions", g, "Prepared transactions (pg_prepared_xacts).",
              m["prepared_transactions"])
        x.add("dmdb_prepared_transaction_max_age_seconds", g,
              "Age of the oldest prepared transaction.", m["oldest_prepared_seconds"])
        x.add("dmdb_oldest_transaction_seconds", g,
              "Age of the oldest open transaction holding a snapshot or transaction ID.",
              m["oldest_transaction_seconds"])
    c = by.get("replication_slots")
    if c:
        for r in c.rows:
            labels = {"slot_name": r["slot_name"], "slot_type": r["slot_type"]}
            x.add("pg_replication_slots_active", g, "1 when a consumer uses the slot.",
                  r["active"], labels)
        for r in c.rows:
            labels = {"slot_name": r["slot_name"], "slot_type": r["slot_type"]}
            x.add("pg_replication_slots_retained_wal_bytes", g,
                  "WAL the slot keeps from removal.", r["retained_bytes"], labels)
    if "replication" in by and "replica_reachable" in by["replication"].metrics:
        x.add("dmdb_read_replica_up", g,
              "1 when the configured read replica answered, 0 when it did not.",
              by["replication"].metrics["replica_reachable"])
    c = by.get("wal_archiving")
    if c:
        m = c.metrics
        x.add("pg_stat_archiver_archived_count_total", "counter",
              "WAL files archived since the statistics reset.", m["archived"])
        x.add("pg_stat_archiver_failed_count_total", "counter",
              "Failed attempts to archive a WAL file since the statistics reset.", m["failed"])
        x.add("dmdb_wal_archiving_failing", g,
              "1 when the last archive attempt failed (archive_mode on).", m["failing"])
        x.add("dmdb_wal_archive_ready_files", g, "WAL segments waiting to be archived.",
              m["ready"])
        x.add("pg_stat_archiver_last_archive_age_seconds", g,
              "Time since the last WAL file was archived.", m["last_archived_age_seconds"])
    c = by.get("checkpoints")
    if c:
        m = c.metrics
        x.add("dmdb_checkpoints_timed_total", "counter",
              "Checkpoints started by checkpoint_timeout.", m["timed"])
        x.add("dmdb_checkpoints_requested_total", "counter",
              "Checkpoints requested (max_wal_size reached, CHECKPOINT).", m["requested"])
        x.add("dmdb_checkpoints_requested_ratio", g,
              "Requested over all checkpoints since the statistics reset (0..1).",
              m["requested_ratio"])
    c = by.get("disk_space")
    if c:
        for location in c.metrics["measured"] + c.metrics["not_measured"]:
            x.add("dmdb_disk_measured", g,
                  "1 when dmdb measured the file system of this location (data, wal, "
                  "backup_repository); 0: not measurable from here (a remote server's).",
                  location in c.metrics["measured"], {"location": location})
        for metric, key, help_text, scale in (
            ("dmdb_disk_used_ratio", "used_pct",
             "Used share of the file system (df: used / (used + available)), 0..1.", 0.01),
            ("dmdb_disk_inodes_used_ratio", "inodes_used_pct",
             "Used share of the file system's inodes, 0..1.", 0.01),
            ("dmdb_disk_free_bytes", "free_bytes",
             "Bytes of the file system available to the server (not root-reserved).", 1),
            ("dmdb_disk_size_bytes", "size_bytes", "Size of the file system.", 1),
        ):
            for r in c.rows:
                if r.get(key) is not None:
                    x.add(metric, g, help_text, r[key] * scale,
                          {"location": r["location"], "path": r["path"]})
    c = by.get("index_bloat")
    if c:
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"],
                      "indexrelname": r["indexrelname"]}
            x.add("dmdb_index_bloat_ratio", g,
                  "Estimated pages over pages needed of a btree index (1 = no bloat).",
                  r["bloat_ratio"], labels)
        for r in c.rows:
            labels = {"schemaname": r["schemaname"], "relname": r["relname"],
                      "indexrelname": r["indexrelname"]}
            x.add("dmdb_index_bloat_bytes", g, "Estimated wasted bytes of a btree index.",
                  r["wasted_bytes"], labels)
    c = by.get("missing_indexes")
    if c:
        x.add("dmdb_missing_indexes", g,
              "Tables read mostly by sequential scans (pghero's missing-index rule).",
              c.metrics["count"])
        for r in c.rows:
            x.add("dmdb_table_index_scan_ratio", g,
                  "Index scans over all scans of a table flagged by missing_indexes (0..1).",
                  r["index_scan_pct"] / 100.0,
                  {"schemaname": r["schemaname"], "relname": r["relname"]})
    c = by.get("pgbouncer")
    if c and c.metrics.get("configured"):
        x.add("pgbouncer_up", g, "1 when PgBouncer's admin console answered.",
              c.metrics["up"])
        for metric, key, help_text in (
            ("pgbouncer_pools_client_active_connections", "cl_active",
             "Client connections linked to a server connection."),
            ("pgbouncer_pools_client_waiting_connections", "cl_waiting",
             "Client connections waiting for a server connection."),
            ("pgbouncer_pools_server_active_connections", "sv_active",
             "Server connections linked to a client."),
            ("pgbouncer_pools_server_idle_connections", "sv_idle",
             "Server connections idle and ready for a client."),
            ("pgbouncer_pools_client_maxwait_seconds", "maxwait_seconds",
             "How long the oldest waiting client has waited."),
        ):
            for r in c.rows:
                x.add(metric, g, help_text, r[key],
                      {"database": r["database"], "user": r["user"]})


def _emit_trends(x: _Exposition, trends: dict | None) -> None:
    if not trends or trends.get("table_bytes_per_day") is None:
        return
    g = "gauge"
    x.add("dmdb_trend_table_bytes_per_day", g,
          "Growth of all tables (heap + TOAST) per day over the trend window.",
          trends["table_bytes_per_day"])
    x.add("dmdb_trend_index_bytes_per_day", g,
          "Growth of all indexes per day over the trend window.", trends["index_bytes_per_day"])
