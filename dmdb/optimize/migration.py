"""The migration pairs `dmdb optimize indexes` writes: dmdb's own format (a numbered
file in sql/migrations/ and its exact inverse in sql/rollbacks/, reserved by
`dmdb.migrate.new`), `-- transactional: false`, every statement safe to run twice.

The statements are `dmdb indexes build`'s own (`dmdb.indexes.plan_index`): on a plain
table `CREATE INDEX CONCURRENTLY IF NOT EXISTS`; on a partitioned table the parent's
index `ON ONLY` (it builds nothing), then each partition's CONCURRENTLY and attached.
Once applied, the index is declared by the migration like any other (`dmdb indexes
check`). Unused and duplicate indexes go the other way: `DROP INDEX CONCURRENTLY IF
EXISTS` (a partitioned one cannot be dropped concurrently), and the rollback builds them
again as they were (their definition as the server prints it).

Comments carry the evidence, each on one line: nothing of a statement's text can become
a directive or a statement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb import resources

if TYPE_CHECKING:
    from dmdb.indexes.catalog import Catalog
    from dmdb.optimize.choose import Decision

# Leading comments of a statement: squawk reads its ignore on the line just above it.
ON_ONLY_IGNORES = [
    "dmdb-lint: ignore non-concurrent-index -- ON ONLY: the parent's index alone, built "
    "from nothing and invalid until each partition's index below is attached",
    "squawk-ignore require-concurrent-index-creation",
]


@dataclass
class Step:
    sql: str
    comments: list[str] = field(default_factory=list)


@dataclass
class Block:
    index: str
    steps: list[Step]
    comments: list[str] = field(default_factory=list)


@dataclass
class WrittenMigration:
    id: str
    migration: str
    rollback: str
    indexes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def one_line(text: object) -> str:
    """Any text as one comment line: whitespace (line breaks too) collapsed."""
    return " ".join(str(text).split())


def _fmt(value: float | None, digits: int = 3) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def _plan(d_schema: str, d_name: str, table: str, tail: str, catalog: Catalog) -> list[Step]:
    from dmdb.indexes.declared import DeclaredIndex
    from dmdb.indexes.plan import plan_index

    schema, name = table.split(".", 1)
    declared = DeclaredIndex(d_schema, d_name, schema, name, unique=False, only=False,
                             tail=tail, source="", sql="")
    plan = plan_index(declared, catalog)
    steps = []
    for s in plan.steps:
        comments = list(ON_ONLY_IGNORES) if s.action == "create_on_only" else []
        steps.append(Step(s.sql, comments))
    return steps


def _drop(schema: str, name: str, partitioned: bool) -> Step:
    from psycopg import sql

    ident = sql.Identifier(schema, name)
    if partitioned:
        return Step(sql.SQL("DROP INDEX IF EXISTS {}").format(ident).as_string(),
                    ["a partitioned index cannot be dropped CONCURRENTLY: an instant catalog "
                     "change under a short lock",
                     "squawk-ignore require-concurrent-index-deletion"])
    return Step(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(ident).as_string())


def create_blocks(decisions: list[Decision], catalog: Catalog) -> tuple[list[Block], list[Block]]:
    """(forward, rollback) blocks for the kept decisions."""
    from dmdb.optimize.candidates import index_tail

    forward, backward = [], []
    for d in decisions:
        if not d.kept:
            continue
        schema = d.table.split(".", 1)[0]
        steps = _plan(schema, d.name, d.table, index_tail(d.candidate), catalog)
        if not steps:
            continue
        comments = [one_line(f"{schema}.{d.name} on {d.table}: {d.reason}"),
                    one_line(f"size {d.size_bytes} bytes; insert {_fmt(d.insert_ms_per_row_before, 4)}"
                             f" -> {_fmt(d.insert_ms_per_row_after, 4)} ms per row in the trial")]
        for e in d.evidence:
            if e.served:
                comments.append(one_line(
                    f"  {e.calls} calls, cost {_fmt(e.cost_before, 1)} -> {_fmt(e.cost_after, 1)}, "
                    f"{_fmt(e.ms_before)} -> {_fmt(e.ms_after)} ms: {e.query}"))
        forward.append(Block(d.name, steps, comments))
        table_row = catalog.table_by_name.get(tuple(d.table.split(".", 1)))
        partitioned = table_row is not None and table_row.kind == "p"
        backward.insert(0, Block(d.name, [_drop(schema, d.name, partitioned)]))
    return forward, backward


def _recreate(catalog: Catalog, index_oid: int, tail: str, unique: bool) -> list[Step]:
    """The steps that build index `index_oid` again exactly as it is: the same names on
    every partition. A plain one CONCURRENTLY; a partitioned one ON ONLY, then each
    partition's (recursively), attached."""
    from psycopg import sql

    row = catalog.index_by_oid[index_oid]
    table = catalog.table_by_oid[row.table_oid]
    concurrently = row.kind != "I"
    create = sql.SQL("CREATE {unique}INDEX {conc}IF NOT EXISTS {name} ON {only}{table} {tail}").format(
        unique=sql.SQL("UNIQUE " if unique else ""),
        conc=sql.SQL("CONCURRENTLY " if concurrently else ""), name=sql.Identifier(row.name),
        only=sql.SQL("" if concurrently else "ONLY "),
        table=sql.Identifier(table.schema, table.name), tail=sql.SQL(tail)).as_string()
    steps = [Step(create, [] if concurrently else list(ON_ONLY_IGNORES))]
    for child in sorted((i for i in catalog.indexes if i.parent_oid == index_oid),
                        key=lambda i: (i.schema, i.name)):
        steps += _recreate(catalog, child.oid, tail, unique)
        steps.append(Step(sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
            sql.Identifier(row.schema, row.name),
            sql.Identifier(child.schema, child.name)).as_string()))
    return steps


def drop_blocks(rows: list[dict], catalog: Catalog) -> tuple[list[Block], list[Block]]:
    """(forward, rollback) blocks dropping the indexes of `rows` (dmdb.indexes.report's
    unused and duplicate entries)."""
    from dmdb.indexes.declared import parse_declared

    forward, backward = [], []
    seen = set()
    for r in rows:
        key = (r["schema"], r["index"])
        if key in seen:
            continue
        seen.add(key)
        row = catalog.index_by_name.get(key)
        if row is None:
            continue
        partitioned = row.kind == "I"
        why = (f"duplicate of {r['covered_by']}" if r.get("covered_by")
               else f"unused: {r.get('scans', 0)} scans since the statistics reset")
        comments = [one_line(f"{r['schema']}.{r['index']} on {r['table']}: {why}, "
                             f"{r['size_bytes']} bytes"), one_line(r["definition"])]
        forward.append(Block(r["index"], [_drop(r["schema"], r["index"], partitioned)], comments))
        declared = parse_declared([("", r["definition"])])
        if not declared:
            continue
        steps = _recreate(catalog, row.oid, declared[0].tail, declared[0].unique)
        backward.insert(0, Block(r["index"], steps, [one_line(r["definition"])]))
    return forward, backward


def write_pair(sql_dir: Path, title: str, command: str, summary: list[str],
               forward: list[Block], backward: list[Block]) -> WrittenMigration:
    """A new numbered pair in `sql_dir` (reserved by `dmdb new`'s own code), rendered
    from templates/optimize_migration.sql.j2 and optimize_rollback.sql.j2."""
    from dmdb.migrate.new import check_name, new_migration

    title = check_name(title)
    reserved = new_migration(Path(sql_dir), title)
    context = {"id": reserved.id, "title": title, "date": date.today().isoformat(),
               "command": command, "summary": [one_line(s) for s in summary]}
    Path(reserved.migration).write_text(
        resources.render_template("optimize_migration.sql.j2", blocks=forward, **context))
    Path(reserved.rollback).write_text(
        resources.render_template("optimize_rollback.sql.j2", blocks=backward, **context))
    return WrittenMigration(reserved.id, reserved.migration, reserved.rollback,
                            [b.index for b in forward])
