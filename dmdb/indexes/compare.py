"""`dmdb indexes check`: the declared set against the catalog (missing, invalid,
different definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dmdb.indexes.catalog import Catalog, read_catalog
from dmdb.indexes.declared import DeclaredIndex, definition_tail, pg_index_names

if TYPE_CHECKING:
    import psycopg


@dataclass
class CheckResult:
    invalid: list[dict] = field(default_factory=list)  # {"index", "table", "definition"}
    missing: list[dict] = field(default_factory=list)  # {"index", "table", "table_missing"}
    unattached: list[dict] = field(default_factory=list)  # {"parent_index", "partition", "partition_index"}
    declared: int = 0

    @property
    def ok(self) -> bool:
        return not (self.invalid or self.missing or self.unattached)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "declared": self.declared, "invalid": self.invalid,
                "missing": self.missing, "unattached": self.unattached}


def check_catalog(declared: list[DeclaredIndex], cat: Catalog) -> CheckResult:
    """Invalid indexes, declared-but-missing ones, and partitions whose index is not
    attached to their parent table's partitioned index (pure)."""
    result = CheckResult(declared=len(declared))
    for i in cat.indexes:
        if not i.valid:
            t = cat.table_by_oid.get(i.table_oid)
            result.invalid.append({
                "index": f"{i.schema}.{i.name}",
                "table": f"{t.schema}.{t.name}" if t else None,
                "partitioned": i.kind == "I",
                "definition": i.definition,
            })
    for d in declared:
        if (d.schema, d.name) not in cat.index_by_name:
            table_missing = (d.table_schema, d.table) not in cat.table_by_name
            result.missing.append({"index": d.qualified, "table": d.qualified_table,
                                   "table_missing": table_missing, "source": d.source})
    for i in cat.indexes:
        if i.kind != "I":
            continue
        for part in cat.children.get(i.table_oid, []):
            if cat.attached(i.oid, part.oid) is not None:
                continue
            # The partition's own index of the name PostgreSQL would give it, unattached.
            own = None
            for candidate, _ in zip(pg_index_names(part.name, definition_tail(i.definition)),
                                    range(10)):
                found = cat.index_by_name.get((part.schema, candidate))
                if found is not None and found.table_oid == part.oid and found.parent_oid is None:
                    own = found
                    break
            result.unattached.append({
                "parent_index": f"{i.schema}.{i.name}",
                "partition": f"{part.schema}.{part.name}",
                "partition_index": f"{own.schema}.{own.name}" if own is not None else None,
            })
    return result


def check(conn: psycopg.Connection, declared: list[DeclaredIndex]) -> CheckResult:
    return check_catalog(declared, read_catalog(conn))
