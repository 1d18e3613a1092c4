"""Which statements of a function a delegated call could not run on the learner's worker.

`create_distributed_function(fn, 'p_user_id')` sends a call to the worker holding that
learner's shards, where every statement runs against local shards only. So each statement
that reads or writes a distributed table must pin it to the learner: an equality of the
table's distribution column with the distribution argument, directly or through a table
already pinned (`ks.user_id = rs.user_id`); an INSERT must put the argument in that
column. A write to a reference table (copied to every node) from such a call would be a
write to a row shared by all learners, once per answer.

The function is parsed with PostgreSQL's own parser (pglast): PL/pgSQL into statements,
each statement into its syntax tree. Dynamic SQL (EXECUTE) cannot be judged and is named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dmdb.errors import DmdbError

# The functions meant for delegation, with their distribution argument. record_answers
# takes answers of many learners in one call: it cannot be delegated by one argument (a
# client sends one batch per learner group instead; docs/scaling.md).
DELEGATED = {"record_answer": "p_user_id", "next_questions": "p_user_id"}


@dataclass(frozen=True)
class StatementIssue:
    function: str
    line: int | None
    kind: str  # unpinned | shared_write | dynamic | unparsed
    table: str | None
    statement: str

    def where(self) -> str:
        return f"{self.function}" + (f" line {self.line}" if self.line else "")


@dataclass(frozen=True)
class _Expr:
    line: int | None
    query: str
    mode: int


def _expressions(tree: Any, line: int | None = None) -> list[tuple[str, Any]]:
    """(kind, item) pairs in order: ("expr", _Expr) for each SQL text, ("dynamic", line)
    for each EXECUTE of a string."""
    out: list[tuple[str, Any]] = []
    if isinstance(tree, list):
        for item in tree:
            out += _expressions(item, line)
    elif isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"):
                out.append(("dynamic", value.get("lineno", line)))
                continue
            if key == "PLpgSQL_stmt_return_query" and "dynquery" in value:
                out.append(("dynamic", value.get("lineno", line)))
                continue
            if key == "PLpgSQL_expr":
                out.append(("expr", _Expr(line, value["query"], value.get("parseMode", 0))))
                continue
            here = value.get("lineno", line) if isinstance(value, dict) else line
            out += _expressions(value, here)
    return out


def _parse(text: str) -> list[dict]:
    from pglast.parser import ParseError, parse_sql_json

    try:
        return [s["stmt"] for s in json.loads(parse_sql_json(text)).get("stmts", [])]
    except ParseError:
        return []


def _statements(expr: _Expr) -> list[dict]:
    """The syntax trees an expression holds: a statement as it is; an expression (an IF
    condition, an assignment's right side) as the SELECT PL/pgSQL makes of it."""
    if expr.mode == 0:
        return _parse(expr.query)
    text = expr.query
    if expr.mode in (3, 4, 5) and ":=" in text:  # v := expr (PLPGSQL_ASSIGN1..3)
        text = text.split(":=", 1)[1]
    return _parse("SELECT " + text)


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _column(node: Any) -> tuple[str, ...] | None:
    if isinstance(node, dict) and "ColumnRef" in node:
        fields = node["ColumnRef"].get("fields", [])
        if all("String" in f for f in fields):
            return tuple(f["String"]["sval"] for f in fields)
    return None


def _relations(tree: dict) -> list[tuple[str, str]]:
    """(table, the name it goes by in the statement) of every relation named."""
    found = []
    for node in _walk(tree):
        if isinstance(node, dict) and "relname" in node and "inh" in node:
            alias = node.get("alias", {})
            found.append((node["relname"], alias.get("aliasname", node["relname"])))
    return found


def _equalities(tree: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    pairs = []
    for node in _walk(tree):
        if isinstance(node, dict) and "A_Expr" in node:
            e = node["A_Expr"]
            names = [n.get("String", {}).get("sval") for n in e.get("name", [])]
            if e.get("kind") == "AEXPR_OP" and names == ["="]:
                left, right = _column(e.get("lexpr")), _column(e.get("rexpr"))
                if left and right:
                    pairs.append((left, right))
    return pairs


def _insert_pins(tree: dict, column: str, argument: str) -> set[str]:
    """The names of INSERT targets whose `column` receives the argument."""
    pinned = set()
    for node in _walk(tree):
        if not (isinstance(node, dict) and "InsertStmt" in node):
            continue
        ins = node["InsertStmt"]
        name = ins["relation"].get("alias", {}).get("aliasname", ins["relation"]["relname"])
        cols = [c["ResTarget"]["name"] for c in ins.get("cols", [])]
        if column not in cols:
            continue
        at = cols.index(column)
        select = ins.get("selectStmt", {}).get("SelectStmt", {})
        rows = [lst["List"]["items"] for lst in select.get("valuesLists", [])]
        targets = [t["ResTarget"].get("val") for t in select.get("targetList", [])]
        values = [row[at] for row in rows if len(row) > at] or (
            [targets[at]] if len(targets) > at else [])
        if values and all(_column(v) == (argument,) for v in values):
            pinned.add(name)
    return pinned


def _writes(tree: dict) -> list[str]:
    tables = []
    for node in _walk(tree):
        if isinstance(node, dict):
            for kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
                if kind in node:
                    tables.append(node[kind]["relation"]["relname"])
    return tables


def _unpinned(tree: dict, distributed: set[str], column: str, argument: str) -> list[str]:
    """The distributed tables of a statement not pinned to the argument's learner."""
    refs = [(t, name) for t, name in _relations(tree) if t in distributed]
    if not refs:
        return []
    pinned = _insert_pins(tree, column, argument)
    names = {name for _, name in refs}
    only = next(iter(names)) if len(names) == 1 else None

    def owner(col: tuple[str, ...]) -> str | None:
        if len(col) == 2 and col[1] == column and col[0] in names:
            return col[0]
        if col == (column,) and only is not None:
            return only
        return None

    equalities = _equalities(tree)
    changed = True
    while changed:
        changed = False
        for left, right in equalities:
            for a, b in ((left, right), (right, left)):
                name = owner(a)
                if name is None or name in pinned:
                    continue
                other = owner(b)
                if b == (argument,) or (other is not None and other in pinned):
                    pinned.add(name)
                    changed = True
    return sorted({t for t, name in refs if name not in pinned})


def analyse(name: str, language: str, definition: str, body: str, argument: str,
            distributed: set[str], reference: set[str], column: str) -> list[StatementIssue]:
    """The statements of function `name` a call delegated by `argument` could not run."""
    from pglast import parse_plpgsql
    from pglast.parser import ParseError

    if language == "plpgsql":
        try:
            items = _expressions(parse_plpgsql(definition))
        except ParseError as exc:
            raise DmdbError(f"{name}: PostgreSQL's parser refuses its body ({exc}); fix the "
                            "function (`dmdb up` applies it)") from None
    else:
        items = [("expr", _Expr(None, body, 0))]
    issues: list[StatementIssue] = []
    for kind, item in items:
        if kind == "dynamic":
            issues.append(StatementIssue(name, item, "dynamic", None, "EXECUTE ..."))
            continue
        first = " ".join(item.query.split())[:120]
        for tree in _statements(item):
            for table in _unpinned(tree, distributed, column, argument):
                issues.append(StatementIssue(name, item.line, "unpinned", table, first))
            for table in _writes(tree):
                if table in reference:
                    issues.append(StatementIssue(name, item.line, "shared_write", table, first))
    return issues
