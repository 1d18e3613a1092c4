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
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from dmdb.partitions.catalog import Dependency
from dmdb.partitions.plan import Existing, Step, TableInfo, fk_locks, lock, set_lock_timeout

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
                 deps: Iterable[Dependency] = ()) -> Step:
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
