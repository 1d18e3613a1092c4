"""The workload, as pg_stat_statements has counted it, and the live tables it names.

Read-only: one reader each, on the live connection. The statements come from
sql/queries/optimize_statements.sql (this database's rows, summed per queryid, nested
statements included); whether the extension is there and preloaded from the monitor's
own query (sql/queries/monitor/pg_stat_statements.sql).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import DmdbError
from dmdb.optimize.parse import Parsed, Table, Tables, parse_statement

if TYPE_CHECKING:
    import psycopg


class NoWorkload(DmdbError):
    """pg_stat_statements cannot be read here: nothing to advise from."""


@dataclass
class Statement:
    queryid: str
    query: str
    nested: bool  # only ever ran inside a function
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_written: int
    parsed: Parsed | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("parsed")
        if self.parsed is not None:
            data["kind"] = self.parsed.kind
            data["explained"] = self.parsed.text  # what EXPLAIN (GENERIC_PLAN) was given
            data["scans"] = [s.to_dict() for s in self.parsed.scans]
            data["parse_error"] = self.parsed.error
        return data


@dataclass
class Workload:
    statements: list[Statement]
    hidden: int  # statements whose text this role may not read
    privileged: bool  # sees every role's statements (superuser or pg_read_all_stats)
    stats_reset: object  # when pg_stat_statements was last reset (None: unknown)
    role: str


@dataclass
class LiveTable:
    oid: int
    table: Table
    size_bytes: int


def extension_schema(conn: psycopg.Connection) -> str:
    """pg_stat_statements' schema, or NoWorkload saying which step is missing."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(resources.query("monitor/pg_stat_statements")).fetchone()
    if row["schemaname"] is not None and row["preloaded"]:
        return row["schemaname"]
    db = row["dbname"]
    if row["schemaname"] is not None:
        raise NoWorkload("pg_stat_statements is created but not preloaded: add it to "
                         "shared_preload_libraries (a server setting; restart) to record "
                         "the workload")
    if row["preloaded"] or row["available"]:
        raise NoWorkload(f"pg_stat_statements is not created in database {db}: run CREATE "
                         f"EXTENSION pg_stat_statements in {db}"
                         + ("" if row["preloaded"] else
                            " and add it to shared_preload_libraries (restart)"))
    raise NoWorkload("pg_stat_statements is not available on this server: dmdb optimize "
                     "indexes advises from the statements it records")


def read_workload(conn: psycopg.Connection) -> Workload:
    from psycopg import sql
    from psycopg.rows import dict_row

    schema = extension_schema(conn)
    query = sql.SQL(resources.query("optimize_statements")).format(schema=sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query).fetchall()
        who = cur.execute(
            "SELECT current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = "
            "current_user) OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS seen"
        ).fetchone()
        info = cur.execute(sql.SQL("SELECT stats_reset FROM {}.pg_stat_statements_info").format(
            sql.Identifier(schema))).fetchone()
    hidden = sum(r["entries"] for r in rows if r["queryid"] is None)
    statements = [Statement(**{k: v for k, v in r.items() if k != "entries"})
                  for r in rows if r["queryid"] is not None]
    return Workload(statements, hidden, bool(who["seen"]),
                    info["stats_reset"] if info else None, who["role"])


def read_tables(conn: psycopg.Connection, schemas: tuple[str, ...]) -> dict[str, LiveTable]:
    """The user tables of `schemas`, by schema-qualified name."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("optimize_tables"), {"schemas": list(schemas)}).fetchall()
    out = {}
    for r in rows:
        t = Table(r["schema"], r["name"], dict(zip(r["columns"], r["types"])), r["kind"])
        out[t.qualified] = LiveTable(r["oid"], t, r["size_bytes"])
    return out


def search_path(conn: psycopg.Connection) -> tuple[str, ...]:
    row = conn.execute("SELECT current_schemas(false)").fetchone()
    return tuple(row[0])


def parse_all(workload: Workload, tables: dict[str, LiveTable], path: tuple[str, ...]) -> None:
    known = Tables([t.table for t in tables.values()], path)
    for s in workload.statements:
        s.parsed = parse_statement(s.query, known)
