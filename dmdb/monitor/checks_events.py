"""`dmdb monitor` checks of the event feed (#26, docs/events.md): how far each consumer
is behind (against its own thresholds, event_consumers), and what the feed keeps on disk
for its consumers (tombstones, logical slots of this database); their Prometheus
metrics. The lag is read by dmdb.events, the one reader of it."""

from __future__ import annotations

from typing import Any

from dmdb.monitor.core import CheckResult, Status, Thresholds, _plural, _rows, _size, worst

_NOT_INSTALLED = "the event feed is not installed (migrations 0014_event_feed, 0015_event_feed_index)"


def _installed(conn) -> bool:
    return conn.execute("SELECT to_regclass('public.event_consumers') IS NOT NULL").fetchone()[0]


def check_event_consumers(conn, t: Thresholds) -> CheckResult:
    """Each consumer's lag, judged against its thresholds (`dmdb events thresholds`): events
    below the horizon after its position, and how long the first of them has waited; a
    consumer that lost events (pruned past the retention limit, or partitions retired
    under it) is CRITICAL."""
    from dmdb.events import lag

    if not _installed(conn):
        return CheckResult("event_consumers", Status.OK, _NOT_INSTALLED, metrics={"installed": False})
    states = lag(conn)
    rows = [{"consumer": s.consumer.name, "position": str(s.consumer.position),
             "behind_events": s.behind, "behind_seconds": s.seconds,
             "lost": s.consumer.lost_at is not None,
             "advanced_at": s.consumer.advanced_at.isoformat() if s.consumer.advanced_at else None,
             "status": s.status, "problem": "; ".join(s.problems) or None} for s in states]
    metrics: dict[str, Any] = {
        "installed": True, "consumers": len(states),
        "max_behind_events": max((s.behind for s in states), default=0),
        "max_behind_seconds": max((s.seconds for s in states), default=0.0),
        "lost": sum(r["lost"] for r in rows)}
    if not states:
        return CheckResult("event_consumers", Status.OK,
                           "no consumers (`dmdb events consume --consumer NAME --from now`)",
                           metrics=metrics)
    status = worst(Status[s.status] for s in states)
    if status is Status.OK:
        return CheckResult(
            "event_consumers", Status.OK,
            f"{_plural(len(states), 'consumer')}, at most {metrics['max_behind_events']:,} events "
            f"and {metrics['max_behind_seconds']:.0f} s behind", metrics=metrics, rows=rows)
    bad = [s for s in states if s.status != "OK"]
    top = max(bad, key=lambda s: (Status[s.status].severity, s.behind))
    return CheckResult(
        "event_consumers", status,
        f"{_plural(len(bad), 'consumer')} behind or broken; {top.consumer.name}: "
        f"{'; '.join(top.problems)} — `dmdb events lag` shows them, a dead one is dropped with "
        "`dmdb events drop`", metrics=metrics, rows=rows)


def check_event_retention(conn, t: Thresholds) -> CheckResult:
    """What the feed keeps on disk for its consumers: tombstones not yet pruned (`dmdb
    events prune`) and the WAL that logical slots of this database pin (a CDC connector on
    the dmdb_events publication), against the slot thresholds (--slot-wal-warn /
    --slot-wal-critical); a logical slot without max_slot_wal_keep_size can fill the disk
    (WARNING), a lost one has skipped events (CRITICAL)."""
    if not _installed(conn):
        return CheckResult("event_retention", Status.OK, _NOT_INSTALLED, metrics={"installed": False})
    rows = _rows(conn, "event_retention")
    tomb = next(r for r in rows if r["kind"] == "tombstones")
    slots = [r for r in rows if r["kind"] == "slot"]
    total = sum(r["retained_bytes"] or 0.0 for r in rows)
    cap = tomb["wal_keep_cap"]
    problems: list[str] = []
    status = Status.OK
    for r in slots:
        s = Status.OK
        kept = r["retained_bytes"] or 0.0
        if r["wal_status"] == "lost":
            s = Status.CRITICAL
            problems.append(f"slot {r['slot_name']} is lost: its WAL was removed (past "
                            f"max_slot_wal_keep_size), its consumer skipped events; recreate "
                            "the connector from a snapshot")
        elif cap == "-1":
            s = Status.WARNING
            problems.append(f"slot {r['slot_name']} pins {_size(kept)} of WAL with no cap: a dead "
                            "connector fills the disk; set max_slot_wal_keep_size")
        r["status"] = s.name
        status = worst([status, s])
    if total >= t.slot_wal_critical_bytes:
        status = worst([status, Status.CRITICAL])
        problems.insert(0, f"{_size(total)} kept for consumers (critical {_size(t.slot_wal_critical_bytes)})")
    elif total >= t.slot_wal_warn_bytes:
        status = worst([status, Status.WARNING])
        problems.insert(0, f"{_size(total)} kept for consumers (warning {_size(t.slot_wal_warn_bytes)})")
    metrics = {"installed": True, "retained_bytes": total,
               "tombstone_bytes": tomb["retained_bytes"], "tombstones": tomb["rows"],
               "logical_slots": len(slots), "max_slot_wal_keep_size": cap}
    out_rows = [{"kind": r["kind"], "slot_name": r["slot_name"], "plugin": r["plugin"],
                 "active": r["active"], "wal_status": r["wal_status"],
                 "retained_bytes": r["retained_bytes"], "rows": r["rows"],
                 "status": r.get("status", "OK")} for r in rows]
    if status is Status.OK:
        return CheckResult(
            "event_retention", Status.OK,
            f"{_size(total)} kept for event consumers ({tomb['rows']:,} tombstones"
            + (f", {_plural(len(slots), 'logical slot')}" if slots else "") + ")",
            metrics=metrics, rows=out_rows)
    return CheckResult("event_retention", status, "; ".join(problems), metrics=metrics,
                       rows=out_rows)


def prometheus(add, by: dict[str, CheckResult]) -> None:
    """The metrics of these checks, through the exposition's `add(name, kind, help, value,
    labels)`."""
    g = "gauge"
    c = by.get("event_consumers")
    if c and c.metrics.get("installed"):
        add("dmdb_event_consumers", g, "Consumers of the event feed.", c.metrics["consumers"])
        for r in c.rows:
            labels = {"consumer": r["consumer"]}
            add("dmdb_event_consumer_lag_events", g,
                "Events of the feed after the consumer's position, below the horizon.",
                r["behind_events"], labels)
            add("dmdb_event_consumer_lag_seconds", g,
                "How long the first event the consumer has not handled has waited.",
                r["behind_seconds"], labels)
            add("dmdb_event_consumer_lost", g,
                "1 when the consumer lost events (pruned past the retention limit).",
                r["lost"], labels)
    c = by.get("event_retention")
    if c and c.metrics.get("installed"):
        for r in c.rows:
            labels = {"kind": r["kind"], "slot": r["slot_name"] or ""}
            add("dmdb_event_retained_bytes", g,
                "Bytes kept on disk for event consumers: tombstones, WAL pinned by logical slots.",
                r["retained_bytes"], labels)
