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

from dmdb.monitor import CheckResult, Report, Status

STYLE = {"OK": "green", "WARNING": "yellow", "CRITICAL": "bold red", "UNKNOWN": "magenta"}
MAX_ROWS = 10
MAX_CELL = 80
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

# Columns shown in the dashboard per check (all keys are in --json).
COLUMNS: dict[str, tuple[str, ...]] = {
    "connections": ("pid", "datname", "usename", "application_name", "idle_seconds",
                    "last_query"),
    "long_running_queries": ("pid", "datname", "usename", "state", "duration_seconds",
                             "wait_event", "query"),
    "blocked_queries": ("blocked_pid", "datname", "waiting_seconds", "blocked_query",
                        "blocking_pid", "blocking_state", "blocking_query"),
    "cache_hit": ("kind", "hits", "reads", "ratio"),
    "xid_wraparound": ("scope", "name", "xid_age", "mxid_age"),
    "sequences": ("schemaname", "sequencename", "owned_by", "last_value", "max_value",
                  "used_pct"),
    "invalid_indexes": ("schemaname", "relname", "indexrelname", "building", "size_bytes",
                        "definition"),
    "not_valid_constraints": ("schemaname", "relname", "conname", "type", "definition"),
    "unused_indexes": ("schemaname", "relname", "indexrelname", "size_bytes", "stats_reset"),
    "duplicate_indexes": ("schemaname", "relname", "indexrelname", "covered_by", "method",
                          "size_bytes"),
    "dead_tuples": ("schemaname", "relname", "n_live_tup", "n_dead_tup", "vacuum_trigger",
                    "autovacuum_enabled", "last_vacuum", "last_autovacuum", "last_analyze",
                    "last_autoanalyze"),
    "bloat": ("schemaname", "relname", "pages", "expected_pages", "bloat_ratio",
              "wasted_bytes"),
    "replication": ("role", "application_name", "client_addr", "state", "lag_seconds",
                    "lag_bytes"),
    "partitions": ("kind", "table", "rows", "detail"),
    "top_queries": ("queryid", "calls", "total_seconds", "mean_seconds", "percent_of_total",
                    "slow", "query"),
}


# ---------------------------------------------------------------------------- rich

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
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


def _check_table(check: CheckResult):
    from rich.table import Table

    cols = [c for c in COLUMNS.get(check.name, ()) if any(c in r for r in check.rows)]
    if not cols:
        cols = [k for k in check.rows[0] if k != "status"]
    table = Table(title=f"{check.name} — {check.status.name}", title_justify="left",
                  header_style="bold")
    table.add_column("verdict")
    for col in cols:
        table.add_column(col)
    for row in check.rows[:MAX_ROWS]:
        table.add_row(_verdict(row.get("status", check.status.name)),
                      *(_cell(row.get(c)) for c in cols))
    if len(check.rows) > MAX_ROWS:
        table.caption = f"… {len(check.rows) - MAX_ROWS} more (see --json)"
    return table


def dashboard(report: Report):
    """The dashboard as one rich renderable (printable, or updated in place by Live)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        ("dmdb monitor", "bold"), f"  {report.target}  ",
        report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"), "  overall ",
        (report.status.name, STYLE[report.status.name]))
    overview = Table(title="Checks", title_justify="left", header_style="bold")
    overview.add_column("check")
    overview.add_column("verdict")
    overview.add_column("summary")
    for check in report.checks:
        summary = check.summary
        if check.notes and check.notes[0] != summary:
            summary += "\n" + "\n".join(f"note: {n}" for n in check.notes)
        overview.add_row(check.name, _verdict(check.status.name), summary)
    parts = [head]
    parts += [Text(f"warning: {w}", style="yellow") for w in report.warnings]
    parts.append(overview)
    parts += [_check_table(c) for c in report.checks if c.rows]
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
    for check in report.checks:
        x.add("dmdb_check_status", g,
              "Verdict of each dmdb monitor check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
              int(check.status), {"check": check.name})
    x.add("dmdb_monitor_status", g, "Worst verdict of all checks (the --check exit code).",
          int(report.status))
    x.add("dmdb_monitor_generated_timestamp_seconds", g,
          "When this report was generated (Unix time).", report.generated_at.timestamp())
    by = {c.name: c for c in report.checks if c.status is not Status.UNKNOWN}
    _emit_metrics(x, by)
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

