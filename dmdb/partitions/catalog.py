"""Reading partitions from the catalog: the one place that does.

- `read_bounds`: every partition's bounds (sql/queries/partitions_bounds.sql). The
  planner, `partitions list`, `seed` (through the planner) and the monitor's
  partitions check all read bounds here and nowhere else.
- `read_default`: what a DEFAULT partition holds, by UTC month
  (sql/queries/partitions_default.sql). Likewise the only count of DEFAULT's rows.
- `read_table`: the managed table (key, columns, DEFAULT partition, foreign keys).
- `list_partitions`: the listing of every partitioned table, built on the two above.
- `read_dependencies`: what a table depends on outside itself (archiving).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from psycopg import sql

from dmdb import resources
from dmdb.errors import ConfigError, first_line
from dmdb.partitions.plan import (
    DEFAULT_TABLE,
    DefaultContents,
    DefaultMonth,
    Existing,
    TableInfo,
)

if TYPE_CHECKING:
    import psycopg

TIMESTAMPTZ = "timestamp with time zone"


# -- the table -------------------------------------------------------------------


def _describe(conn: psycopg.Connection, *, name: str | None = None,
              oid: int | None = None) -> dict | None:
    import psycopg
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        try:
            return cur.execute(resources.query("partitions_table"),
                               {"name": name, "oid": oid}).fetchone()
        except (psycopg.errors.InvalidName, psycopg.errors.SyntaxError,
                psycopg.errors.FeatureNotSupported) as exc:
            first = first_line(exc, "")
            raise ConfigError(f"--table {name!r} is not a table name ({first})") from None


def _table_info(row: dict) -> TableInfo:
    return TableInfo(
        schema=row["table_schema"], name=row["table_name"], key=row["key_column"],
        columns=tuple(row["columns"]), default=row["default_name"],
        default_schema=row["default_schema"],
        fk_targets=tuple(tuple(t) for t in row["fk_targets"]), oid=row["oid"],
        default_indexes=tuple(row.get("default_indexes") or ()),
        default_grants=tuple((g, p, bool(o)) for g, p, o in row.get("default_grants") or ()
                             if re.fullmatch(r"[A-Z ]+", p)),
        default_moving=bool(row.get("default_moving")),
    )


def read_table(conn: psycopg.Connection, name: str = DEFAULT_TABLE) -> TableInfo:
    """The table `dmdb partitions` manages: RANGE partitioned on one timestamptz column."""
    row = _describe(conn, name=name)
    if row is None and name == DEFAULT_TABLE and conn.execute(
            "SELECT to_regclass(%s) IS NULL", (name,)).fetchone()[0]:
        from dmdb.errors import schema_missing

        raise schema_missing(conn.info.dbname, "dmdb partitions")
    if row is None:
        raise ConfigError(
            f"{name} is not a partitioned table in this database; run `dmdb up` first "
            "or pass --table SCHEMA.TABLE"
        )
    if row["strategy"] != "r" or row["key_column"] is None or row["key_type"] != TIMESTAMPTZ:
        raise ConfigError(
            f"{row['table_schema']}.{row['table_name']} is not RANGE partitioned on one "
            "timestamptz column; dmdb partitions manages monthly ranges only"
        )
    return _table_info(row)


def find_table(conn: psycopg.Connection, name: str) -> int | None:
    """The oid of a partitioned table named `name` (search_path applies), or None."""
    row = conn.execute("SELECT to_regclass(%s)::oid::bigint", (name,)).fetchone()
    return row[0] if row else None


# -- bounds ----------------------------------------------------------------------


def read_bounds(conn: psycopg.Connection, parent: int | TableInfo | None = None
                ) -> list[Existing]:
    """The partitions of `parent` (an oid or a TableInfo; None: of every partitioned
    table), each with its bounds; see partitions_bounds.sql."""
    oid = parent.oid if isinstance(parent, TableInfo) else parent
    rows = conn.execute(resources.query("partitions_bounds"), {"parent": oid}).fetchall()
    return [Existing(name=r[2], lo=r[9], hi=r[10], is_default=r[4], schema=r[1], bound=r[6],
                     from_text=r[7], to_text=r[8], oid=r[3], parent_oid=r[0],
                     sub_partitioned=r[5])
            for r in rows]


# -- what DEFAULT holds ----------------------------------------------------------


def _month_label(year: int, month: int) -> tuple[str, date | None]:
    if 1 <= year <= 9999:
        return f"{year:04d}-{month:02d}", date(year, month, 1)
    if year < 1:
        return f"{-year} BC-{month:02d}", None
    return f"{year}-{month:02d}", None


def read_default(conn: psycopg.Connection, table: TableInfo | int,
                 cap: int | None = None) -> DefaultContents | None:
    """What the DEFAULT partition of `table` holds (None: it has none): rows in total
    and, for a table partitioned on one timestamptz column, by UTC month. At most `cap`
    rows are read when given (`capped` then says the figures are lower bounds)."""
    if not isinstance(table, TableInfo):
        row = _describe(conn, oid=table)
        if row is None or row["default_name"] is None:
            return None
        by_month = row["strategy"] == "r" and row["key_type"] == TIMESTAMPTZ
        table = _table_info(row)
    else:
        by_month = True
    if table.default_ident is None:
        return None
    contents = DefaultContents(table.default_schema or table.schema, table.default,
                               parent=table.qualified)
    if not by_month:
        contents.rows = conn.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %(cap)s) AS s").format(
                table.default_ident), {"cap": cap}).fetchone()[0]
    else:
        query = sql.SQL(resources.query("partitions_default")).format(
            default=table.default_ident, key=sql.Identifier(table.key))
        contents.months = []
        for year, month, label, rows in conn.execute(query, {"cap": cap}).fetchall():
            if label is None:
                label, when = _month_label(year, month)
            else:
                when = None
            contents.months.append(DefaultMonth(label, rows, when))
            contents.rows += rows
    contents.capped = cap is not None and contents.rows >= cap
    return contents


# -- dependencies ----------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    """Something a table depends on outside itself (partitions_dependencies.sql)."""

    kind: str  # foreign key | constraint | default | trigger | policy | rule | index | column | ...
    name: str | None  # the constraint, column, trigger or policy concerned
    dependent: str
    depends_on: str

    def describe(self) -> str:
        return f"{self.dependent} depends on {self.depends_on}"


def read_dependencies(conn: psycopg.Connection, rel: int | str) -> list[Dependency]:
    """What table `rel` (an oid, or a name for to_regclass) depends on outside itself."""
    if isinstance(rel, str):
        rel = find_table(conn, rel)
        if rel is None:
            return []
    rows = conn.execute(resources.query("partitions_dependencies"), {"rel": rel}).fetchall()
    return [Dependency(*r) for r in rows]


def former_partitions(conn: psycopg.Connection, schema: str, parent: str) -> list[tuple[str, int]]:
    """Tables of `schema` named like `parent`'s monthly partitions that are partitions
    of nothing: what earlier archiving moved there. (name, oid) pairs."""
    rows = conn.execute(
        "SELECT c.relname, c.oid::bigint FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r' AND NOT "
        "c.relispartition ORDER BY 1", (schema,)).fetchall()
    pattern = re.compile(re.escape(parent) + r"_\d{4}_\d{2}")
    return [(r[0], r[1]) for r in rows if pattern.fullmatch(r[0])]


# -- small reads -------------------------------------------------------------------


def taken_names(conn: psycopg.Connection, table: TableInfo, names: list[str]) -> set[str]:
    if not names:
        return set()
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)", (table.schema, names)).fetchall()
    return {r[0] for r in rows}


def db_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


# -- listing -----------------------------------------------------------------------


@dataclass
class PartitionRow:
    name: str
    schema: str
    bound: str
    is_default: bool
    range_from: str | None
    range_to: str | None
    rows_estimate: int | None
    size_bytes: int
    sub_partitioned: bool = False
    default_rows: int | None = None  # exact, DEFAULT partitions only


@dataclass
class PartitionedTable:
    schema: str
    name: str
    strategy: str
    key: str
    partitions: list[PartitionRow] = field(default_factory=list)
    default: DefaultContents | None = None

    @property
    def default_rows(self) -> int:
        return self.default.rows if self.default is not None else 0

    def to_dict(self) -> dict:
        return {"table": f"{self.schema}.{self.name}", "schema": self.schema,
                "name": self.name, "strategy": self.strategy, "key": self.key,
                "default_rows": self.default_rows,
                "default_months": (None if self.default is None or self.default.months is None
                                   else [m.to_dict() for m in self.default.months]),
                "partitions": [asdict(p) for p in self.partitions]}


@dataclass
class Listing:
    tables: list[PartitionedTable]

    @property
    def default_rows(self) -> int:
        return sum(t.default_rows for t in self.tables)

    def to_dict(self) -> dict:
        return {"tables": [t.to_dict() for t in self.tables], "default_rows": self.default_rows}


def list_partitions(conn: psycopg.Connection) -> Listing:
    """Every partitioned table and its partitions; DEFAULT partitions' rows counted
    exactly, by month (they should be few). Read in one transaction whose TimeZone is UTC
    (SET LOCAL: a pooled server connection keeps nothing), so bounds print in UTC."""
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        return _list_partitions(conn)


def _list_partitions(conn: psycopg.Connection) -> Listing:
    tables: dict[int, PartitionedTable] = {}
    stats: dict[int, tuple[int | None, int]] = {}
    for (t_oid, t_schema, t_name, strategy, key, p_oid, rows,
         size) in conn.execute(resources.query("partitions_list")).fetchall():
        tables.setdefault(t_oid, PartitionedTable(t_schema, t_name, strategy, key))
        if p_oid is not None:
            stats[p_oid] = (rows, size)
    for b in read_bounds(conn):  # in bound order; partitions of partitions are left out
        table = tables.get(b.parent_oid)
        if table is None:
            continue
        rows, size = stats.get(b.oid, (None, 0))
        table.partitions.append(PartitionRow(
            name=b.name, schema=b.schema, bound=b.bound, is_default=b.is_default,
            range_from=b.from_text, range_to=b.to_text, rows_estimate=rows,
            size_bytes=size, sub_partitioned=b.sub_partitioned))
    for oid, table in tables.items():
        if any(p.is_default for p in table.partitions):
            table.default = read_default(conn, oid)
            for p in table.partitions:
                if p.is_default and table.default is not None:
                    p.default_rows = table.default.rows
    return Listing(list(tables.values()))
