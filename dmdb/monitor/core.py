"""The pieces every `dmdb monitor` check shares: verdicts, results, the report, the
thresholds (one field per flag), what the monitoring role may see (Privileges, and
`blind` for a check that cannot see what it needs) and small helpers. The checks themselves live in
dmdb.monitor.run (sessions, wraparound, schema objects, partitions, statements),
dmdb.monitor.checks_tables (indexes, dead tuples, bloat, missing indexes),
dmdb.monitor.checks_server (schema version, xmin horizon, slots, WAL archiving,
checkpoints, PgBouncer); the history of `--record` in dmdb.monitor.history.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dmdb.errors import ConfigError
from dmdb.render import human_bytes
from dmdb.resources import query

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT = "30s"
# The largest values a flag may name: 100 years of days or seconds, PostgreSQL's bigint.
MAX_DAYS = 36500
MAX_SECONDS = MAX_DAYS * 86400
MAX_BIGINT = 2**63 - 1
# Threshold fields whose flag is not the field's name with dashes.
_FLAG = {
    "connections_warn_pct": "--connections-warn",
    "connections_critical_pct": "--connections-critical",
    "seq_warn_pct": "--seq-warn", "seq_critical_pct": "--seq-critical",
    "unused_min_bytes": "--unused-min-size", "bloat_min_bytes": "--bloat-min-size",
    "index_bloat_min_bytes": "--index-bloat-min-size",
    "slot_wal_warn_bytes": "--slot-wal-warn", "slot_wal_critical_bytes": "--slot-wal-critical",
    "replication_lag_warn_seconds": "--replication-lag-warn",
    "replication_lag_critical_seconds": "--replication-lag-critical",
    "prepared_warn_seconds": "--prepared-warn", "prepared_critical_seconds": "--prepared-critical",
    "checkpoint_req_warn_ratio": "--checkpoint-req-warn",
    "pgbouncer_wait_warn_seconds": "--pgbouncer-wait-warn",
    "pgbouncer_wait_critical_seconds": "--pgbouncer-wait-critical",
    "disk_warn_pct": "--disk-warn", "disk_critical_pct": "--disk-critical",
}


def flag_of(field_name: str) -> str:
    """The command-line flag of a Thresholds field."""
    return _FLAG.get(field_name, "--" + field_name.replace("_", "-"))


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
    # Why an UNKNOWN check could not answer, when several share the reason (a missing
    # privilege: see `blind`); the --check line and the dashboard name it once.
    cause: str | None = None

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
    up: bool = True  # False: the server could not be reached and no check ran
    error: str | None = None  # why it could not be reached (redacted)
    trends: dict | None = None  # from the --record history, when there is one

    @property
    def status(self) -> Status:
        if not self.up:
            return Status.UNKNOWN
        return worst(c.status for c in self.checks)

    def worst_check(self) -> CheckResult | None:
        if not self.checks:
            return None
        return max(self.checks, key=lambda c: c.status.severity)

    def blind_line(self) -> str | None:
        """The checks UNKNOWN for a shared cause, one part per cause: `4 checks UNKNOWN:
        role app lacks pg_monitor (GRANT pg_monitor TO app;): connections, ...`."""
        groups: dict[str, list[str]] = {}
        for c in self.checks:
            if c.status is Status.UNKNOWN and c.cause:
                groups.setdefault(c.cause, []).append(c.name)
        if not groups:
            return None
        return "; ".join(f"{_plural(len(names), 'check')} UNKNOWN: {cause}: {', '.join(names)}"
                         for cause, names in groups.items())

    def check_line(self) -> str:
        """check_postgres style: `STATE: description` for the worst check; checks UNKNOWN
        for a shared cause (a missing privilege) are named together, once."""
        if not self.up:
            return f"UNKNOWN: {self.error}"
        blind = {id(c) for c in self.checks if c.status is Status.UNKNOWN and c.cause}
        rest = [c for c in self.checks if id(c) not in blind]
        blind_line = self.blind_line()
        top = max(rest, key=lambda c: c.status.severity, default=None)
        if top is None or top.status is Status.OK:
            if blind_line:
                return f"UNKNOWN: {blind_line}"
            return f"OK: {len(self.checks)} checks OK{self._unmeasured()}"
        others = [c.name for c in rest if c.status is not Status.OK and c is not top]
        tail = f" (also not OK: {', '.join(others)})" if others else ""
        if blind_line:
            tail += f"; {blind_line}"
        return f"{top.status.name}: {top.name}: {top.summary}{tail}"

    def _unmeasured(self) -> str:
        """What OK checks could not measure from here (a remote server's disk), so that
        an OK line never claims it."""
        parts = [f"{c.name} ({', '.join(c.metrics['not_measured'])})" for c in self.checks
                 if c.status is Status.OK and c.metrics.get("not_measured")]
        return f"; not measured from here: {', '.join(parts)}" if parts else ""

    def to_dict(self) -> dict:
        return {
            "up": self.up,
            "error": self.error,
            "target": self.target,
            "checks": [c.to_dict() for c in self.checks],
            "status": self.status.name,
            "generated_at": self.generated_at.isoformat(),
            "trends": self.trends,
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
    # xmin horizon: what keeps VACUUM from removing dead rows
    xmin_hold_seconds: float = 3600.0           # a transaction / snapshot held this long
    xmin_age_warn: int = 10_000_000             # ... or this many transactions behind
    xmin_age_critical: int = 100_000_000        # half of autovacuum_freeze_max_age
    prepared_warn_seconds: float = 60.0         # check_postgres prepared_txns (1 s / 30 s)
    prepared_critical_seconds: float = 3600.0
    # replication slots
    slot_wal_warn_bytes: int = 1024 ** 3        # WAL a slot keeps on disk
    slot_wal_critical_bytes: int = 10 * 1024 ** 3
    # WAL archiving and checkpoints
    archive_ready_warn: int = 10                # WAL segments waiting to be archived
    # the backup repository (checks_backup)
    backup_age_warn_hours: float = 26.0         # a daily backup, with slack
    backup_age_critical_hours: float = 50.0
    restore_check_warn_days: float = 7.0        # restore --check proved a restore
    restore_check_critical_days: float = 14.0
    archive_behind_warn_seconds: float = 600.0  # newest archived segment this old, with
    archive_behind_critical_seconds: float = 3600.0  # complete segments not archived
    checkpoint_req_warn_ratio: float = 0.5      # requested / all checkpoints ...
    checkpoint_min: int = 20                    # ... judged from this many on
    # index bloat and missing indexes
    index_bloat_warn_ratio: float = 2.0
    index_bloat_min_bytes: int = 100 * 1024 * 1024
    index_bloat_min_pages: int = 100
    missing_index_min_rows: int = 10_000        # pghero: >= 10,000 rows ...
    missing_index_pct: float = 95.0             # ... index scans < 95 % of scans
    missing_index_min_scans: int = 100          # too few scans to judge below this
    # PgBouncer (SHOW POOLS)
    pgbouncer_wait_warn_seconds: float = 1.0    # a client waiting this long for a server
    pgbouncer_wait_critical_seconds: float = 10.0
    # file systems of the data directory, WAL, backup repository (check_postgres disk_space)
    disk_warn_pct: float = 90.0
    disk_critical_pct: float = 95.0

    def validate(self) -> Thresholds:
        def bad(msg: str):
            raise ConfigError(msg)

        # NaN passes every comparison below unnoticed, and infinity or 1e308 reach
        # PostgreSQL as an interval or a bigint it cannot hold: usage errors, not crashes.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                bad(f"{flag_of(f.name)} must be a finite number (got {value})")
            if f.name.endswith("_seconds") and value > MAX_SECONDS:
                bad(f"{flag_of(f.name)} must be at most {MAX_SECONDS} seconds (100 years)")
            if abs(value) > MAX_BIGINT:
                unit = " MB" if f.name.endswith("_bytes") else ""
                limit = MAX_BIGINT // (1024 * 1024) if unit else MAX_BIGINT
                bad(f"{flag_of(f.name)} must be at most {limit}{unit}")

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
        if not 0 < self.xmin_age_warn <= self.xmin_age_critical:
            bad("--xmin-age-warn and --xmin-age-critical are transaction counts with "
                "0 < warn <= critical")
        if not 0 <= self.prepared_warn_seconds <= self.prepared_critical_seconds:
            bad("--prepared-warn and --prepared-critical are seconds with 0 <= warn <= critical")
        if not 0 <= self.slot_wal_warn_bytes <= self.slot_wal_critical_bytes:
            bad("--slot-wal-warn and --slot-wal-critical are MB with 0 <= warn <= critical")
        if not 0 < self.checkpoint_req_warn_ratio <= 1:
            bad("--checkpoint-req-warn is a ratio with 0 < ratio <= 1, e.g. 0.5")
        if not 0 <= self.missing_index_pct <= 100:
            bad("--missing-index-pct is a percentage between 0 and 100")
        if not 0 <= self.pgbouncer_wait_warn_seconds <= self.pgbouncer_wait_critical_seconds:
            bad("--pgbouncer-wait-warn and --pgbouncer-wait-critical are seconds with "
                "0 <= warn <= critical")
        if not 0 < self.disk_warn_pct <= self.disk_critical_pct <= 100:
            bad("--disk-warn and --disk-critical are percentages of a file system used, with "
                "0 < warn <= critical <= 100")
        for warn, crit in (("backup_age_warn_hours", "backup_age_critical_hours"),
                           ("restore_check_warn_days", "restore_check_critical_days"),
                           ("archive_behind_warn_seconds", "archive_behind_critical_seconds")):
            if getattr(self, warn) > getattr(self, crit):
                bad(f"--{warn.rsplit('_', 1)[0].replace('_', '-')} must be <= "
                    f"--{crit.rsplit('_', 1)[0].replace('_', '-')}")
        for name in ("idle_in_transaction_warn", "long_query_seconds", "blocked_seconds",
                     "cache_min_reads", "unused_min_bytes", "dead_tuples_factor",
                     "bloat_warn_ratio", "bloat_min_bytes", "bloat_min_pages",
                     "partition_months_ahead", "idle_in_transaction_seconds",
                     "xmin_hold_seconds", "archive_ready_warn", "checkpoint_min",
                     "backup_age_warn_hours", "restore_check_warn_days",
                     "archive_behind_warn_seconds",
                     "index_bloat_warn_ratio", "index_bloat_min_bytes", "index_bloat_min_pages",
                     "missing_index_min_rows", "missing_index_min_scans"):
            if getattr(self, name) < 0:
                bad(f"{flag_of(name)} must not be negative")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ------------------------------------------------------------------------ privileges

GRANT_BY = "run by an admin; on RDS, Cloud SQL and Azure the master user can grant it"


@dataclass(frozen=True)
class Privileges:
    """What the monitoring role may see (sql/queries/monitor/privileges.sql). Without the
    privileges of pg_read_all_stats (pg_monitor includes it), other roles' sessions in
    pg_stat_activity and pg_stat_replication show no state, query or times, and
    pg_stat_statements hides other roles' texts: counts over them look healthy and are
    wrong. A superuser has every privilege; RDS' rds_superuser, Cloud SQL's
    cloudsqlsuperuser and Azure's azure_pg_admin are not superusers."""

    role: str
    superuser: bool
    read_all_stats: bool      # sees every session: superuser, or pg_read_all_stats inherited
    read_all_settings: bool   # reads superuser-only settings (shared_preload_libraries)
    grant: str                # GRANT pg_monitor TO <role>; (the role quoted as needed)

    @property
    def sees_all_sessions(self) -> bool:
        return self.read_all_stats

    @property
    def cause(self) -> str:
        return f"role {self.role} lacks pg_monitor ({self.grant})"

    def to_dict(self) -> dict:
        return {"role": self.role, "superuser": self.superuser,
                "sees_all_sessions": self.read_all_stats,
                "reads_all_settings": self.read_all_settings}


def read_privileges(conn: psycopg.Connection) -> Privileges:
    r = _rows(conn, "privileges")[0]
    return Privileges(r["role"], r["superuser"], r["read_all_stats"], r["read_all_settings"],
                      r["grant_statement"])


def blind(result: CheckResult, privileges: Privileges, what: str) -> CheckResult:
    """`result` of a check that could not see `what` (rows hidden from a role without
    pg_monitor): never OK. An OK turns UNKNOWN with one line saying what it cannot see and
    the fix (what it did see moves to the notes); a WARNING or CRITICAL stays, since what
    it found is there, with that line as a note (more may be hidden). Metrics:
    `privileged` false."""
    line = (f"role {privileges.role} lacks pg_monitor and cannot see {what}; fix: "
            f"{privileges.grant} ({GRANT_BY})")
    metrics = {**result.metrics, "privileged": False}
    if result.status is Status.OK:
        return replace(result, status=Status.UNKNOWN, summary=line, metrics=metrics,
                       notes=[f"as far as role {privileges.role} can see: {result.summary}",
                              *result.notes],
                       cause=privileges.cause)
    return replace(result, metrics=metrics, notes=[line, *result.notes])


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


# The checks and renderers import it from here under this name.
_size = human_bytes


def check_days(value: float, flag: str, *, zero: bool = False) -> float:
    """A number of days a flag gives (`--trend-days`, `--retention-days`): finite, above
    0 (or 0 when `zero` allows it), at most MAX_DAYS. A usage error otherwise."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{flag} must be a {'non-negative' if zero else 'positive'} number "
                          f"of days (got {value:g})")
    if value > MAX_DAYS:
        raise ConfigError(f"{flag} must be at most {MAX_DAYS} days (100 years; got {value:g})")
    return value
