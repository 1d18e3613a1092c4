"""History of `dmdb monitor --record`: snapshots of key figures in the database's own
`dmdb_monitor` schema (migration 0009), and the trends read back from them.

`record` writes one snapshot (connections, block counters for the cache hit ratio, dead
tuples, database size, and each table's heap and index size and live rows) on the
primary, then deletes snapshots older than the retention. `trends` compares the first
and last snapshots of a window: growth per day, the cache hit ratio between them (from
the counters' difference, not since the statistics reset), dead tuples and connections.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from dmdb.errors import DmdbError
from dmdb.monitor.core import Report, _plain, _rows

if TYPE_CHECKING:
    import psycopg

DEFAULT_RETENTION_DAYS = 90
DEFAULT_TREND_DAYS = 7
TOP_GROWTH = 5
NO_SCHEMA = ("no monitor history in this database (schema dmdb_monitor, migration "
             "0009_monitor_history): run `dmdb up` first")


@dataclass
class RecordResult:
    snapshot_id: int
    taken_at: str
    status: str
    tables: int
    deleted: int
    retention_days: float

    def to_dict(self) -> dict:
        return asdict(self)


def history_exists(conn: psycopg.Connection) -> bool:
    return bool(conn.execute(
        "SELECT to_regclass('dmdb_monitor.snapshots') IS NOT NULL").fetchone()[0])


def _figures(report: Report) -> dict:
    """The snapshot's figures, from the checks that computed them (one source each)."""
    by = {c.name: c for c in report.checks}
    missing = [n for n in ("connections", "cache_hit", "dead_tuples")
               if n not in by or not by[n].metrics]
    if missing:
        raise DmdbError(f"cannot record a snapshot: check {', '.join(missing)} did not run "
                        "or failed (see `dmdb monitor --only " + ",".join(missing) + "`)")
    conn_m, cache_m = by["connections"].metrics, by["cache_hit"].metrics
    return {
        "status": report.status.name,
        "connections": conn_m["total"], "max_connections": conn_m["max_connections"],
        "table_blocks_hit": cache_m["table_hits"], "table_blocks_read": cache_m["table_reads"],
        "index_blocks_hit": cache_m["index_hits"], "index_blocks_read": cache_m["index_reads"],
        "dead_tuples": by["dead_tuples"].metrics["dead_tuples"],
    }


def record(conn: psycopg.Connection, report: Report, *,
           retention_days: float = DEFAULT_RETENTION_DAYS) -> RecordResult:
    """Store a snapshot of `report` (a full run, on this database) and prune the history
    to `retention_days`, in one transaction. `conn`: a writable connection to the primary."""
    from dmdb.monitor.core import check_days

    check_days(retention_days, "--retention-days")
    figures = _figures(report)
    if not history_exists(conn):
        if not conn.autocommit:
            conn.rollback()
        raise DmdbError(NO_SCHEMA)
    with conn.transaction():
        sizes = _rows(conn, "history_table_sizes")
        snap = _rows(conn, "history_insert_snapshot", figures)[0]
        with conn.cursor() as cur:
            cur.executemany(_sql_text("history_insert_sizes"),
                            [{"snapshot_id": snap["snapshot_id"], **s} for s in sizes])
            cur.execute(_sql_text("history_retention"), {"days": retention_days})
            deleted = cur.rowcount
    return RecordResult(snap["snapshot_id"], snap["taken_at"], figures["status"], len(sizes),
                        deleted, retention_days)


def _sql_text(name: str) -> str:
    from dmdb.monitor.core import _sql

    return _sql(name)


def _ratio(hit: int, read: int) -> float | None:
    return round(hit / (hit + read), 6) if hit + read > 0 else None


def trends(conn: psycopg.Connection, *, days: float = DEFAULT_TREND_DAYS) -> dict | None:
    """Trends over the snapshots of the last `days` days; None without the history schema
    or without any snapshot."""
    if not history_exists(conn):
        return None
    from dmdb.monitor.core import check_days

    check_days(days, "--trend-days")
    snaps = _rows(conn, "history_snapshots", {"days": days})
    if not snaps:
        return None
    first, last = snaps[0], snaps[-1]
    out: dict = {
        "days": days, "snapshots": len(snaps), "from": first["taken_at"], "to": last["taken_at"],
        "table_bytes": last["table_bytes"], "index_bytes": last["index_bytes"],
        "database_bytes": last["database_bytes"], "dead_tuples": last["dead_tuples"],
        "connections": last["connections"],
        "connections_max": max(s["connections"] for s in snaps),
        "table_bytes_per_day": None, "index_bytes_per_day": None, "rows_per_day": None,
        "dead_tuples_change": None, "table_hit_ratio": None, "index_hit_ratio": None,
        "top_growth": [],
    }
    span = (datetime.fromisoformat(last["taken_at"])
            - datetime.fromisoformat(first["taken_at"])).total_seconds() / 86400
    if len(snaps) < 2 or span <= 0:
        return out
    out["table_bytes_per_day"] = round((last["table_bytes"] - first["table_bytes"]) / span)
    out["index_bytes_per_day"] = round((last["index_bytes"] - first["index_bytes"]) / span)
    out["dead_tuples_change"] = last["dead_tuples"] - first["dead_tuples"]
    deltas = {k: last[k] - first[k] for k in ("table_blocks_hit", "table_blocks_read",
                                              "index_blocks_hit", "index_blocks_read")}
    if min(deltas.values()) >= 0:  # negative: statistics were reset in between
        out["table_hit_ratio"] = _ratio(deltas["table_blocks_hit"], deltas["table_blocks_read"])
        out["index_hit_ratio"] = _ratio(deltas["index_blocks_hit"], deltas["index_blocks_read"])
    growth = _rows(conn, "history_growth", {"first": first["snapshot_id"],
                                             "last": last["snapshot_id"]})
    out["rows_per_day"] = round(sum(g["live_rows"] for g in growth) / span)
    out["top_growth"] = [
        {"table": f"{g['schema_name']}.{g['table_name']}",
         "table_bytes_per_day": round(g["table_bytes"] / span),
         "index_bytes_per_day": round(g["index_bytes"] / span),
         "rows_per_day": round(g["live_rows"] / span), "total_bytes": g["total_bytes"]}
        for g in growth[:TOP_GROWTH] if g["table_bytes"] or g["index_bytes"]]
    return {k: _plain(v) for k, v in out.items()}
