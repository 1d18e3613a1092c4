"""The project's index set, declared once: the `CREATE INDEX` statements of the schema's
own migrations (`sql/migrations/*.sql`, read with the migration engine's parser), minus
those a later migration drops (`DROP INDEX`, `DROP TABLE`, `DROP MATERIALIZED VIEW`) and
following renames (`ALTER INDEX ... RENAME TO`, `ALTER TABLE ... RENAME TO`). Indexes
created implicitly by PRIMARY KEY / UNIQUE constraints are not part of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

MAX_IDENTIFIER_BYTES = 63
DEFAULT_SCHEMA = "public"


_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
_CREATE_INDEX = re.compile(
    rf"""^CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?
    (?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QUALIFIED})\s+ON\s+(?P<only>ONLY\s+)?
    (?P<table>{_QUALIFIED})\s*(?P<tail>(?:USING\b|\().*?)\s*;?\s*$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_DROP = re.compile(
    r"^DROP\s+(?P<kind>INDEX|TABLE|MATERIALIZED\s+VIEW)\s+(?:CONCURRENTLY\s+)?"
    r"(?:IF\s+EXISTS\s+)?(?P<names>.*?)\s*(?:CASCADE|RESTRICT)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RENAME = re.compile(
    rf"^ALTER\s+(?P<kind>INDEX|TABLE|MATERIALIZED\s+VIEW)\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"
    rf"(?P<old>{_QUALIFIED})\s+RENAME\s+TO\s+(?P<new>{_IDENT})\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


# ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY | UNIQUE USING INDEX name: the index
# becomes the constraint's (renamed to it), no longer a declared index of its own.
_USING_INDEX = re.compile(rf"\bUSING\s+INDEX\s+(?P<name>{_IDENT})", re.IGNORECASE)


def _unquote(ident: str) -> str:
    ident = ident.strip()
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def _split_qualified(text: str) -> tuple[str, str]:
    parts = re.findall(_IDENT, text.strip())
    if len(parts) == 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return DEFAULT_SCHEMA, _unquote(parts[0])


@dataclass(frozen=True)
class DeclaredIndex:
    """One CREATE INDEX of the migrations: its name, table and the rest of its definition."""

    schema: str
    name: str
    table_schema: str
    table: str
    unique: bool
    only: bool  # the migration said ON ONLY
    tail: str  # "USING method (columns) INCLUDE (...) WITH (...) WHERE ...", as written
    source: str  # migration id that declares it
    sql: str  # the statement, comments stripped

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def qualified_table(self) -> str:
        return f"{self.table_schema}.{self.table}"

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise(statement: str) -> str:
    import sqlparse

    return sqlparse.format(statement, strip_comments=True, strip_whitespace=True).strip()


def parse_declared(statements: Iterable[tuple[str, str]]) -> list[DeclaredIndex]:
    """The declared index set from (migration id, SQL statement) pairs, in order."""
    declared: dict[tuple[str, str], DeclaredIndex] = {}
    for source, raw in statements:
        text = _normalise(raw)
        match = _CREATE_INDEX.match(text)
        if match:
            schema, name = _split_qualified(match["name"])
            table_schema, table = _split_qualified(match["table"])
            if schema == DEFAULT_SCHEMA and "." not in match["name"]:
                schema = table_schema  # an index lives in its table's schema
            declared[(schema, name)] = DeclaredIndex(
                schema=schema, name=name, table_schema=table_schema, table=table,
                unique=bool(match["unique"]), only=bool(match["only"]),
                tail=match["tail"].strip(), source=source, sql=text.rstrip(";"),
            )
            continue
        match = _DROP.match(text)
        if match:
            names = [_split_qualified(n) for n in re.findall(_QUALIFIED, match["names"])]
            kind = match["kind"].upper()
            for schema, name in names:
                if kind == "INDEX":
                    declared.pop((schema, name), None)
                else:
                    for key, d in list(declared.items()):
                        if (d.table_schema, d.table) == (schema, name):
                            del declared[key]
            continue
        if re.match(r"^ALTER\s+TABLE\b", text, re.IGNORECASE):
            for used in _USING_INDEX.finditer(text):
                name = _unquote(used["name"])
                for key in [k for k in declared if k[1] == name]:
                    del declared[key]
        match = _RENAME.match(text)
        if match:
            schema, old = _split_qualified(match["old"])
            new = _unquote(match["new"])
            if match["kind"].upper() == "INDEX":
                d = declared.pop((schema, old), None)
                if d is not None:
                    declared[(schema, new)] = _replace(d, name=new)
            else:
                for key, d in list(declared.items()):
                    if (d.table_schema, d.table) == (schema, old):
                        declared[key] = _replace(d, table=new)
    return list(declared.values())


def _replace(d: DeclaredIndex, **changes) -> DeclaredIndex:
    from dataclasses import replace

    return replace(d, **changes)


def declared_indexes(sql_dir: Path | None = None) -> list[DeclaredIndex]:
    """The declared index set of a project's SQL tree (default: the shipped one)."""
    from dmdb.migrate.engine import Project

    project = Project(sql_dir)
    pairs = []
    for migration in project.migrations():
        for statement in migration.forward.statements:
            pairs.append((migration.id, statement.sql))
    return parse_declared(pairs)


def partition_index_name(partition: str, parent_index: str, parent_table: str) -> str:
    """The deterministic name of a partition's index: <partition>_<suffix>, where suffix is
    the parent index's name without its table's name in front (knowledge_states_p3 +
    knowledge_states_user_mastery_idx -> knowledge_states_p3_user_mastery_idx). Longer
    than 63 bytes: cut, and end in 8 hex digits of a hash of the full name."""
    suffix = parent_index
    if parent_index.startswith(parent_table + "_") and len(parent_index) > len(parent_table) + 1:
        suffix = parent_index[len(parent_table) + 1:]
    name = f"{partition}_{suffix}"
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    cut = name.encode("utf-8")[: MAX_IDENTIFIER_BYTES - 9].decode("utf-8", errors="ignore")
    return f"{cut}_{digest}"
