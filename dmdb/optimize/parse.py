"""A workload statement, as pg_stat_statements stores it, read with PostgreSQL's own
parser (pglast): which columns each table is searched, joined and sorted by.

pg_stat_statements keeps normalized text: constants became `$n`. Statements run inside
dmdb's PL/pgSQL functions (`pg_stat_statements.track = all`) keep the functions' variable
names (`WHERE ks.user_id = p_user_id AND ks.concept_id = record_answer.concept_id`) and
parameter numbers with gaps (`$72`). `prepare` makes both explainable: every column
reference no relation of the statement can own becomes a parameter, and the parameters
are numbered again from 1 — the text `EXPLAIN (GENERIC_PLAN)` and `PREPARE` take.

Pure: the live schema comes in as `Tables` (relation name -> its columns and types).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

COMPARISONS = {"=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_FLIP = {"=": "=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, str]  # column -> type (format_type)
    kind: str = "r"  # r | p

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class Tables:
    """The user tables a statement may name: by `schema.name`, and by bare name for the
    schemas of the search path (first match wins)."""

    def __init__(self, tables: list[Table], search_path: tuple[str, ...] = ("public",)):
        self.by_qualified = {t.qualified: t for t in tables}
        self.by_name: dict[str, Table] = {}
        for schema in search_path:
            for t in tables:
                if t.schema == schema:
                    self.by_name.setdefault(t.name, t)

    def find(self, schema: str | None, name: str) -> Table | None:
        if schema:
            return self.by_qualified.get(f"{schema}.{name}")
        return self.by_name.get(name)


@dataclass
class Scan:
    """How one statement reads one table (at one query level)."""

    table: str  # schema-qualified
    alias: str
    eq: list[str] = field(default_factory=list)  # = value, IN (...), = ANY(...)
    range: list[str] = field(default_factory=list)  # <, >, <=, >=, BETWEEN
    order: list[str] = field(default_factory=list)  # ORDER BY, when all keys are its columns
    join: list[str] = field(default_factory=list)  # = a column of another table
    predicates: list[str] = field(default_factory=list)  # col IS [NOT] NULL, col, NOT col
    params: dict[int, str] = field(default_factory=dict)  # $n -> the column it is compared with

    @property
    def searched(self) -> bool:
        return bool(self.eq or self.range or self.order or self.join)

    def to_dict(self) -> dict:
        return {"table": self.table, "alias": self.alias, "eq": self.eq, "range": self.range,
                "order": self.order, "join": self.join, "predicates": self.predicates}


@dataclass
class Write:
    table: str
    kind: str  # insert | update | delete
    columns: list[str] = field(default_factory=list)  # the columns an UPDATE sets


@dataclass
class Parsed:
    """One statement: its kind, the explainable text, and what it does to which table."""

    kind: str  # select | insert | update | delete | other
    # What EXPLAIN (GENERIC_PLAN) and PREPARE are given: the statement with variables as
    # parameters, numbered from 1; an UPDATE or DELETE as the SELECT of the rows it changes
    # (what an index changes for it; its SET list may hold parameters no context types,
    # `x + CASE WHEN $4 THEN $5 ELSE $6 END`, and running it would change rows)
    text: str
    parameters: int = 0
    statement: str = ""  # the whole statement, variables as parameters
    scans: list[Scan] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    limit_params: list[int] = field(default_factory=list)
    error: str | None = None
    relations: set[str] = field(default_factory=set)  # every known table it names

    @property
    def tables(self) -> set[str]:
        return {s.table for s in self.scans} | {w.table for w in self.writes} | self.relations


# -- the tree --------------------------------------------------------------------------


def _tree(text: str) -> list[dict]:
    from pglast.parser import parse_sql_json

    return [s["stmt"] for s in json.loads(parse_sql_json(text)).get("stmts", [])]


def _strings(fields: list[dict]) -> list[str] | None:
    if all("String" in f for f in fields):
        return [f["String"]["sval"] for f in fields]
    return None


@dataclass
class _Rel:
    alias: str
    table: Table | None  # None: a subquery, a CTE, a function
    columns: set[str] | None  # a derived relation's columns when known

    def has(self, column: str) -> bool | None:
        if self.table is not None:
            return column in self.table.columns
        if self.columns is None:
            return None
        return column in self.columns


def _target_names(select: dict) -> set[str] | None:
    """The output column names of a SELECT (None when a `*` hides them)."""
    if "SelectStmt" not in select:
        return None
    s = select["SelectStmt"]
    if "larg" in s:
        return _target_names(s["larg"])
    names = set()
    for target in s.get("targetList", []):
        rt = target.get("ResTarget", {})
        if "name" in rt:
            names.add(rt["name"])
            continue
        val = rt.get("val", {})
        if "ColumnRef" in val:
            fields = val["ColumnRef"]["fields"]
            last = fields[-1]
            if "A_Star" in last:
                return None
            names.add(last["String"]["sval"])
        elif "FuncCall" in val:
            names.add(val["FuncCall"]["funcname"][-1]["String"]["sval"])
    return names


class _Analysis:
    """One walk of a statement: every column reference resolved against the relations in
    scope; those no relation can own are the function's variables."""

    def __init__(self, tables: Tables):
        self.tables = tables
        self.variables: list[tuple[int, int]] = []  # (byte location, fields)
        # `interval $2`: a typed literal pg_stat_statements normalized, which PostgreSQL's
        # grammar does not take (pglast's does): (type's byte location, parameter's)
        self.prefix_casts: list[tuple[int, int]] = []
        self.levels: list[tuple[dict, list[_Rel], list[list[_Rel]]]] = []  # statement, rels, outer
        self.ctes: list[dict[str, set[str] | None]] = []

    # scope ----------------------------------------------------------------------------

    def _cte(self, name: str) -> tuple[bool, set[str] | None]:
        for frame in reversed(self.ctes):
            if name in frame:
                return True, frame[name]
        return False, None

    def _range_var(self, rv: dict) -> _Rel:
        alias = rv.get("alias", {}).get("aliasname", rv["relname"])
        if "schemaname" not in rv:
            is_cte, cols = self._cte(rv["relname"])
            if is_cte:
                return _Rel(alias, None, cols)
        table = self.tables.find(rv.get("schemaname"), rv["relname"])
        if table is None:
            return _Rel(alias, None, None)  # a catalog or unknown relation
        return _Rel(alias, table, None)

    def _from_item(self, item: dict, rels: list[_Rel], scopes: list[list[_Rel]]) -> None:
        if "RangeVar" in item:
            rels.append(self._range_var(item["RangeVar"]))
        elif "JoinExpr" in item:
            j = item["JoinExpr"]
            self._from_item(j["larg"], rels, scopes)
            self._from_item(j["rarg"], rels, scopes)
            if "alias" in j:
                rels.append(_Rel(j["alias"]["aliasname"], None, None))
        elif "RangeSubselect" in item:
            rs = item["RangeSubselect"]
            self.visit(rs["subquery"], scopes)
            alias = rs.get("alias", {})
            cols = ({c["String"]["sval"] for c in alias["colnames"]} if "colnames" in alias
                    else _target_names(rs["subquery"]))
            rels.append(_Rel(alias.get("aliasname", ""), None, cols))
        elif "RangeFunction" in item:
            rf = item["RangeFunction"]
            self.visit(rf.get("functions", []), scopes)
            alias = rf.get("alias", {})
            cols = ({c["String"]["sval"] for c in alias["colnames"]} if "colnames" in alias
                    else None)
            rels.append(_Rel(alias.get("aliasname", ""), None, cols))
        else:
            rels.append(_Rel("", None, None))

    def _with(self, node: dict, scopes: list[list[_Rel]]) -> None:
        frame: dict[str, set[str] | None] = {}
        self.ctes.append(frame)
        for cte in node.get("withClause", {}).get("ctes", []):
            c = cte["CommonTableExpr"]
            self.visit(c["ctequery"], scopes)
            names = ({n["String"]["sval"] for n in c["aliascolnames"]} if "aliascolnames" in c
                     else _target_names(c["ctequery"]))
            frame[c["ctename"]] = names

    def resolve(self, fields: list[str], scopes: list[list[_Rel]]
                ) -> tuple[str, int, _Rel | None, str | None]:
        """("column", depth, relation, column) | ("unknown", ...) | ("variable", ...).
        depth 0 is the innermost level."""
        if len(fields) >= 2:
            alias, column = fields[-2], fields[-1]
            for depth, rels in enumerate(reversed(scopes)):
                for rel in rels:
                    if rel.alias == alias:
                        return "column", depth, rel, column
            return "variable", 0, None, None
        column = fields[0]
        unknown = False
        for depth, rels in enumerate(reversed(scopes)):
            owners = [r for r in rels if r.has(column)]
            if len(owners) == 1:
                return "column", depth, owners[0], column
            if owners:
                return "unknown", depth, None, column
            if any(r.has(column) is None for r in rels):
                unknown = True
        return ("unknown" if unknown else "variable"), 0, None, column

    # walk -----------------------------------------------------------------------------

    def visit(self, node: Any, scopes: list[list[_Rel]]) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item, scopes)
            return
        if not isinstance(node, dict):
            return
        if "SelectStmt" in node:
            self._select(node["SelectStmt"], scopes)
        elif "UpdateStmt" in node or "DeleteStmt" in node:
            kind = "UpdateStmt" if "UpdateStmt" in node else "DeleteStmt"
            s = node[kind]
            self._with(s, scopes)
            rels = [self._range_var(s["relation"])]
            extra = s.get("fromClause", []) + s.get("usingClause", [])
            for item in extra:
                self._from_item(item, rels, scopes)
            inner = scopes + [rels]
            self.levels.append((node, rels, scopes))
            for key in ("targetList", "whereClause", "returningClause"):
                self.visit(s.get(key), inner)
            for item in extra:
                self._quals(item, inner)
            self.ctes.pop()
        elif "InsertStmt" in node:
            s = node["InsertStmt"]
            self._with(s, scopes)
            self.visit(s.get("selectStmt"), scopes)
            target = self._range_var(s["relation"])
            excluded = _Rel("excluded", target.table, None)
            inner = scopes + [[target, excluded]]
            self.levels.append((node, [target], scopes))
            conflict = s.get("onConflictClause", {})
            self.visit(conflict.get("targetList"), inner)
            self.visit(conflict.get("whereClause"), inner)
            self.visit(s.get("returningClause"), inner)
            self.ctes.pop()
        elif "TypeCast" in node and "ParamRef" in node["TypeCast"].get("arg", {}):
            cast = node["TypeCast"]
            at, param = cast["typeName"].get("location", -1), cast["arg"]["ParamRef"]["location"]
            if 0 <= at < param:
                self.prefix_casts.append((at, param))
        elif "ColumnRef" in node:
            ref = node["ColumnRef"]
            names = _strings(ref["fields"])
            if names is not None:
                kind, *_ = self.resolve(names, scopes)
                if kind == "variable":
                    self.variables.append((ref["location"], len(names)))
        else:
            for value in node.values():
                self.visit(value, scopes)

    def _select(self, s: dict, scopes: list[list[_Rel]]) -> None:
        self._with(s, scopes)
        if "larg" in s:
            self.visit(s["larg"], scopes)
            self.visit(s["rarg"], scopes)
            self.ctes.pop()
            return
        rels: list[_Rel] = []
        for item in s.get("fromClause", []):
            self._from_item(item, rels, scopes)
        inner = scopes + [rels]
        self.levels.append(({"SelectStmt": s}, rels, scopes))
        for key in ("targetList", "whereClause", "groupClause", "havingClause", "sortClause",
                    "limitCount", "limitOffset", "valuesLists", "windowClause",
                    "distinctClause", "lockingClause"):
            self.visit(s.get(key), inner)
        for item in s.get("fromClause", []):
            self._quals(item, inner)
        self.ctes.pop()

    def _quals(self, item: dict, scopes: list[list[_Rel]]) -> None:
        if "JoinExpr" in item:
            j = item["JoinExpr"]
            self.visit(j.get("quals"), scopes)
            self._quals(j["larg"], scopes)
            self._quals(j["rarg"], scopes)


# -- rewriting: variables and gaps away ------------------------------------------------


def _char_offsets(text: str) -> dict[int, int]:
    """Byte offset (the parser's locations) -> character offset (the scanner's)."""
    out, at = {}, 0
    for i, ch in enumerate(text):
        out[at] = i
        at += len(ch.encode("utf-8"))
    out[at] = len(text)
    return out


def _rewrite(text: str, variables: list[tuple[int, int]],
             prefix_casts: list[tuple[int, int]] = ()) -> tuple[str, int, dict[int, int]]:
    """The text with each variable reference replaced by a parameter (the same name, the
    same parameter), each `type $n` made `$n::type`, and every parameter numbered again
    from $1 in order of appearance. Returns (text, how many parameters, old $n -> new $m)."""
    from pglast.parser import scan

    chars = _char_offsets(text)
    starts = {chars[loc]: n for loc, n in variables if loc in chars}
    casts = {chars[t]: chars[p] for t, p in prefix_casts if t in chars and p in chars}
    tokens = scan(text)
    out: list[str] = []
    numbers: dict[str, int] = {}
    renumbered: dict[int, int] = {}
    pos = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.start in casts:
            j = next((k for k in range(i, len(tokens)) if tokens[k].start == casts[tok.start]
                      and tokens[k].name == "PARAM"), None)
            if j is not None:
                param = tokens[j]
                old = int(text[param.start + 1:param.end + 1])
                numbers.setdefault(f"p:{old}", len(numbers) + 1)
                renumbered[old] = numbers[f"p:{old}"]
                type_text = text[tok.start:param.start].strip()
                out.append(text[pos:tok.start] + f"${numbers[f'p:{old}']}::{type_text}")
                pos = param.end + 1
                i = j + 1
                continue
        if tok.start in starts:
            n = starts[tok.start]
            last = tokens[min(i + 2 * n - 2, len(tokens) - 1)]
            name = text[tok.start:last.end + 1].lower()
            key = "v:" + name
            numbers.setdefault(key, len(numbers) + 1)
            out.append(text[pos:tok.start] + f"${numbers[key]}")
            pos = last.end + 1
            i += 2 * n - 1
            continue
        if tok.name == "PARAM":
            old = int(text[tok.start + 1:tok.end + 1])
            key = f"p:{old}"
            numbers.setdefault(key, len(numbers) + 1)
            renumbered[old] = numbers[key]
            out.append(text[pos:tok.start] + f"${numbers[key]}")
            pos = tok.end + 1
        i += 1
    out.append(text[pos:])
    return "".join(out), len(numbers), renumbered


# -- what each level searches ----------------------------------------------------------


def _conjuncts(node: Any) -> list[dict]:
    if not isinstance(node, dict):
        return []
    if "BoolExpr" in node and node["BoolExpr"]["boolop"] == "AND_EXPR":
        out = []
        for arg in node["BoolExpr"]["args"]:
            out += _conjuncts(arg)
        return out
    return [node]


def _strip_cast(node: Any) -> Any:
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"]["arg"]
    return node


def _param(node: Any) -> int | None:
    node = _strip_cast(node)
    if isinstance(node, dict) and "ParamRef" in node:
        return node["ParamRef"]["number"]
    return None


class _Level:
    """The scans of one query level (a SELECT, UPDATE or DELETE and its FROM list)."""

    def __init__(self, analysis: _Analysis, rels: list[_Rel], outer: list[list[_Rel]]):
        self.analysis = analysis
        self.rels = rels
        self.scopes = outer + [rels]
        self.scans: dict[str, Scan] = {}

    def scan(self, rel: _Rel) -> Scan:
        if rel.alias not in self.scans:
            self.scans[rel.alias] = Scan(rel.table.qualified, rel.alias)
        return self.scans[rel.alias]

    def column(self, node: Any) -> tuple[_Rel, str] | None:
        """A plain column of a table of this level."""
        if not (isinstance(node, dict) and "ColumnRef" in node):
            return None
        names = _strings(node["ColumnRef"]["fields"])
        if names is None:
            return None
        kind, depth, rel, column = self.analysis.resolve(names, self.scopes)
        if kind == "column" and depth == 0 and rel is not None and rel.table is not None \
                and column in rel.table.columns:
            return rel, column
        return None

    def is_value(self, node: Any) -> bool:
        """Known before the scan: a parameter, a constant, an outer column, or an
        expression of those (now(), $1 + interval '1 day')."""
        node = _strip_cast(node)
        if not isinstance(node, dict):
            return True
        if "ParamRef" in node or "A_Const" in node or "SQLValueFunction" in node:
            return True
        if "ColumnRef" in node:
            names = _strings(node["ColumnRef"]["fields"])
            if names is None:
                return False
            kind, depth, *_ = self.analysis.resolve(names, self.scopes)
            return kind == "variable" or (kind == "column" and depth > 0)
        if "FuncCall" in node:
            return all(self.is_value(a) for a in node["FuncCall"].get("args", []))
        if "A_Expr" in node:
            e = node["A_Expr"]
            return all(self.is_value(e[k]) for k in ("lexpr", "rexpr") if k in e)
        if "List" in node:
            return all(self.is_value(i) for i in node["List"]["items"])
        if "A_ArrayExpr" in node:
            return all(self.is_value(i) for i in node["A_ArrayExpr"].get("elements", []))
        return False

    @staticmethod
    def _add(items: list[str], column: str) -> None:
        if column not in items:
            items.append(column)

    def _note_params(self, scan: Scan, column: str, value: Any) -> None:
        values = value["List"]["items"] if isinstance(value, dict) and "List" in value else [value]
        for v in values:
            n = _param(v)
            if n is not None:
                scan.params.setdefault(n, column)

    def conjunct(self, node: dict) -> None:
        if "A_Expr" in node:
            e = node["A_Expr"]
            names = _strings(e.get("name", [])) or []
            op = names[-1] if names else ""
            left, right = e.get("lexpr"), e.get("rexpr")
            kind = e["kind"]
            if kind == "AEXPR_OP" and op in COMPARISONS:
                lcol, rcol = self.column(left), self.column(right)
                if lcol and rcol and lcol[0] is not rcol[0]:
                    self._add(self.scan(lcol[0]).join, lcol[1])
                    self._add(self.scan(rcol[0]).join, rcol[1])
                    return
                if rcol and not lcol:
                    lcol, left, right, op = rcol, right, left, _FLIP[op]
                if lcol and self.is_value(right):
                    scan = self.scan(lcol[0])
                    self._add(scan.eq if op == "=" else scan.range, lcol[1])
                    self._note_params(scan, lcol[1], right)
                return
            if kind in ("AEXPR_OP_ANY", "AEXPR_IN") and op == "=":
                col = self.column(left)
                if col and self.is_value(right):
                    scan = self.scan(col[0])
                    self._add(scan.eq, col[1])
                    self._note_params(scan, col[1], right)
                return
            if kind in ("AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM"):
                col = self.column(left)
                if col and self.is_value(right):
                    scan = self.scan(col[0])
                    self._add(scan.range, col[1])
                    self._note_params(scan, col[1], right)
            return
        if "NullTest" in node:
            col = self.column(node["NullTest"]["arg"])
            if col:
                test = "IS NOT NULL" if node["NullTest"]["nulltesttype"] == "IS_NOT_NULL" else "IS NULL"
                self._add(self.scan(col[0]).predicates, f"{col[1]} {test}")
            return
        col = self.column(node)
        if col and col[0].table.columns.get(col[1]) == "boolean":
            self._add(self.scan(col[0]).predicates, col[1])
            return
        if "BoolExpr" in node and node["BoolExpr"]["boolop"] == "NOT_EXPR":
            col = self.column(node["BoolExpr"]["args"][0])
            if col and col[0].table.columns.get(col[1]) == "boolean":
                self._add(self.scan(col[0]).predicates, f"NOT {col[1]}")

    def order(self, sort: list[dict]) -> None:
        cols = [self.column(s["SortBy"]["node"]) for s in sort if "SortBy" in s]
        if not cols or any(c is None for c in cols) or len({id(c[0]) for c in cols}) != 1:
            return
        dirs = {s["SortBy"].get("sortby_dir", "SORTBY_DEFAULT") == "SORTBY_DESC" for s in sort}
        if len(dirs) != 1:
            return  # mixed directions: an index would need them spelled out
        scan = self.scan(cols[0][0])
        for _, column in cols:
            self._add(scan.order, column)


def _join_quals(item: dict, level: _Level) -> None:
    if "JoinExpr" in item:
        j = item["JoinExpr"]
        for c in _conjuncts(j.get("quals")):
            level.conjunct(c)
        for name in j.get("usingClause", []):
            column = name["String"]["sval"]
            owners = [r for r in level.rels if r.table is not None and column in r.table.columns]
            for r in owners if len(owners) >= 2 else []:
                level._add(level.scan(r).join, column)
        _join_quals(j["larg"], level)
        _join_quals(j["rarg"], level)


def _limit_params(tree: Any) -> list[int]:
    out = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("limitCount", "limitOffset"):
                n = _param(value)
                if n is not None:
                    out.append(n)
            out += _limit_params(value)
    elif isinstance(tree, list):
        for v in tree:
            out += _limit_params(v)
    return out


_KINDS = {"SelectStmt": "select", "InsertStmt": "insert", "UpdateStmt": "update",
          "DeleteStmt": "delete"}


def parse_statement(text: str, tables: Tables) -> Parsed:
    """The scans and writes of one statement's normalized text (pure)."""
    from pglast.parser import ParseError

    try:
        stmts = _tree(text)
    except ParseError as exc:
        return Parsed("other", text, error=f"not parsed: {exc}")
    if len(stmts) != 1:
        return Parsed("other", text, error="not one statement")
    stmt = stmts[0]
    kind = next((v for k, v in _KINDS.items() if k in stmt), "other")
    if kind == "other":
        return Parsed("other", text)
    first = _Analysis(tables)
    first.visit(stmt, [])
    rewritten, count, _ = _rewrite(text, first.variables, first.prefix_casts)
    try:
        stmt = _tree(rewritten)[0]
    except ParseError as exc:  # pragma: no cover - the rewrite keeps the grammar
        return Parsed(kind, text, error=f"rewritten text not parsed: {exc}")
    analysis = _Analysis(tables)
    analysis.visit(stmt, [])
    parsed = Parsed(kind, rewritten, count, rewritten, limit_params=_limit_params(stmt))
    for node, rels, outer in analysis.levels:
        parsed.relations |= {r.table.qualified for r in rels if r.table is not None}
        if "InsertStmt" in node:
            if rels[0].table is not None:
                parsed.writes.append(Write(rels[0].table.qualified, "insert"))
            continue
        level = _Level(analysis, rels, outer)
        inner = next(iter(node.values()))
        for c in _conjuncts(inner.get("whereClause")):
            level.conjunct(c)
        for item in inner.get("fromClause", []) + inner.get("usingClause", []):
            _join_quals(item, level)
        if "SelectStmt" in node:
            level.order(inner.get("sortClause", []))
        else:
            target = rels[0]
            if target.table is not None:
                wkind = "update" if "UpdateStmt" in node else "delete"
                cols = [t["ResTarget"]["name"] for t in inner.get("targetList", [])
                        if "ResTarget" in t and "name" in t["ResTarget"]]
                parsed.writes.append(Write(target.table.qualified, wkind, cols))
        parsed.scans += [s for s in level.scans.values() if s.searched or s.predicates]
    if kind in ("update", "delete"):
        probe = _rows_changed(rewritten)
        if probe is not None:
            parsed.text, parsed.parameters, renumbered = _rewrite(probe, [])
            for scan in parsed.scans:
                scan.params = {renumbered[n]: c for n, c in scan.params.items() if n in renumbered}
            parsed.limit_params = []
    return parsed


def _rows_changed(text: str) -> str | None:
    """An UPDATE or DELETE as `SELECT 1 FROM <its tables> WHERE <its condition>` (its
    WITH clause kept), deparsed by pglast; None for what has no such form (WHERE CURRENT
    OF a cursor)."""
    from pglast import ast, parse_sql
    from pglast.stream import RawStream

    raw = parse_sql(text)[0].stmt
    if isinstance(raw.whereClause, ast.CurrentOfExpr):
        return None
    extra = raw.fromClause if isinstance(raw, ast.UpdateStmt) else raw.usingClause
    select = ast.SelectStmt(
        targetList=(ast.ResTarget(val=ast.A_Const(val=ast.Integer(1))),),
        fromClause=(raw.relation, *(extra or ())), whereClause=raw.whereClause,
        withClause=raw.withClause)
    return RawStream()(select)


def index_columns(definition: str) -> tuple[str, str, list[str | None], str | None]:
    """(access method, table name, key columns (None for an expression), predicate) of a
    CREATE INDEX statement as pg_get_indexdef prints it."""
    stmt = _tree(definition)[0]["IndexStmt"]
    cols: list[str | None] = [e["IndexElem"].get("name") for e in stmt.get("indexParams", [])]
    where = None
    if "whereClause" in stmt:
        where = predicate_text(stmt["whereClause"])
        if where is None:
            where = "?"  # a predicate no candidate states: never the same
    return stmt.get("accessMethod", "btree"), stmt["relation"]["relname"], cols, where


def predicate_text(node: dict) -> str | None:
    """The normalized form of a one-table constant predicate (as `Scan.predicates`)."""
    if "NullTest" in node:
        arg = node["NullTest"]["arg"]
        if "ColumnRef" in arg and (names := _strings(arg["ColumnRef"]["fields"])):
            test = "IS NOT NULL" if node["NullTest"]["nulltesttype"] == "IS_NOT_NULL" else "IS NULL"
            return f"{names[-1]} {test}"
        return None
    if "ColumnRef" in node and (names := _strings(node["ColumnRef"]["fields"])):
        return names[-1]
    if "BoolExpr" in node and node["BoolExpr"]["boolop"] == "NOT_EXPR":
        arg = node["BoolExpr"]["args"][0]
        if "ColumnRef" in arg and (names := _strings(arg["ColumnRef"]["fields"])):
            return f"NOT {names[-1]}"
    return None


def index_referenced_columns(definition: str) -> set[str]:
    """Every column an index definition names: keys, INCLUDE, expressions, predicate (an
    UPDATE of any of them cannot be HOT)."""
    stmt = _tree(definition)[0]["IndexStmt"]
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "IndexElem" in node and "name" in node["IndexElem"]:
                out.add(node["IndexElem"]["name"])
            if "ColumnRef" in node and (names := _strings(node["ColumnRef"]["fields"])):
                out.add(names[-1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for key in ("indexParams", "indexIncludingParams", "whereClause"):
        walk(stmt.get(key))
    return out
