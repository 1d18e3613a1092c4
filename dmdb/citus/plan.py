"""`dmdb citus plan`: the ordered DDL that would distribute this schema on a Citus cluster,
as a file to review; nothing is run here.

Order matters to Citus: reference tables first, each after the tables it references
(a foreign key to a reference table needs that table already distributed); then `users`,
the distribution anchor, and its co-located tables in foreign-key order; then the
functions delegated by their learner argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.citus.audit import AuditResult, audit
from dmdb.citus.catalog import Schema, read_schema
from dmdb.citus.functions import DELEGATED
from dmdb.errors import DmdbError

if TYPE_CHECKING:
    import psycopg

ANCHOR = "users"


@dataclass
class CitusPlan:
    text: str
    audit: AuditResult

    def to_dict(self) -> dict:
        return {"sql": self.text, "audit": self.audit.to_dict()}


def _fk_order(names: list[str], s: Schema) -> list[str]:
    """`names` with every table after the tables of `names` it references (stable)."""
    deps = {n: {c.ref_table for c in s.constraints
                if c.kind == "f" and c.table == n and c.ref_table in names and c.ref_table != n}
            for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in sorted(names) if n not in ordered and deps[n] <= set(ordered)]
        if not ready:  # a cycle: keep the rest in name order, Citus reports it
            ready = [n for n in sorted(names) if n not in ordered]
        ordered += ready[:1]
    return ordered


def plan(conn: psycopg.Connection, *, schema: str = "public",
         allow_blockers: bool = False) -> CitusPlan:
    from psycopg import sql

    result = audit(conn, schema)
    if result.blockers and not allow_blockers:
        raise DmdbError(
            f"{len(result.blockers)} Citus blocker(s) remain, first {result.blockers[0].rule}: "
            f"{result.blockers[0].object}; `dmdb lint --citus` lists them (or pass "
            "--allow-blockers to write the plan anyway)")
    s = read_schema(conn, schema, result.column)

    def regclass(name: str) -> str:
        qualified = sql.Identifier(schema, name).as_string(conn)
        return sql.Literal(qualified).as_string(conn)

    reference = [regclass(n) for n in _fk_order(result.reference, s)]
    others = [n for n in _fk_order(result.distributed, s) if n != ANCHOR and s.colocated(n)]
    distributed = [regclass(n) for n in others]
    apart = [(regclass(n), sql.Literal(s.column_of(n)).as_string(conn))
             for n in result.distributed if not s.colocated(n)]
    functions = []
    for name, argument in DELEGATED.items():
        for signature, *_ in conn.execute(resources.query("citus_function"),
                                          {"schema": schema, "name": name}).fetchall():
            functions.append((sql.Literal(signature).as_string(conn),
                              sql.Literal(argument).as_string(conn)))
    text = resources.render_template(
        "citus_plan.sql.j2",
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        database=conn.info.dbname, column=sql.Literal(result.column).as_string(conn),
        column_name=result.column, anchor=regclass(ANCHOR) if ANCHOR in result.distributed
        else None, reference=reference, distributed=distributed, apart=apart, functions=functions,
        local=result.local, views=[t.name for t in s.of_kind("view")],
        triggers=bool(s.triggers), blockers=[f.line() for f in result.blockers])
    return CitusPlan(text, result)
