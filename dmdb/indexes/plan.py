"""The pure plan that makes the database match the declared set (`plan_build` over a
`Catalog` snapshot), without blocking writers:

- plain tables and materialized views: `CREATE INDEX CONCURRENTLY`;
- partitioned tables: `CREATE INDEX IF NOT EXISTS name ON ONLY parent ...` (invalid until
  complete), then for each partition `CREATE INDEX CONCURRENTLY <partition>_<suffix>` and
  `ALTER INDEX name ATTACH PARTITION <partition>_<suffix>`; sub-partitioned partitions
  recurse the same way. The parent index turns valid when every partition's is attached.
- an INVALID index (a failed or interrupted CONCURRENTLY build) is dropped with
  `DROP INDEX CONCURRENTLY` and built again, so a build can always be re-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dmdb.errors import DmdbError
from dmdb.indexes.catalog import Catalog, TableRow
from dmdb.indexes.declared import DeclaredIndex, pg_index_names

if TYPE_CHECKING:
    pass


@dataclass
class Step:
    """One statement of a build. `concurrent` steps run without lock_timeout (they never
    block writers); the others (ON ONLY, ATTACH) under a short lock_timeout, retried."""

    action: str  # drop_invalid | create_concurrently | create_on_only | attach
    index: str  # schema-qualified index the step creates, drops or attaches
    table: str  # schema-qualified table it is on
    sql: str
    concurrent: bool
    _statement: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"action": self.action, "index": self.index, "table": self.table,
                "sql": self.sql}


@dataclass
class IndexPlan:
    """What one declared index needs."""

    index: str  # schema-qualified name
    table: str
    status: str  # ok | missing | invalid | incomplete | table_missing
    steps: list[Step] = field(default_factory=list)
    partitions: int = 0  # partitions on which the index is built (partitioned tables)

    def to_dict(self) -> dict:
        return {"index": self.index, "table": self.table, "status": self.status,
                "partitions": self.partitions, "steps": [s.to_dict() for s in self.steps]}


def _ident(schema: str, name: str):
    from psycopg import sql

    return sql.Identifier(schema, name)


def _step(action: str, schema: str, index: str, table: TableRow, statement, *,
          concurrent: bool) -> Step:
    return Step(action, f"{schema}.{index}", f"{table.schema}.{table.name}",
                statement.as_string(), concurrent, statement)


def _create(d: DeclaredIndex, schema: str, index: str, table: TableRow, *, only: bool,
            concurrently: bool):
    from psycopg import sql

    return sql.SQL("CREATE {unique}INDEX {conc}IF NOT EXISTS {index} ON {only}{table} {tail}").format(
        unique=sql.SQL("UNIQUE " if d.unique else ""),
        conc=sql.SQL("CONCURRENTLY " if concurrently else ""),
        index=sql.Identifier(index),
        only=sql.SQL("ONLY " if only else ""),
        table=_ident(table.schema, table.name),
        # The rest of the definition is the project's own migration text, as written.
        tail=sql.SQL(d.tail),
    )


def _drop_concurrently(schema: str, index: str):
    from psycopg import sql

    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_ident(schema, index))


def _attach(parent_schema: str, parent: str, child_schema: str, child: str):
    from psycopg import sql

    return sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
        _ident(parent_schema, parent), _ident(child_schema, child))


def _partition_index(d: DeclaredIndex, cat: Catalog, part: TableRow,
                     planned: set[tuple[str, str]]) -> tuple[str, object]:
    """The name of `part`'s index for `d`, as PostgreSQL names it when the migrations make
    it (pg_index_names: <partition>_<columns>_idx, then _idx1, ...), and the index of that
    name left on `part` by an interrupted build (not attached to anything), if any: a name
    taken by anything else moves on to the next, as PostgreSQL's does."""
    for name in pg_index_names(part.name, d.tail):
        if (part.schema, name) in planned:
            continue
        own = cat.index_by_name.get((part.schema, name))
        if own is not None:
            if own.table_oid == part.oid and own.parent_oid is None:
                return name, own
            continue
        if (part.schema, name) in cat.table_by_name:
            continue
        return name, None
    raise AssertionError("unreachable")  # pragma: no cover


def _plan_partitions(d: DeclaredIndex, cat: Catalog, table: TableRow, parent_schema: str,
                     parent_name: str, steps: list[Step],
                     planned: set[tuple[str, str]] | None = None) -> int:
    """Steps that give each partition of `table` an index attached to `parent_name`."""
    planned = set() if planned is None else planned
    parent = cat.index_by_name.get((parent_schema, parent_name))
    built = 0
    for part in cat.children.get(table.oid, []):
        existing = cat.attached(parent.oid, part.oid) if parent is not None else None
        if existing is not None:
            if existing.kind == "I" and not existing.valid:
                built += _plan_partitions(d, cat, part, existing.schema, existing.name,
                                          steps, planned)
            elif not existing.valid:
                # Attached yet invalid (rare: an interrupted REINDEX): rebuild it in place.
                from psycopg import sql

                stmt = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(
                    _ident(existing.schema, existing.name))
                steps.append(_step("reindex", existing.schema, existing.name, part, stmt,
                                   concurrent=True))
                built += 1
            continue
        name, own = _partition_index(d, cat, part, planned)
        planned.add((part.schema, name))
        if part.kind == "p":
            if own is None:
                steps.append(_step("create_on_only", part.schema, name, part,
                                   _create(d, part.schema, name, part, only=True,
                                           concurrently=False), concurrent=False))
            built += _plan_partitions(d, cat, part, part.schema, name, steps, planned)
        else:
            if own is not None and not own.valid:
                steps.append(_step("drop_invalid", part.schema, name, part,
                                   _drop_concurrently(part.schema, name), concurrent=True))
                own = None
            if own is None:
                steps.append(_step("create_concurrently", part.schema, name, part,
                                   _create(d, part.schema, name, part, only=False,
                                           concurrently=True), concurrent=True))
            built += 1
        steps.append(_step("attach", part.schema, name, part,
                           _attach(parent_schema, parent_name, part.schema, name),
                           concurrent=False))
    return built


def plan_index(d: DeclaredIndex, cat: Catalog) -> IndexPlan:
    """The steps that bring one declared index to valid (pure: catalog in, plan out)."""
    table = cat.table_by_name.get((d.table_schema, d.table))
    plan = IndexPlan(d.qualified, d.qualified_table, "ok")
    if table is None:
        plan.status = "table_missing"
        return plan
    existing = cat.index_by_name.get((d.schema, d.name))
    if existing is not None and existing.table_oid != table.oid:
        raise DmdbError(
            f"index {d.qualified} exists on another table than the declared "
            f"{d.qualified_table}; drop or rename it, then run the build again"
        )
    if table.kind == "p":
        if existing is not None and existing.valid:
            return plan
        plan.status = "missing" if existing is None else "incomplete"
        if existing is None:
            plan.steps.append(_step("create_on_only", d.schema, d.name, table,
                                    _create(d, d.schema, d.name, table, only=True,
                                            concurrently=False), concurrent=False))
        plan.partitions = _plan_partitions(d, cat, table, d.schema, d.name, plan.steps)
        return plan
    if existing is not None and existing.valid:
        return plan
    if existing is not None:
        plan.status = "invalid"
        plan.steps.append(_step("drop_invalid", d.schema, d.name, table,
                                _drop_concurrently(d.schema, d.name), concurrent=True))
    else:
        plan.status = "missing"
    plan.steps.append(_step("create_concurrently", d.schema, d.name, table,
                            _create(d, d.schema, d.name, table, only=False, concurrently=True),
                            concurrent=True))
    return plan


def plan_build(declared: list[DeclaredIndex], cat: Catalog,
               table: TableRow | None = None) -> list[IndexPlan]:
    """A plan per declared index (only those on `table`, when given)."""
    out = []
    for d in declared:
        if table is not None and (d.table_schema, d.table) != (table.schema, table.name):
            continue
        out.append(plan_index(d, cat))
    return out
