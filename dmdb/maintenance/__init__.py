"""`dmdb maintenance`: VACUUM ANALYZE of the tables that need it, and the refresh of the
materialized views and rollups.

Modules: tables (statistics, vacuum), views (refresh, rollup). This front door re-exports
their public names. May import: the shared floor (errors, db, resources) and
dmdb.indexes (a table named on the command line is resolved as `indexes` resolves it).
"""

from __future__ import annotations

from dmdb.maintenance.tables import (  # noqa: F401
    TableStats,
    VacuumResult,
    VacuumTarget,
    plan_vacuum,
    read_table_stats,
    vacuum,
)
from dmdb.maintenance.views import (  # noqa: F401
    RefreshResult,
    RefreshTarget,
    plan_refresh,
    refresh,
    run_rollup,
)
