"""The checks of sessions and of the database as a whole: connections, long-running and
blocked queries, cache hit, wraparound, sequences, invalid indexes and NOT VALID
constraints, replication, partitions, top statements. Each is
`check_x(conn, thresholds) -> CheckResult` over the read-only queries in
sql/queries/monitor/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dmdb.errors import ConnectError
from dmdb.monitor.core import (
    CheckResult,
    Privileges,
    Status,
    Thresholds,
    _pct,
    _plural,
    _rows,
    _size,
    _sql,
    blind,
    read_privileges,
    worst,
)

HIDDEN = "<insufficient privilege>"  # what PostgreSQL shows for a text the role may not see


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


def _lag_status(seconds: float, t: Thresholds) -> Status:
    if seconds >= t.replication_lag_critical_seconds:
        return Status.CRITICAL
    if seconds >= t.replication_lag_warn_seconds:
        return Status.WARNING
    return Status.OK


def check_replication(conn, t: Thresholds, *, primary: Callable | None = None,
                      replica_error: str | None = None,
                      privileges: Privileges | None = None) -> CheckResult:
    """`conn` is the read connection; `primary()` gives the primary's connection (the only
    one pg_stat_replication lists replicas on). `replica_error`: the configured read
    replica could not be reached (CRITICAL: the replica is down, whatever the others say).
    A role without pg_monitor sees each replica's row without its state and lag: never OK
    then (core.blind); without any replica, "no replicas" is what it sees, and true."""
    rows: list[dict] = []
    if replica_error is not None:
        rows.append({"role": "read replica (DB_READ_REPLICA_HOST)", "application_name": None,
                     "client_addr": None, "state": "unreachable", "lag_bytes": None,
                     "lag_seconds": None, "error": replica_error})
    standby = _rows(conn, "replication_standby")[0]
    if standby["in_recovery"]:
        # Reading from a standby: how far behind it is.
        rows.append({"role": "standby (read connection)", "application_name": None,
                     "client_addr": None, "state": "streaming", "lag_bytes": standby["lag_bytes"],
                     "lag_seconds": standby["lag_seconds"]})
    try:
        pconn = primary() if primary is not None else conn
    except ConnectError as exc:
        # Reading from a standby whose primary is down: that is the news, not UNKNOWN.
        return CheckResult("replication", Status.CRITICAL, f"primary unreachable: {exc}",
                           metrics={"replicas": len(rows), "primary_reachable": False},
                           rows=rows)
    hidden = 0
    if pconn is not conn or not standby["in_recovery"]:
        for r in _rows(pconn, "replication_primary"):
            row = {"role": "replica", **{k: r[k] for k in (
                "application_name", "client_addr", "state", "lag_bytes", "lag_seconds")}}
            if r["state"] is None:  # its details hidden from this role
                hidden += 1
                row.update(state="hidden", lag_bytes=None, lag_seconds=None)
            rows.append(row)
    for r in rows:
        r["status"] = ("CRITICAL" if r["state"] == "unreachable"
                       else "UNKNOWN" if r["state"] == "hidden"
                       else _lag_status(r["lag_seconds"] or 0.0, t).name)
    result = _replication_result(rows, t, replica_error)
    if privileges is not None:
        result.metrics["privileged"] = privileges.sees_all_sessions
    if hidden:
        who = privileges or read_privileges(pconn)
        result = blind(result, who, f"the state and lag of {_plural(hidden, 'replica')}")
    return result


def _replication_result(rows: list[dict], t: Thresholds,
                        replica_error: str | None) -> CheckResult:
    seen = [r for r in rows if r["status"] != "UNKNOWN"]
    if replica_error is not None:
        others = [r for r in rows if r["state"] != "unreachable"]
        return CheckResult(
            "replication", Status.CRITICAL,
            f"read replica unreachable: {replica_error}; reads fall back to the primary "
            f"({_plural(len(others), 'other replica')} seen)",
            metrics={"replicas": len(others), "replica_reachable": False,
                     "max_lag_seconds": max((r["lag_seconds"] or 0.0 for r in others), default=0.0),
                     "max_lag_bytes": max((r["lag_bytes"] or 0.0 for r in others), default=0.0)},
            rows=rows)
    if not rows:
        return CheckResult("replication", Status.OK, "no replicas",
                           metrics={"replicas": 0, "max_lag_seconds": 0.0, "max_lag_bytes": 0.0})
    max_s = max(r["lag_seconds"] or 0.0 for r in rows)
    max_b = max(r["lag_bytes"] or 0.0 for r in rows)
    status = worst(Status[r["status"]] for r in seen)
    return CheckResult(
        "replication", status,
        f"{_plural(len(rows), 'replica')}, max replay lag {max_s:.1f} s / {_size(max_b)}"
        + (f" (warning {t.replication_lag_warn_seconds:g} s)" if status is not Status.OK else ""),
        metrics={"replicas": len(rows), "max_lag_seconds": max_s, "max_lag_bytes": max_b},
        rows=rows)


def check_partitions(conn, t: Thresholds) -> CheckResult:
    """DEFAULT partitions' rows (by month) and the months ahead of the monitored tables,
    read through dmdb.partitions.catalog, as `dmdb partitions` reads them."""
    from dmdb.partitions.catalog import db_now, find_table, read_bounds, read_default
    from dmdb.partitions.plan import coverage

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


# pg_stat_statements: where its two steps are done, on a server of one's own and on a
# managed service (no postgresql.conf there, no superuser either).
PRELOAD_WHERE = "postgresql.conf, or your provider's parameter group / database flags"
CREATE_BY = ("as a superuser or your provider's admin role; migration 0001 does it for a "
             "superuser")


@dataclass(frozen=True)
class StatementsSetup:
    """pg_stat_statements on this server and in this database
    (sql/queries/monitor/pg_stat_statements.sql)."""

    dbname: str
    schemaname: str | None  # where it is created in this database; None: not created
    available: bool         # in pg_available_extensions (the server has its files)
    preloaded: bool         # in shared_preload_libraries (loaded at server start)

    @property
    def created(self) -> bool:
        return self.schemaname is not None


def read_statements_setup(conn) -> StatementsSetup:
    r = _rows(conn, "pg_stat_statements")[0]
    return StatementsSetup(r["dbname"], r["schemaname"], r["available"], r["preloaded"])


def statements_advice(s: StatementsSetup, *, loaded: bool | None = None) -> tuple[str, str | None]:
    """(state, the one line that says what to do) for pg_stat_statements; state "on" (no
    advice), "not_created", "not_preloaded", "not_set_up" or "unavailable". `loaded`:
    whether reading the view worked (it fails when the library was not preloaded), which
    wins over the settings."""
    db = s.dbname
    preloaded = s.preloaded if loaded is None else loaded
    if s.created and preloaded:
        return "on", None
    if s.created:
        return "not_preloaded", (
            f"pg_stat_statements is created in database {db} but not loaded: add "
            f"pg_stat_statements to shared_preload_libraries ({PRELOAD_WHERE}) and restart "
            "the server")
    if not s.available:
        return "unavailable", (
            "pg_stat_statements is not available on this server (not in "
            "pg_available_extensions): install PostgreSQL's contrib modules for this server "
            f"version, add pg_stat_statements to shared_preload_libraries ({PRELOAD_WHERE}), "
            f"restart, then run CREATE EXTENSION pg_stat_statements in database {db} "
            f"({CREATE_BY})")
    if preloaded:
        return "not_created", (
            f"pg_stat_statements is preloaded but not created in database {db}: run CREATE "
            f"EXTENSION pg_stat_statements in database {db} ({CREATE_BY})")
    return "not_set_up", (
        f"pg_stat_statements is not set up: add it to shared_preload_libraries "
        f"({PRELOAD_WHERE}), restart the server, then run CREATE EXTENSION "
        f"pg_stat_statements in database {db} ({CREATE_BY})")


def check_top_queries(conn, t: Thresholds, *,
                      privileges: Privileges | None = None) -> CheckResult:
    """The statements of this database with the most execution time. Without
    pg_stat_statements, OK with one line saying what to do for this server's case
    (statements_advice). pg_stat_statements shows a role without pg_monitor other roles'
    statements with their numbers but without their text (and queryid): with any such
    among the top, never OK (core.blind)."""
    import psycopg
    from psycopg import sql

    setup = read_statements_setup(conn)
    if not setup.created:
        state, advice = statements_advice(setup)
        return CheckResult("top_queries", Status.OK, advice,
                           metrics={"available": False, "setup": state}, notes=[advice])
    text = sql.SQL(_sql("top_statements")).format(schema=sql.Identifier(setup.schemaname))
    try:
        with conn.transaction():  # a savepoint: the check's transaction survives the error
            rows = _rows(conn, "top_statements", {"limit": t.top_queries}, text=text)
    except psycopg.errors.ObjectNotInPrerequisiteState:
        state, advice = statements_advice(setup, loaded=False)
        return CheckResult("top_queries", Status.OK, advice,
                           metrics={"available": False, "setup": state}, notes=[advice])
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
    result = CheckResult("top_queries", Status.OK, summary,
                         metrics={"available": True, "setup": "on", "statements": len(rows),
                                  "slow": slow, "total_seconds": round(total, 6)},
                         rows=rows)
    if privileges is not None:
        result.metrics["privileged"] = privileges.sees_all_sessions
    hidden = sum(r["query"] == HIDDEN for r in rows)
    if hidden:
        result = blind(result, privileges or read_privileges(conn),
                       f"the text of {hidden} of the top {len(rows)} statements "
                       "(other roles' statements)")
    return result


