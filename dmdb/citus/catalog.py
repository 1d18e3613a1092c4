"""The live schema as Citus would see it: each table classified as distributed (it holds
the distribution column), reference (shared by all learners: copied to every node) or
local (dmdb's own bookkeeping, which stays on the coordinator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources

if TYPE_CHECKING:
    import psycopg

DISTRIBUTION_COLUMN = "user_id"
# dmdb's own bookkeeping: the migration ledger, 0001's record of what it changed, the
# rollup's watermark, the DDL audit and the event feed's consumer positions are the
# coordinator's, not the learners'.
LOCAL_TABLES = frozenset({"dmdb_bootstrap", "rollup_watermarks", "schema_audit",
                          "event_consumers"})
LOCAL_PREFIXES = ("_yoyo_", "_dmdb_", "yoyo_")
# Tables sharded by a column of their own, not co-located with the learners: the e-mail
# lookup that keeps e-mails unique across shards (migration 0017).
OWN_COLUMN = {"user_emails": "email"}


@dataclass(frozen=True)
class Constraint:
    table: str
    name: str
    kind: str  # p primary key | u unique | i unique index | f foreign key
    columns: tuple[str, ...]
    ref_table: str | None = None
    ref_columns: tuple[str, ...] = ()


@dataclass
class Table:
    name: str
    relkind: str  # r table | p partitioned | m materialized view
    has_column: bool
    sub_partitioned: bool
    kind: str = "reference"  # distributed | reference | local | view
    column: str | None = None  # its distribution column, when distributed

    @property
    def distributed(self) -> bool:
        return self.kind == "distributed"


@dataclass
class Schema:
    name: str
    column: str
    tables: dict[str, Table] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    sequences: list[tuple[str, str, str, str]] = field(default_factory=list)
    triggers: list[tuple[str, str]] = field(default_factory=list)

    def kind(self, table: str) -> str:
        found = self.tables.get(table)
        return found.kind if found else "local"

    def column_of(self, table: str) -> str | None:
        found = self.tables.get(table)
        return found.column if found else None

    def colocated(self, table: str) -> bool:
        """Sharded by the learner, with the learners."""
        return self.kind(table) == "distributed" and self.column_of(table) == self.column

    def of_kind(self, kind: str) -> list[Table]:
        return [t for t in self.tables.values() if t.kind == kind]


def _classify(table: Table, column: str) -> tuple[str, str | None]:
    if table.relkind == "m":
        return "view", None
    if table.name in LOCAL_TABLES or table.name.startswith(LOCAL_PREFIXES):
        return "local", None
    if table.name in OWN_COLUMN:
        return "distributed", OWN_COLUMN[table.name]
    return ("distributed", column) if table.has_column else ("reference", None)


def read_schema(conn: psycopg.Connection, schema: str = "public",
                column: str = DISTRIBUTION_COLUMN) -> Schema:
    """The tables, keys, sequences and triggers of `schema`, classified."""
    params = {"schema": schema, "column": column}
    out = Schema(schema, column)
    for _oid, name, relkind, has_column, sub in conn.execute(
            resources.query("citus_tables"), params).fetchall():
        table = Table(name, relkind, has_column, sub)
        table.kind, table.column = _classify(table, column)
        out.tables[name] = table
    for table, name, kind, columns, ref_table, ref_columns in conn.execute(
            resources.query("citus_constraints"), params).fetchall():
        out.constraints.append(Constraint(table, name, kind, tuple(columns), ref_table,
                                          tuple(ref_columns or ())))
    out.sequences = [tuple(r) for r in conn.execute(resources.query("citus_sequences"),
                                                    params).fetchall()]
    out.triggers = [tuple(r) for r in conn.execute(resources.query("citus_triggers"),
                                                   params).fetchall()]
    return out
