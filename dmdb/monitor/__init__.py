"""`dmdb monitor`: health checks and pg_stat metrics, with thresholds from pghero, heroku
pg-extras and check_postgres (docs/monitor.md).

Modules: core (Status, CheckResult, Report, Thresholds and the query helpers), the checks
by subject (checks_database: sessions, wraparound, sequences, constraints, replication,
partitions, statements; checks_tables: indexes, dead tuples, bloat; checks_server:
schema, capabilities, xmin horizon, slots, archiving, checkpoints, disk space,
PgBouncer; checks_backup: the backup repository's backups, proven restores and WAL;
checks_events: the event feed's consumers and retention), run (the registry, one
read-only transaction per check, which checks need pg_monitor, `run_checks`, `monitor`),
history (`--record` snapshots and trends) and render (dashboard, JSON, Prometheus). This
front door re-exports the library API that docs/monitor.md shows. May import: the shared
floor, dmdb.migrate (schema version), dmdb.partitions, dmdb.indexes, dmdb.maintenance,
dmdb.backup and dmdb.events (their one reader of each fact), dmdb.server (where the
embedded server keeps its data, for disk_space).
"""

from __future__ import annotations

from dmdb.monitor.core import CheckResult, Report, Status, Thresholds  # noqa: F401
from dmdb.monitor.run import CHECKS, monitor, run_checks  # noqa: F401
