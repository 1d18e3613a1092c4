"""Retention: the SQL that retires a partition, by archiving or by dropping it.

Archiving is DETACH + SET SCHEMA, and it cuts the archived table loose from the live
schema in the same transaction: a detached partition keeps a foreign key to `users`
(with its triggers on `users`), a default that calls `nextval` on the parent's
sequence, and whatever else its parts depend on. Left in place they tie the archive to
the live schema: `DROP TABLE learning_events` (the rollback of 0004) refuses because the
sequence it owns is used by the archive's default, `DROP TABLE users` because of the
foreign key, and deleting a user cascades into the archive. What is cut: foreign keys,
column defaults, CHECK constraints, own triggers and policies that depend on objects
outside the table (partitions_dependencies.sql reads them at planning); anything else
(a column of a type from the live schema, an index using an extension's operator
class) is reported after the run.

Dropping a foreign key removes its triggers from the referenced table, which takes
ACCESS EXCLUSIVE on it (`users`): the step locks it first, in that mode, under the
step's short lock_timeout, so the order stays users → parent → DEFAULT as everywhere.

Dropping is DROP TABLE of the attached partition, which detaches it implicitly and,
unlike DETACH + DROP, does not need an ACCESS EXCLUSIVE lock on `users` (the detached
table's own foreign key would be dropped with it).

Late rows: an answer recorded after its month was retired lands in the DEFAULT
partition. Retention takes it as it took the month (`late_step`): into the month's
archived table (created standalone, `LIKE` the parent without its defaults, when the
month was never archived), or deleted with `--drop`. A month that was created again
after it was archived (`create --fill`, `--from`) is archived by copying its rows into
the archived table and dropping the partition (`archive_step(..., merge=True)`), never
by a second SET SCHEMA that the existing table would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from dmdb.partitions.catalog import Dependency
from dmdb.partitions.plan import (
    DefaultMonth,
    Existing,
    Step,
    TableInfo,
    fk_locks,
    lock,
    month_bounds,
    partition_name,
    set_lock_timeout,
)

# The dependencies a statement can cut; the others are reported.
CUTTABLE = ("foreign key", "constraint", "default", "trigger", "policy")


def unlink_statements(ident: sql.Identifier, deps: Iterable[Dependency]) -> list[sql.Composable]:
    """The statements that cut table `ident` loose from what `deps` names."""
    out: list[sql.Composable] = []
    seen: set[tuple[str, str]] = set()
    for d in deps:
        if d.kind not in CUTTABLE or d.name is None or (d.kind, d.name) in seen:
            continue
        seen.add((d.kind, d.name))
        name = sql.Identifier(d.name)
        if d.kind in ("foreign key", "constraint"):
            out.append(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, name))
        elif d.kind == "default":
            out.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(ident, name))
        elif d.kind == "trigger":
            out.append(sql.SQL("DROP TRIGGER {} ON {}").format(name, ident))
        else:
            out.append(sql.SQL("DROP POLICY {} ON {}").format(name, ident))
    return out


def _referenced_lock_mode(deps: Iterable[Dependency]) -> str:
    return "ACCESS EXCLUSIVE" if any(d.kind == "foreign key" for d in deps) \
        else "SHARE ROW EXCLUSIVE"


def archive_step(table: TableInfo, part: Existing, schema: str, lock_timeout: str,
                 deps: Iterable[Dependency] = (), *, merge: bool = False) -> Step:
    if merge:
        return _merge_step(table, part, schema, lock_timeout)
    deps = list(deps)
    ident = sql.Identifier(part.schema, part.name)
    stmts = [set_lock_timeout(lock_timeout), *fk_locks(table, _referenced_lock_mode(deps)),
             lock(table.ident, "ACCESS EXCLUSIVE")]
    if table.default_ident is not None:
        stmts.append(lock(table.default_ident, "ACCESS EXCLUSIVE"))
    stmts += [
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(table.ident, ident),
        *unlink_statements(ident, deps),
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(ident, sql.Identifier(schema)),
    ]
    return Step("archive", part.name, part.lo, part.hi, stmts, archive_schema=schema,
                unlinks=[d.describe() for d in deps if d.kind in CUTTABLE])


def unlink_step(table: TableInfo, schema: str, name: str, lock_timeout: str,
                deps: Iterable[Dependency]) -> Step:
    """Cut loose a table archived by an earlier run (before archiving did it)."""
    deps = list(deps)
    ident = sql.Identifier(schema, name)
    stmts = [set_lock_timeout(lock_timeout)]
    if any(d.kind == "foreign key" for d in deps):
        stmts += fk_locks(table, "ACCESS EXCLUSIVE")
    stmts += [lock(ident, "ACCESS EXCLUSIVE"), *unlink_statements(ident, deps)]
    return Step("unlink", name, None, None, stmts, archive_schema=schema,
                unlinks=[d.describe() for d in deps if d.kind in CUTTABLE])


def drop_step(table: TableInfo, part: Existing, lock_timeout: str) -> Step:
    stmts = [set_lock_timeout(lock_timeout), lock(table.ident, "ACCESS EXCLUSIVE")]
    if table.default_ident is not None:
        stmts.append(lock(table.default_ident, "ACCESS EXCLUSIVE"))
    stmts.append(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.schema, part.name)))
    return Step("drop", part.name, part.lo, part.hi, stmts)


def _columns(table: TableInfo) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)


def _merge_step(table: TableInfo, part: Existing, schema: str, lock_timeout: str) -> Step:
    """Archive a partition whose month the archive schema holds already: copy its rows
    into that table, then drop it (as `drop_step` does: no lock on `users`). The parent
    is locked first, so no reader sees the month half copied."""
    ident = sql.Identifier(part.schema, part.name)
    target = sql.Identifier(schema, part.name)
    cols = _columns(table)
    stmts = [set_lock_timeout(lock_timeout), lock(table.ident, "ACCESS EXCLUSIVE")]
    if table.default_ident is not None:
        stmts.append(lock(table.default_ident, "ACCESS EXCLUSIVE"))
    stmts += [lock(target, "SHARE ROW EXCLUSIVE")]
    move_index = len(stmts)
    stmts += [
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ONLY {}").format(target, cols, cols, ident),
        sql.SQL("DROP TABLE {}").format(ident),
    ]
    return Step("archive", part.name, part.lo, part.hi, stmts, move_index=move_index,
                archive_schema=schema, merge=True)


def late_step(table: TableInfo, month: DefaultMonth, lock_timeout: str, *,
              archive_schema: str | None, archived: bool = False) -> Step:
    """Rows of the DEFAULT partition in a month retention has retired, in one
    transaction: with `archive_schema`, moved into that schema's table of the month
    (created first unless `archived`: it exists), else deleted (`--drop`). Ids are kept.
    Only DEFAULT's rows of that month are touched (ROW EXCLUSIVE, as any DELETE): other
    readers and writers do not wait."""
    assert table.default_ident is not None and month.month is not None
    lo, hi = month_bounds(month.month)
    name = partition_name(table.name, month.month)
    key = sql.Identifier(table.key)
    where = sql.SQL("{key} >= {lo} AND {key} < {hi}").format(
        key=key, lo=sql.Literal(lo), hi=sql.Literal(hi))
    stmts: list[sql.Composable] = [set_lock_timeout(lock_timeout)]
    if archive_schema is None:
        stmts.append(sql.SQL("DELETE FROM {} WHERE {}").format(table.default_ident, where))
        return Step("late", name, lo, hi, stmts, default_rows=month.rows, move_index=1)
    target = sql.Identifier(archive_schema, name)
    if not archived:
        stmts += [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_schema)),
            # Standalone like an archived partition: no foreign key (LIKE copies none), no
            # default on the live table's sequence.
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING DEFAULTS)").format(
                target, table.ident),
        ]
    cols = _columns(table)
    move_index = len(stmts)
    stmts.append(sql.SQL(
        "WITH moved AS (DELETE FROM {default} WHERE {where} RETURNING {cols}) "
        "INSERT INTO {target} ({cols}) SELECT {cols} FROM moved"
    ).format(default=table.default_ident, where=where, cols=cols, target=target))
    return Step("late", name, lo, hi, stmts, default_rows=month.rows, move_index=move_index,
                archive_schema=archive_schema)
