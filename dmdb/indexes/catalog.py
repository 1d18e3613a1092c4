"""The live indexes and tables, read once into a `Catalog` snapshot that planning,
`check` and the monitor share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import ConfigError

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class IndexRow:
    schema: str
    name: str
    oid: int
    kind: str  # i | I
    table_oid: int
    valid: bool
    is_unique: bool
    parent_oid: int | None
    definition: str


@dataclass(frozen=True)
class TableRow:
    oid: int
    schema: str
    name: str
    kind: str  # r | p | m
    parent_oid: int | None


@dataclass
class Catalog:
    """What the database holds: indexes and tables outside the system schemas."""

    indexes: list[IndexRow]
    tables: list[TableRow]

    def __post_init__(self):
        self.index_by_name = {(i.schema, i.name): i for i in self.indexes}
        self.index_by_oid = {i.oid: i for i in self.indexes}
        self.table_by_name = {(t.schema, t.name): t for t in self.tables}
        self.table_by_oid = {t.oid: t for t in self.tables}
        self.children: dict[int, list[TableRow]] = {}
        for t in self.tables:
            if t.parent_oid is not None:
                self.children.setdefault(t.parent_oid, []).append(t)
        for kids in self.children.values():
            kids.sort(key=lambda t: (t.schema, t.name))

    def attached(self, parent_index_oid: int, table_oid: int) -> IndexRow | None:
        """The index on `table_oid` attached to the partitioned index `parent_index_oid`."""
        for i in self.indexes:
            if i.parent_oid == parent_index_oid and i.table_oid == table_oid:
                return i
        return None

    def leaves(self, table_oid: int) -> list[TableRow]:
        out = []
        for child in self.children.get(table_oid, []):
            if child.kind == "p":
                out.extend(self.leaves(child.oid))
            else:
                out.append(child)
        return out


def read_catalog(conn: psycopg.Connection) -> Catalog:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        indexes = [IndexRow(**r) for r in cur.execute(resources.query("indexes_catalog"))]
        tables = [TableRow(**r) for r in cur.execute(resources.query("indexes_tables"))]
    if not conn.autocommit:
        conn.rollback()
    return Catalog(indexes, tables)


def resolve_table(conn: psycopg.Connection, name: str) -> TableRow:
    """A table named on the command line, looked up in the catalog (never spliced into
    SQL): `name` or `schema.name`, exactly as stored (no case folding, no quoting rules).
    Unknown: ConfigError (exit 2)."""
    from psycopg.rows import dict_row

    raw = name
    if "." in name and name.count(".") == 1 and not name.startswith('"'):
        schema, rel = name.split(".", 1)
    else:
        schema, rel = None, name
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            resources.query("indexes_resolve_table"),
            {"schema": schema, "rel": rel, "raw": raw},
        ).fetchone()
    if not conn.autocommit:
        conn.rollback()
    if row is None:
        shown = raw if len(raw) <= 80 else raw[:77] + "..."
        raise ConfigError(
            f"no table named {shown!r} in this database; give an existing table, "
            "optionally schema-qualified (e.g. --table public.learning_events)"
        )
    return TableRow(**row)
