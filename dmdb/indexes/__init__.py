"""`dmdb indexes`: the project's index set, declared once in the migrations, and the
database made to match it without blocking writers.

Modules: declared (the set the migrations declare), catalog (the live snapshot), plan
(pure), builder (`build`), compare (`check`), usage (`report`). This front door
re-exports their public names. May import: the shared floor (errors, config, db,
resources) and dmdb.migrate (the migration files' parser).
"""

from __future__ import annotations

from dmdb.indexes.builder import (  # noqa: F401
    BUILD_LOCK_KEY,
    DDL_ATTEMPTS,
    DDL_LOCK_TIMEOUT,
    BuildProgress,
    BuildResult,
    build,
)
from dmdb.indexes.catalog import (  # noqa: F401
    Catalog,
    IndexRow,
    TableRow,
    read_catalog,
    resolve_table,
)
from dmdb.indexes.compare import (  # noqa: F401
    CheckResult,
    check,
    check_catalog,
)
from dmdb.indexes.declared import (  # noqa: F401
    DEFAULT_SCHEMA,
    MAX_IDENTIFIER_BYTES,
    DeclaredIndex,
    declared_indexes,
    parse_declared,
    partition_index_name,
)
from dmdb.indexes.plan import (  # noqa: F401
    IndexPlan,
    Step,
    plan_build,
    plan_index,
)
from dmdb.indexes.usage import (  # noqa: F401
    UNUSED_MIN_SIZE_MB,
    ReportResult,
    find_duplicates,
    find_unused,
    report,
)
