"""`dmdb monitor` checks of the server and what surrounds it: the dmdb schema itself,
what is off for lack of privileges (capabilities), what holds back the xmin horizon,
replication slots, WAL archiving, checkpoints, disk space and PgBouncer's pools."""

from __future__ import annotations

from typing import Any

from dmdb.monitor.core import (
    GRANT_BY,
    CheckResult,
    Privileges,
    Status,
    Thresholds,
    _plural,
    _rows,
    _size,
    read_privileges,
    worst,
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ------------------------------------------------------------------------------ schema

def check_schema(conn, t: Thresholds, *, project=None) -> CheckResult:
    """The dmdb schema is there and up to date (the migration ledger against the files)."""
    from dmdb.migrate import engine

    db = conn.info.dbname
    if not engine.ledger_exists(conn):
        return CheckResult(
            "schema", Status.CRITICAL,
            f"no dmdb schema in database {db}: run `dmdb up` (or point DB_NAME at the "
            "right database)", metrics={"present": False, "applied": 0, "pending": None})
    state = engine.status(conn, project if project is not None else engine.Project())
    summary = state.to_dict()["summary"]
    pending = [m.id for m in state.migrations if m.state == "pending"]
    functions = [f.id for f in state.functions if f.state != "applied"]
    metrics = {"present": True, "applied": summary["applied"], "pending": len(pending),
               "functions_pending": len(functions), "problems": len(state.problems)}
    rows = ([{"status": "WARNING", "item": f"migration {m}", "detail": "pending"}
             for m in pending]
            + [{"status": "WARNING", "item": f"function {f}", "detail": "pending or changed"}
               for f in functions]
            + [{"status": "WARNING", "item": p.split(":")[0], "detail": p} for p in state.problems])
    if rows:
        what = []
        if pending:
            what.append(f"{_plural(len(pending), 'migration')} pending ({pending[0]}…)")
        if functions:
            what.append(f"{_plural(len(functions), 'function file')} not applied")
        if state.problems:
            what.append(state.problems[0])
        return CheckResult("schema", Status.WARNING,
                           "; ".join(what) + ": run `dmdb up` (see `dmdb status`)",
                           metrics=metrics, rows=rows)
    return CheckResult("schema", Status.OK,
                       f"{summary['applied']} migrations applied, up to date", metrics=metrics)


# ---------------------------------------------------------------------- capabilities

AUDIT_TRIGGERS = {"schema_audit_ddl": "ddl_command_end", "schema_audit_drop": "sql_drop"}


def check_capabilities(conn, t: Thresholds, *,
                       privileges: Privileges | None = None) -> CheckResult:
    """What is off for lack of privileges, each with how to turn it on: whether the role
    sees other sessions (pg_monitor), pg_stat_statements, and the DDL audit (migration
    0005's event triggers, created only by a superuser). Always OK: a managed database
    without a superuser is healthy, and the checks that cannot see other sessions are
    UNKNOWN themselves; this says why, in one place."""
    from dmdb.monitor.checks_database import read_statements_setup, statements_advice

    p = privileges or read_privileges(conn)
    rows: list[dict] = []
    notes: list[str] = []
    parts: list[str] = []

    def row(feature: str, state: str, detail: str, note: bool = False) -> None:
        rows.append({"status": "OK", "feature": feature, "state": state, "detail": detail})
        if note:
            notes.append(detail)

    if p.sees_all_sessions:
        row("other sessions", "visible",
            f"role {p.role} " + ("is a superuser" if p.superuser
                                 else "has pg_read_all_stats (pg_monitor)"))
        parts.append("sees every session")
    else:
        row("other sessions", "hidden",
            f"role {p.role} lacks pg_monitor: other roles' sessions, replicas' lag and "
            f"statement texts are hidden from it (the checks over them are UNKNOWN); fix: "
            f"{p.grant} ({GRANT_BY})", note=True)
        parts.append(f"other sessions hidden (role {p.role} lacks pg_monitor)")

    setup = read_statements_setup(conn)
    state, advice = statements_advice(setup)
    if advice is None:
        row("pg_stat_statements", state,
            f"created in schema {setup.schemaname} of database {setup.dbname}, preloaded")
        parts.append("pg_stat_statements on")
    else:
        row("pg_stat_statements", state, advice, note=True)
        parts.append(f"pg_stat_statements {state.replace('_', ' ')}")

    audit = _rows(conn, "ddl_audit")[0]
    if not audit["table_present"]:
        ddl_audit = None
        row("DDL audit", "no schema", "no schema_audit table: the dmdb schema is not applied "
            "(see the schema check)")
    else:
        missing = [n for n in AUDIT_TRIGGERS if n not in audit["enabled"] + audit["disabled"]]
        disabled = list(audit["disabled"])
        ddl_audit = not missing and not disabled
        if ddl_audit:
            row("DDL audit", "on", "event triggers schema_audit_ddl and schema_audit_drop "
                "record schema changes in schema_audit")
            parts.append("DDL audit on")
        else:
            fixes = [f"CREATE EVENT TRIGGER {n} ON {AUDIT_TRIGGERS[n]} EXECUTE FUNCTION "
                     "schema_audit_record();" for n in missing]
            fixes += [f"ALTER EVENT TRIGGER {n} ENABLE;" for n in disabled]
            why = []
            if missing:
                why.append(f"event trigger{'s' if len(missing) > 1 else ''} "
                           f"{' and '.join(missing)} absent: event triggers need a superuser "
                           "(migration 0005 creates them only when run by one; schema_audit "
                           "stays empty)")
            if disabled:
                why.append(f"event trigger {' and '.join(disabled)} disabled")
            row("DDL audit", "off",
                f"DDL audit off: {'; '.join(why)}; a superuser (or a provider's admin role "
                f"allowed to create event triggers) runs: {' '.join(fixes)}", note=True)
            parts.append("DDL audit off: event triggers need a superuser" if missing
                         else "DDL audit off: event trigger disabled")
    metrics = {**p.to_dict(), "pg_stat_statements": state, "ddl_audit": ddl_audit}
    summary = f"role {p.role}{' (superuser)' if p.superuser else ''}: " + "; ".join(parts)
    return CheckResult("capabilities", Status.OK, summary, metrics=metrics, rows=rows,
                       notes=notes)


# ------------------------------------------------------------------------ xmin horizon

def check_xmin_horizon(conn, t: Thresholds) -> CheckResult:
    """Long transactions, prepared transactions, replication slots and standby feedback
    that keep VACUUM from removing dead rows (and from freezing: wraparound)."""
    rows = _rows(conn, "xmin_holders")
    for r in rows:
        age = r["xmin_age"] or 0
        s = Status.OK
        if age >= t.xmin_age_critical:
            s = Status.CRITICAL
        elif age >= t.xmin_age_warn:
            s = Status.WARNING
        secs = r["seconds"]
        if r["kind"] == "prepared transaction" and secs is not None:
            if secs >= t.prepared_critical_seconds:
                s = worst([s, Status.CRITICAL])
            elif secs >= t.prepared_warn_seconds:
                s = worst([s, Status.WARNING])
        elif r["kind"] == "transaction" and secs is not None and secs >= t.xmin_hold_seconds:
            s = worst([s, Status.WARNING])
        r["status"] = s.name
    status = worst(Status[r["status"]] for r in rows)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    prepared = [r for r in rows if r["kind"] == "prepared transaction"]
    metrics: dict[str, Any] = {
        "holders": len(rows),
        "max_xmin_age": max((r["xmin_age"] or 0 for r in rows), default=0),
        "max_xmin_age_by_kind": {k: max(r["xmin_age"] or 0 for r in rows if r["kind"] == k)
                                 for k in kinds},
        "holders_by_kind": kinds,
        "oldest_transaction_seconds": round(max(
            (r["seconds"] or 0.0 for r in rows if r["kind"] == "transaction"), default=0.0), 3),
        "prepared_transactions": len(prepared),
        "oldest_prepared_seconds": round(max(
            (r["seconds"] or 0.0 for r in prepared), default=0.0), 3),
    }
    if not rows:
        return CheckResult("xmin_horizon", Status.OK,
                           "nothing holds back the xmin horizon", metrics=metrics)
    bad = [r for r in rows if r["status"] != "OK"] or rows
    top = bad[0]
    held = f", held {_duration(top['seconds'])}" if top["seconds"] is not None else ""
    head = (f"{top['kind']} {top['holder']} holds the horizon {top['xmin_age']:,} "
            f"transactions back{held}")
    if status is Status.OK:
        return CheckResult("xmin_horizon", Status.OK,
                           f"{_plural(len(rows), 'holder')}, oldest: {head}",
                           metrics=metrics, rows=rows)
    fix = {"prepared transaction": "COMMIT PREPARED or ROLLBACK PREPARED it",
           "transaction": "end it (pg_terminate_backend) or fix the client",
           "replication slot": "drop the slot if its consumer is gone",
           "standby feedback": "a standby's long query; see hot_standby_feedback"}[top["kind"]]
    return CheckResult(
        "xmin_horizon", status,
        f"{_plural(len(bad), 'holder')} over the thresholds; {head}: {fix}; VACUUM cannot "
        "remove newer dead rows meanwhile", metrics=metrics, rows=rows)


# --------------------------------------------------------------------- replication slots

def check_replication_slots(conn, t: Thresholds) -> CheckResult:
    rows = _rows(conn, "replication_slots")
    problems = []
    for r in rows:
        s = Status.OK
        why = []
        kept = r["retained_bytes"] or 0.0
        if r["wal_status"] == "lost":
            s = Status.CRITICAL
            why.append("lost: the WAL it needs is gone, its consumer cannot resume")
        elif r["wal_status"] == "unreserved":
            s = Status.WARNING
            why.append("past max_slot_wal_keep_size: its WAL is about to be removed")
        if kept >= t.slot_wal_critical_bytes:
            s = worst([s, Status.CRITICAL])
            why.append(f"keeps {_size(kept)} of WAL")
        elif kept >= t.slot_wal_warn_bytes:
            s = worst([s, Status.WARNING])
            why.append(f"keeps {_size(kept)} of WAL")
        if not r["active"] and not r["temporary"]:
            s = worst([s, Status.WARNING])
            why.insert(0, f"inactive (keeps {_size(kept)} of WAL"
                       + (f", since {r['inactive_since'][:16].replace('T', ' ')}"
                          if r["inactive_since"] else "")
                       + ")")
        r["status"] = s.name
        r["problem"] = "; ".join(why) or None
        if s is not Status.OK:
            problems.append(r)
    status = worst(Status[r["status"]] for r in rows)
    metrics = {"slots": len(rows), "inactive": sum(not r["active"] for r in rows),
               "max_retained_bytes": max((r["retained_bytes"] or 0.0 for r in rows), default=0.0)}
    if not rows:
        return CheckResult("replication_slots", Status.OK, "no replication slots",
                           metrics=metrics)
    if not problems:
        return CheckResult(
            "replication_slots", Status.OK,
            f"{_plural(len(rows), 'slot')}, all active, at most "
            f"{_size(metrics['max_retained_bytes'])} of WAL kept", metrics=metrics, rows=rows)
    top = max(problems, key=lambda r: (Status[r["status"]].severity, r["retained_bytes"] or 0))
    return CheckResult(
        "replication_slots", status,
        f"{_plural(len(problems), 'slot')} need{'s' if len(problems) == 1 else ''} "
        f"attention; {top['slot_type']} slot "
        f"{top['slot_name']}: {top['problem']} — drop it (pg_drop_replication_slot) if its "
        "consumer is gone", metrics=metrics, rows=rows)


# ------------------------------------------------------------------- WAL and checkpoints

def check_wal_archiving(conn, t: Thresholds) -> CheckResult:
    import psycopg

    a = _rows(conn, "archiver")[0]
    notes: list[str] = []
    ready = None
    try:
        with conn.transaction():  # a savepoint: the check's transaction survives a refusal
            ready = _rows(conn, "archive_ready")[0]["ready"]
    except psycopg.errors.InsufficientPrivilege:
        notes.append("WAL segments waiting to be archived not counted: needs pg_monitor")
    metrics = {"archive_mode": a["archive_mode"], "archived": a["archived_count"],
               "failed": a["failed_count"], "failing": bool(a["failing"]), "ready": ready,
               "last_archived_age_seconds": a["last_archived_age_seconds"]}
    row = {"status": "OK", **a, "ready": ready}
    if a["archive_mode"] == "off":
        return CheckResult("wal_archiving", Status.OK, "archive_mode is off (no WAL archive)",
                           metrics=metrics, notes=notes)
    if a["failing"]:
        row["status"] = "CRITICAL"
        return CheckResult(
            "wal_archiving", Status.CRITICAL,
            f"archiving fails: {a['last_failed_wal']} failed at {a['last_failed_time'][:19]} "
            f"({a['failed_count']:,} failures since reset"
            + (f", {ready} segments waiting" if ready is not None else "")
            + "); WAL piles up in pg_wal: fix archive_command (see the server log)",
            metrics=metrics, rows=[row], notes=notes)
    if ready is not None and ready >= t.archive_ready_warn:
        row["status"] = "WARNING"
        return CheckResult(
            "wal_archiving", Status.WARNING,
            f"{ready} WAL segments waiting to be archived (warning {t.archive_ready_warn}); "
            "the archiver falls behind", metrics=metrics, rows=[row], notes=notes)
    last = (f"last {a['last_archived_wal']} {_duration(a['last_archived_age_seconds'])} ago"
            if a["last_archived_wal"] else "nothing archived yet")
    return CheckResult("wal_archiving", Status.OK,
                       f"archiving works: {a['archived_count']:,} archived, {last}",
                       metrics=metrics, rows=[row], notes=notes)


def check_checkpoints(conn, t: Thresholds) -> CheckResult:
    version = conn.info.server_version
    c = _rows(conn, "checkpoints" if version >= 170000 else "checkpoints_16")[0]
    total = c["timed"] + c["requested"]
    ratio = c["requested"] / total if total else 0.0
    metrics = {"timed": c["timed"], "requested": c["requested"],
               "requested_ratio": round(ratio, 4), "write_seconds": c["write_seconds"],
               "sync_seconds": c["sync_seconds"], "buffers_written": c["buffers_written"],
               "stats_reset": c["stats_reset"]}
    text = (f"{c['requested']:,} of {total:,} checkpoints requested ({100 * ratio:.0f} %) "
            "since statistics reset")
    if total >= t.checkpoint_min and ratio >= t.checkpoint_req_warn_ratio:
        return CheckResult(
            "checkpoints", Status.WARNING,
            f"{text} (warning {100 * t.checkpoint_req_warn_ratio:g} %): WAL fills "
            "max_wal_size before checkpoint_timeout; raise max_wal_size", metrics=metrics)
    note = [] if total >= t.checkpoint_min else [
        f"fewer than {t.checkpoint_min} checkpoints: too few to judge (--checkpoint-min)"]
    return CheckResult("checkpoints", Status.OK, text, metrics=metrics, notes=note)


# ------------------------------------------------------------------------- disk space

def disk_locations(settings) -> tuple[list[tuple[str, str]], list[str]]:
    """Where the server and dmdb keep data on this machine: (location, path) pairs to
    measure, and the locations that cannot be measured from here. The embedded server's
    data directory and WAL are local; a remote server's are not, and PostgreSQL tells no
    client how much room its file systems have (pg_ls_dir/pg_stat_file give sizes of
    files, not free space). The backup repository is measured once its directory exists."""
    import os
    from pathlib import Path

    found: list[tuple[str, str]] = []
    unmeasured: list[str] = []
    if settings is not None and getattr(settings, "embedded", False):
        from dmdb.server.embedded import EmbeddedServer

        pg_data = EmbeddedServer(Path(settings.home)).pg_data
        found += [("data", os.path.realpath(pg_data)),
                  ("wal", os.path.realpath(pg_data / "pg_wal"))]
    else:
        unmeasured += ["data", "wal"]
    if settings is not None:
        repo = getattr(settings, "backup_repo", None) or Path(settings.home) / "backups"
        if Path(repo).is_dir():
            found.append(("backup_repository", os.path.realpath(repo)))
    return found, unmeasured


def _filesystem(path: str) -> dict[str, Any]:
    """df's figures for the file system holding `path`: used % as df computes it
    (used / (used + available to non-root users)), so the root-reserved blocks count as
    full, as they are for the server."""
    import os

    st = os.statvfs(path)
    size = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    pct = 100.0 * used / (used + free) if used + free else 100.0
    inodes_used = st.f_files - st.f_ffree
    inodes_pct = (100.0 * inodes_used / (inodes_used + st.f_favail)
                  if st.f_files and inodes_used + st.f_favail else None)
    return {"size_bytes": size, "free_bytes": free, "used_pct": round(pct, 2),
            "inodes_used_pct": None if inodes_pct is None else round(inodes_pct, 2)}


def check_disk_space(conn, t: Thresholds, *, settings=None) -> CheckResult:
    """Free space (and inodes) of the file systems of the data directory, the WAL and
    the backup repository: WARNING / CRITICAL at % used (check_postgres disk_space).
    A remote server's directories are not measurable from here: the check says so in its
    summary, `not_measured` and the `--check` line, and reports no figure for them."""
    locations, unmeasured = disk_locations(settings)
    rows: list[dict[str, Any]] = []
    for location, path in locations:
        try:
            fs = _filesystem(path)
        except OSError as exc:
            rows.append({"status": "UNKNOWN", "location": location, "path": path,
                         "detail": f"cannot read its file system: {exc.strerror}"})
            continue
        worst_pct = max(fs["used_pct"], fs["inodes_used_pct"] or 0.0)
        status = (Status.CRITICAL if worst_pct >= t.disk_critical_pct
                  else Status.WARNING if worst_pct >= t.disk_warn_pct else Status.OK)
        what = "inodes" if (fs["inodes_used_pct"] or 0.0) > fs["used_pct"] else "space"
        rows.append({"status": status.name, "location": location, "path": path, **fs,
                     "detail": (f"{what} {worst_pct:.1f}% used, {_size(fs['free_bytes'])} free"
                                if status is not Status.OK else "")})
    measured = [r for r in rows if "used_pct" in r]
    metrics = {
        "measured": [r["location"] for r in measured],
        "not_measured": list(unmeasured),
        "max_used_pct": max((r["used_pct"] for r in measured), default=None),
        "min_free_bytes": min((r["free_bytes"] for r in measured), default=None),
    }
    status = worst(Status[r["status"]] for r in rows)
    notes = []
    if unmeasured:
        notes.append("not measured from here: a configured server's data directory and WAL "
                     "are on its own host (PostgreSQL tells no client how much room they have); "
                     "watch that host's free space, or the provider's storage metric (RDS "
                     "FreeStorageSpace, Cloud SQL disk utilization, Azure storage percent)")
    if status is not Status.OK:
        bad = [r for r in rows if r["status"] == status.name]
        if status is Status.UNKNOWN:
            summary = "; ".join(f"{r['location']} ({r['path']}): {r['detail']}" for r in bad)
        else:
            level = t.disk_critical_pct if status is Status.CRITICAL else t.disk_warn_pct
            summary = ("; ".join(f"{r['location']} ({r['path']}) {r['detail']}" for r in bad)
                       + f" ({status.name.lower()} at {level:g}%): free space there, or the "
                       "server stops when it cannot write WAL")
        return CheckResult("disk_space", status, summary, metrics=metrics, rows=rows,
                           notes=notes)
    if not measured:
        summary = ("not measured: the data directory and WAL of a configured server "
                   "(DATABASE_URL / DB_HOST) are on the server's host, out of dmdb's sight; "
                   "see the notes")
    else:
        summary = ", ".join(f"{r['location']} {r['used_pct']:.0f}% used "
                            f"({_size(r['free_bytes'])} free)" for r in measured)
        if unmeasured:
            summary += f"; not measured from here: {', '.join(unmeasured)}"
    return CheckResult("disk_space", Status.OK, summary, metrics=metrics, rows=rows,
                       notes=notes)


# -------------------------------------------------------------------------- PgBouncer

def check_pgbouncer(conn, t: Thresholds, *, pgbouncer_url: str | None = None,
                    settings=None) -> CheckResult:
    """SHOW POOLS on PgBouncer's admin console (the `pgbouncer` database)."""
    import psycopg

    from dmdb.db import redact
    from dmdb.errors import first_line

    if not pgbouncer_url:
        return CheckResult("pgbouncer", Status.OK,
                           "no PgBouncer configured (--pgbouncer / DMDB_PGBOUNCER_URL)",
                           metrics={"configured": False, "up": None})
    try:
        # The admin console speaks the simple query protocol only: a client-side cursor.
        with psycopg.connect(pgbouncer_url, autocommit=True, connect_timeout=5,
                             cursor_factory=psycopg.ClientCursor) as pgb:
            cur = pgb.execute("SHOW POOLS")
            names = [d.name for d in cur.description]
            pools = [dict(zip(names, r)) for r in cur.fetchall()]
    except psycopg.Error as exc:
        return CheckResult(
            "pgbouncer", Status.CRITICAL,
            f"PgBouncer admin console unreachable: {redact(first_line(exc), settings)}; "
            "check --pgbouncer (a URL with dbname pgbouncer and an admin_users or "
            "stats_users role)", metrics={"configured": True, "up": False})
    rows = []
    for p in pools:
        if p.get("database") == "pgbouncer":
            continue
        wait = float(p.get("maxwait") or 0) + float(p.get("maxwait_us") or 0) / 1e6
        waiting = int(p.get("cl_waiting") or 0)
        s = Status.OK
        if waiting and wait >= t.pgbouncer_wait_critical_seconds:
            s = Status.CRITICAL
        elif waiting and wait >= t.pgbouncer_wait_warn_seconds:
            s = Status.WARNING
        rows.append({"status": s.name, "database": p.get("database"), "user": p.get("user"),
                     "pool_mode": p.get("pool_mode"),
                     "cl_active": int(p.get("cl_active") or 0), "cl_waiting": waiting,
                     "sv_active": int(p.get("sv_active") or 0),
                     "sv_idle": int(p.get("sv_idle") or 0), "maxwait_seconds": round(wait, 6)})
    status = worst(Status[r["status"]] for r in rows)
    waiting = sum(r["cl_waiting"] for r in rows)
    longest = max((r["maxwait_seconds"] for r in rows), default=0.0)
    metrics = {"configured": True, "up": True, "pools": len(rows), "cl_waiting": waiting,
               "max_wait_seconds": longest}
    summary = (f"{_plural(len(rows), 'pool')}, {waiting} clients waiting for a server"
               + (f" (longest {longest:.1f} s)" if waiting else ""))
    if status is not Status.OK:
        summary += (f" over {t.pgbouncer_wait_warn_seconds:g} s: the pool is too small for "
                    "the load, or server connections are held by long transactions")
    return CheckResult("pgbouncer", status, summary, metrics=metrics, rows=rows)
