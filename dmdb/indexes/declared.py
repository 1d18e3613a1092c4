"""The project's index set, declared once: the `CREATE INDEX` statements of the schema's
own migrations (`sql/migrations/*.sql`, read with the migration engine's parser), minus
those a later migration drops (`DROP INDEX`, `DROP TABLE`, `DROP MATERIALIZED VIEW`) and
following renames (`ALTER INDEX ... RENAME TO`, `ALTER TABLE ... RENAME TO`). Indexes
created implicitly by PRIMARY KEY / UNIQUE constraints are not part of it.
"""

from __future__ import annotations

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


# -- the names PostgreSQL gives an index it names itself ------------------------------------
#
# A partition's index made by PostgreSQL (CREATE INDEX on the partitioned parent, CREATE
# TABLE ... PARTITION OF, LIKE ... INCLUDING ALL) is named by ChooseIndexName
# (src/backend/commands/indexcmds.c): <table>_<column names>_idx, an expression named by
# FigureIndexColname (its function, `case`, a cast's column or type, else `expr`), cut by
# makeObjectName to 63 bytes, the longer part first, and `idx1`, `idx2`, ... when the name
# is taken in the schema. `dmdb indexes build` names the partitions' indexes it rebuilds
# the same way, so a repaired schema is the one the migrations make (`dmdb drift`).


def _split_top(text: str, sep: str = ",") -> list[str]:
    """`text` split at `sep` outside parentheses and quotes."""
    out, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            out.append(text[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    out.append(text[start:])
    return out


def _group(text: str, at: int) -> tuple[str, int] | None:
    """The parenthesized group opening at text[at] == "(": (inside, index after it)."""
    depth, quote = 0, ""
    for i in range(at, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[at + 1:i], i + 1
    return None


_WORDS_NAMED = {"coalesce", "greatest", "least", "nullif", "case", "row", "array", "exists",
                "xmlelement", "xmlforest", "xmlconcat"}


def _expression_name(expr: str) -> str | None:
    """FigureIndexColname of an index expression's text, for the shapes migrations use
    (None where PostgreSQL would say `expr`)."""
    expr = expr.strip()
    while expr.startswith("("):
        inner = _group(expr, 0)
        if inner is None or inner[1] != len(expr):
            break
        expr = inner[0].strip()
    cast = _split_top(expr, "::")
    if len(cast) > 1:
        name = _expression_name("::".join(cast[:-1]))
        if name is not None:
            return name
        type_words = re.findall(_IDENT, cast[-1])
        return _unquote(type_words[-1]) if type_words else None
    if re.fullmatch(r"(?is)case\b.*\bend", expr):
        return "case"
    call = re.match(rf"^({_QUALIFIED})\s*\(", expr)
    if call and _group(expr, call.end() - 1) is not None \
            and _group(expr, call.end() - 1)[1] == len(expr):
        name = _unquote(re.findall(_IDENT, call[1])[-1])
        return name
    if re.fullmatch(_QUALIFIED, expr):
        return _unquote(re.findall(_IDENT, expr)[-1])
    return None


def _element_name(element: str) -> str:
    """One index element: a column, `(expression)` or `function(...)`, each maybe followed
    by COLLATE, an operator class, ASC/DESC and NULLS FIRST/LAST (not part of the name)."""
    element = element.strip()
    column = re.match(rf"^({_IDENT})(?=\s|$)", element)
    if column and not element[column.end():].lstrip().startswith(("(", ".", "::")):
        return _unquote(column[1])
    if element.startswith("("):
        group = _group(element, 0)
        expr = element[:group[1]] if group else element
    else:
        call = re.match(rf"^{_QUALIFIED}\s*\(", element)
        group = _group(element, call.end() - 1) if call else None
        expr = element[:group[1]] if group else element
    return _expression_name(expr) or "expr"


def index_column_names(tail: str) -> list[str]:
    """ChooseIndexColumnNames of a CREATE INDEX's tail ("USING gin (col opclass)
    INCLUDE (x) WHERE ..."): key columns then INCLUDE columns, a repeat made unique."""
    at = tail.find("(")
    group = _group(tail, at) if at >= 0 else None
    if group is None:
        return []
    elements = _split_top(group[0])
    rest = tail[group[1]:]
    include = re.match(r"(?is)\s*INCLUDE\s*\(", rest)
    if include:
        inner = _group(rest, include.end() - 1)
        if inner is not None:
            elements += _split_top(inner[0])
    names: list[str] = []
    for element in elements:
        original = _element_name(element)
        name, n = original, 0
        while name in names:
            n += 1
            cut = _clip(original, MAX_IDENTIFIER_BYTES - len(str(n)))
            name = f"{cut}{n}"
        names.append(name)
    return names


def _clip(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` bytes (whole characters)."""
    return text.encode("utf-8")[:max(limit, 0)].decode("utf-8", errors="ignore")


def make_object_name(name1: str, name2: str, label: str) -> str:
    """PostgreSQL's makeObjectName: name1_name2_label within 63 bytes, the longer of
    name1 and name2 cut first."""
    n1, n2 = len(name1.encode()), len(name2.encode())
    available = MAX_IDENTIFIER_BYTES - (len(label.encode()) + 1) - (1 if name2 else 0)
    while n1 + n2 > available:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    parts = [_clip(name1, n1)] + ([_clip(name2, n2)] if name2 else []) + [label]
    return "_".join(parts)


def index_name_addition(columns: list[str]) -> str:
    """ChooseIndexNameAddition: the column names joined by _, stopped past 63 bytes."""
    out = ""
    for name in columns:
        out = f"{out}_{name}" if out else name
        if len(out.encode()) >= MAX_IDENTIFIER_BYTES:
            break
    return out


def pg_index_names(table: str, tail: str):
    """The names PostgreSQL would try, in order, for an index it names itself on
    `table` (<table>_<columns>_idx, then _idx1, _idx2, ...)."""
    addition = index_name_addition(index_column_names(tail))
    n = 0
    while True:
        yield make_object_name(table, addition, "idx" if n == 0 else f"idx{n}")
        n += 1


def partition_index_name(partition: str, tail: str, taken: Iterable[str] = ()) -> str:
    """The name PostgreSQL gives the index of `partition` made for a partitioned index
    defined by `tail`: the first of pg_index_names not in `taken` (relation names of the
    partition's schema)."""
    taken = set(taken)
    for name in pg_index_names(partition, tail):
        if name not in taken:
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def definition_tail(definition: str) -> str:
    """The tail ("USING method (...) ...") of pg_get_indexdef's text."""
    at = definition.find(" USING ")
    return definition[at + 1:] if at >= 0 else definition
