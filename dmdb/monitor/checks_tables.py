"""`dmdb monitor` checks of tables and indexes: unused and duplicate indexes (read through
`dmdb.indexes.report`, so the monitor and `dmdb indexes report` agree), dead tuples
(through `dmdb.maintenance.read_table_stats`, the autovacuum trigger point that
`maintenance --stale-only` uses), table and index bloat estimates, and tables read
mostly by sequential scans."""

from __future__ import annotations

from dmdb.monitor.core import (
    CheckResult,
    Status,
    Thresholds,
    _plain,
    _plural,
    _rows,
    _size,
)


def check_unused_indexes(conn, t: Thresholds) -> CheckResult:
    from dmdb import indexes

    rep = indexes.report(conn, min_size_mb=t.unused_min_bytes / (1024 * 1024))
    reset = _plain(rep.stats_reset)
    since = f"since statistics reset at {reset}" if reset else "since statistics began"
    rows = [{"status": "WARNING", **{k: _plain(v) for k, v in r.items()}}
            for r in sorted(rep.unused, key=lambda r: (-r["size_bytes"], r["schema"], r["index"]))]
    total = sum(r["size_bytes"] for r in rows)
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
    from dmdb import indexes

    rows = [{"status": "WARNING", **r} for r in indexes.report(conn).duplicates]
    total = sum(r["size_bytes"] for r in rows)
    metrics = {"count": len(rows), "size_bytes": total}
    if not rows:
        return CheckResult("duplicate_indexes", Status.OK, "no duplicate index",
                           metrics=metrics)
    names = ", ".join(f"{r['index']} (covered by {r['covered_by']})" for r in rows[:5])
    return CheckResult("duplicate_indexes", Status.WARNING,
                       f"{_plural(len(rows), 'redundant index')}: {names}",
                       metrics=metrics, rows=rows)


def check_dead_tuples(conn, t: Thresholds) -> CheckResult:
    from dmdb.maintenance import read_table_stats

    off = {(r["schema"], r["name"]) for r in _rows(conn, "autovacuum_off")}
    rows = []
    for schema in [r["schema"] for r in _rows(conn, "user_schemas")]:
        for s in read_table_stats(conn, schema):
            if s.kind == "p" or s.n_dead_tup <= 0:
                continue  # a partitioned table holds no rows: its partitions are listed
            trigger = max(s.vacuum_threshold, 1.0)
            ratio = round(s.n_dead_tup / trigger, 3)
            rows.append({
                "status": "WARNING" if s.n_dead_tup >= t.dead_tuples_factor * trigger else "OK",
                "schemaname": s.schema, "relname": s.name, "n_live_tup": s.n_live_tup,
                "n_dead_tup": s.n_dead_tup, "vacuum_trigger": s.vacuum_threshold,
                "trigger_ratio": ratio, "autovacuum_enabled": (s.schema, s.name) not in off,
                "last_vacuum": _plain(s.last_vacuum), "last_autovacuum": _plain(s.last_autovacuum),
                "last_analyze": _plain(s.last_analyze),
                "last_autoanalyze": _plain(s.last_autoanalyze)})
    rows.sort(key=lambda r: (-r["trigger_ratio"], r["schemaname"], r["relname"]))
    over = [r for r in rows if r["status"] == "WARNING"]
    total = sum(r["n_dead_tup"] for r in rows)
    metrics = {"dead_tuples": total, "tables_over_trigger": len(over)}
    rows = rows[:100]
    if not over:
        return CheckResult(
            "dead_tuples", Status.OK,
            f"{total:,} dead tuples; no table beyond {t.dead_tuples_factor:g} x its autovacuum "
            "trigger point", metrics=metrics, rows=rows)
    top = over[0]
    stopped = [r["relname"] for r in over if not r["autovacuum_enabled"]]
    hint = f"; autovacuum is off for {', '.join(stopped)}" if stopped else ""
    return CheckResult(
        "dead_tuples", Status.WARNING,
        f"{_plural(len(over), 'table')} with dead tuples >= {t.dead_tuples_factor:g} x the "
        f"autovacuum trigger point (worst {top['schemaname']}.{top['relname']}: "
        f"{top['n_dead_tup']:,} dead, trigger {top['vacuum_trigger']:,.0f}){hint}; "
        "run `dmdb maintenance vacuum --stale-only`",
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


def check_index_bloat(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "index_bloat", {"min_pages": t.index_bloat_min_pages})
    bad = []
    for r in rows:
        flagged = (r["bloat_ratio"] >= t.index_bloat_warn_ratio
                   and r["wasted_bytes"] >= t.index_bloat_min_bytes)
        r["status"] = "WARNING" if flagged else "OK"
        if flagged:
            bad.append(r)
    wasted = sum(r["wasted_bytes"] for r in rows)
    metrics = {"indexes_estimated": len(rows), "indexes_bloated": len(bad),
               "wasted_bytes": wasted}
    if not bad:
        return CheckResult(
            "index_bloat", Status.OK,
            f"no btree index estimated >= {t.index_bloat_warn_ratio:g}x its size with "
            f">= {_size(t.index_bloat_min_bytes)} wasted ({len(rows)} estimated)",
            metrics=metrics, rows=rows)
    top = bad[0]
    return CheckResult(
        "index_bloat", Status.WARNING,
        f"{_plural(len(bad), 'index')} bloated (worst {top['schemaname']}.{top['indexrelname']}: "
        f"{top['bloat_ratio']:g}x, ~{_size(top['wasted_bytes'])} wasted); estimate, +/- 20 %; "
        "REINDEX INDEX CONCURRENTLY rebuilds it", metrics=metrics, rows=rows)


def check_missing_indexes(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "missing_indexes", {"min_rows": t.missing_index_min_rows,
                                           "min_scans": t.missing_index_min_scans,
                                           "pct": t.missing_index_pct})
    for r in rows:
        r["status"] = "WARNING"
    metrics = {"count": len(rows)}
    rule = (f">= {t.missing_index_min_rows:,} rows, index scans < {t.missing_index_pct:g} % "
            f"of >= {t.missing_index_min_scans} scans")
    if not rows:
        return CheckResult("missing_indexes", Status.OK,
                           f"no table read mostly by sequential scans ({rule})",
                           metrics=metrics)
    top = rows[0]
    return CheckResult(
        "missing_indexes", Status.WARNING,
        f"{_plural(len(rows), 'table')} read mostly by sequential scans (worst "
        f"{top['schemaname']}.{top['relname']}: {top['seq_scan']:,} seq scans, "
        f"{top['index_scan_pct']:.0f} % by index; {rule}); add an index for its queries",
        metrics=metrics, rows=rows)
