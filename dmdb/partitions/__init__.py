"""Monthly partitions of learning_events: list, create ahead, roll over from cron.

Behaviour follows pg_partman's maintenance (premake, DEFAULT-partition handling,
retention to a schema or by dropping, one maintenance run at a time), with what it
declines to do: rows in the DEFAULT partition that belong to a month being created are
moved into the new partition as part of creating it, without any reader missing them.

This package's front door re-exports the public names; the work is split by subject:

- `dmdb.partitions.plan`: months, the pure plan (which months to create, `--fill`,
  retention, coverage for the monitor) and the SQL of a create step;
- `dmdb.partitions.catalog`: the one reading of partition bounds (`read_bounds`) and
  of DEFAULT's rows (`read_default`), shared by planning, `list`, seed and monitor;
- `dmdb.partitions.runner`: the advisory-locked run that plans and executes steps, and
  why a create step locks what it locks;
- `dmdb.partitions.retention`: archiving (cut loose from the live schema) and dropping;
- `dmdb.partitions.cron`: `partitions cron`, the crontab line and systemd units.

May import: the shared floor (errors, config, db, files, resources).
"""

from __future__ import annotations

from datetime import date

from dmdb.errors import ConfigError
from dmdb.partitions.catalog import (
    Dependency,
    Listing,
    PartitionedTable,
    PartitionRow,
    db_now,
    list_partitions,
    read_bounds,
    read_default,
    read_dependencies,
    read_table,
)
from dmdb.partitions.plan import (
    CHECK_NAME,
    DEFAULT_ATTEMPTS,
    DEFAULT_BASE_DELAY,
    DEFAULT_CHECK_NAME,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE,
    EXIT_DEFAULT_ROWS,
    FILL_HORIZON,
    MAX_AHEAD,
    SWAP_MIN_ROWS,
    UTC,
    Conflict,
    Coverage,
    DefaultContents,
    DefaultMonth,
    Existing,
    PartitionError,
    PurePlan,
    Step,
    Stranded,
    TableInfo,
    Target,
    add_months,
    check_lock_timeout,
    coverage,
    create_step,
    month_bounds,
    month_of,
    months_ahead,
    parse_month,
    partition_name,
    plan_create,
    plan_fill,
    plan_late,
    plan_pure,
    plan_retention,
    retention_cutoff,
    swap_step,
    validate_options,
)
from dmdb.partitions.retention import archive_step, drop_step, late_step, unlink_step
from dmdb.partitions.runner import (
    PARTITION_LOCK_KEY,
    Plan,
    PlanRequest,
    RunResult,
    execute,
    make_plan,
    run,
)

__all__ = [
    "CHECK_NAME", "DEFAULT_ATTEMPTS", "DEFAULT_BASE_DELAY", "DEFAULT_CHECK_NAME",
    "DEFAULT_LOCK_TIMEOUT", "SWAP_MIN_ROWS", "swap_step",
    "DEFAULT_TABLE", "EXIT_DEFAULT_ROWS", "FILL_HORIZON", "MAX_AHEAD", "PARTITION_LOCK_KEY",
    "UTC", "Conflict", "Coverage", "DefaultContents", "DefaultMonth", "Dependency",
    "Existing", "Listing", "PartitionError", "PartitionRow", "PartitionedTable", "Plan",
    "PlanRequest", "PurePlan", "RunResult", "Step", "Stranded", "TableInfo", "Target",
    "add_months",
    "archive_step", "check_lock_timeout", "coverage", "create_step", "db_now", "drop_step",
    "execute", "late_step", "list_partitions", "make_plan", "month_bounds", "month_of", "months_ahead",
    "parse_month", "partition_name", "plan_create", "plan_fill", "plan_late", "plan_pure",
    "plan_retention", "read_bounds", "read_default", "read_dependencies", "read_table",
    "retention_cutoff", "run", "unlink_step", "validate_options",
]


def today_from_text(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--today {text!r} is not a date; write it as YYYY-MM-DD") from None


