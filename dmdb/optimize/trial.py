"""The trial: each candidate index built for real on a scratch copy, and the workload's
statements explained and timed before and after.

Without HypoPG the planner sizes a relation from its real file, so candidates are judged
on a copy holding the real volume: a scratch database on the same server, named
`dmdb_optimize_<live database oid>_<random>`, with the live schema (pg_dump, no data) and
every row of the tables the workload searches and of those their statements join (COPY,
binary). The copy loses the foreign
keys and user triggers of those tables (the rows of the tables they reference are not
copied; the trial measures index maintenance, not triggers), then is vacuumed and
analyzed as production tables are.

For each candidate, in one transaction rolled back at its end: the index is built
(`CREATE INDEX` on the parent of a partitioned table: one index judged by its use across
the partitions), every statement on its table is explained (`EXPLAIN (GENERIC_PLAN)`:
pg_stat_statements' `$n` text) and run (`PREPARE`, then `EXPLAIN (ANALYZE)` of `EXECUTE`
with values taken from sampled rows, each run rolled back to a savepoint), and a write
sample is timed: rows deleted and inserted again, so that every index of the table takes
the inserts. The live database is only read.

The scratch database is dropped in a `finally`. A run killed with SIGKILL cannot drop it:
each run holds a session advisory lock named after its scratch database on the live
database while it lives, and the next run drops every `dmdb_optimize_<oid>_*` database
whose lock it can take (its owner is gone).
"""

from __future__ import annotations

import hashlib
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dmdb import resources
from dmdb.db import connect, die_with_client
from dmdb.errors import DmdbError, first_line
from dmdb.optimize.candidates import Candidate
from dmdb.optimize.workload import LiveTable, Statement

if TYPE_CHECKING:
    import psycopg

    from dmdb.config import Settings

PREFIX = "dmdb_optimize_"
SAMPLES = 5  # sampled rows per statement: its parameters' values
WRITE_SAMPLE = 200  # rows deleted and inserted again, per write measurement
WRITE_REPEAT = 5
LIMIT_VALUE = "10"  # a LIMIT $n, whose value pg_stat_statements did not keep
_STATEMENT_NAME = "dmdb_optimize_q"
# The relations of a table's or an index's partition tree, itself included
# (pg_partition_tree lists nothing for a plain table or index).
_TREE = ("(SELECT %(rel)s::regclass::oid AS relid UNION "
         "SELECT relid FROM pg_partition_tree(%(rel)s::regclass))")


def scratch_prefix(live_oid: int) -> str:
    return f"{PREFIX}{live_oid}_"


def lock_key(name: str) -> int:
    """The session advisory lock a run holds on the live database for its scratch one."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# -- the scratch database ----------------------------------------------------------------


def clean_leftovers(settings: Settings, live: psycopg.Connection) -> list[str]:
    """Drop the scratch databases of runs that are gone (their lock is free)."""
    from psycopg import sql

    oid = live.execute("SELECT oid::bigint FROM pg_database WHERE datname = current_database()"
                       ).fetchone()[0]
    prefix = scratch_prefix(oid)
    names = [r[0] for r in live.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
        (prefix,)).fetchall()]
    dropped = []
    for name in names:
        key = lock_key(name)
        if not live.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            continue  # a live run's
        try:
            with connect(settings, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            dropped.append(name)
        finally:
            live.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return dropped


@contextmanager
def scratch_database(settings: Settings, live: psycopg.Connection) -> Iterator[str]:
    """A new scratch database, its lock held on `live` from before it exists; dropped
    (FORCE) in a finally, whatever happens."""
    import psycopg
    from psycopg import sql

    oid = live.execute("SELECT oid::bigint FROM pg_database WHERE datname = current_database()"
                       ).fetchone()[0]
    name = f"{scratch_prefix(oid)}{uuid.uuid4().hex[:10]}"
    key = lock_key(name)
    live.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        with connect(settings, autocommit=True) as admin:
            try:
                # template0: nobody is ever connected to it (a session on template1 would
                # make CREATE DATABASE fail)
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                    sql.Identifier(name)))
            except psycopg.errors.InsufficientPrivilege:
                raise DmdbError(
                    f"dmdb optimize indexes tries candidates on a scratch copy and "
                    f"{settings.user or 'this role'} may not create a database; grant it "
                    "CREATEDB, or run it against a copy of this database on a server where "
                    "it may") from None
        try:
            yield name
        finally:
            with connect(settings, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
    finally:
        if not live.closed:
            live.execute("SELECT pg_advisory_unlock(%s)", (key,))


@dataclass
class Copied:
    table: str
    rows: int
    size_bytes: int
    seconds: float


def prepare_scratch(settings: Settings, scratch: str, tables: list[LiveTable],
                    notes: list[str]) -> list[Copied]:
    """The live schema, then every row of `tables`, into `scratch`; vacuumed, analyzed."""
    import psycopg
    from psycopg import sql

    from dmdb.migrate.verify import Scratch, restore_schema

    target_db = Scratch(settings, scratch, "the live server")
    for ext in restore_schema(settings, settings.dbname, target_db):
        notes.append(f"extension {ext} left out of the scratch copy: this role may not "
                     "create it")
    names = [sql.Identifier(t.table.schema, t.table.name) for t in tables]
    copied = []
    with connect(settings, autocommit=True, dbname=scratch) as target:
        target.execute("SET client_min_messages = warning")
        rels = [n.as_string(target) for n in names]
        for what, rel, con in target.execute(resources.query("optimize_scratch_constraints"),
                                             {"tables": rels}).fetchall():
            if what == "fk":
                target.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(rel), sql.Identifier(con)))
            else:
                target.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.SQL(rel)))
        with connect(settings, autocommit=True) as live:
            live.execute("SET default_transaction_read_only = on")
            die_with_client(live)
            for t, ident in zip(tables, names):
                started = time.monotonic()
                cols = target.execute(
                    "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
                    "AND attgenerated = ''", (ident.as_string(target),)).fetchone()[0]
                col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
                try:
                    _copy(live, target, ident, col_list, "binary")
                except psycopg.Error:
                    # Binary rows carry type oids (arrays, composites), which differ
                    # between databases for types of the schema: the same rows as text.
                    _copy(live, target, ident, col_list, "text")
                target.execute(sql.SQL("VACUUM (ANALYZE) {}").format(ident))
                rows = target.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0]
                size = relation_size(target, ident.as_string(target))
                copied.append(Copied(t.table.qualified, rows, size, time.monotonic() - started))
    return copied


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Measure:
    """One statement on the scratch copy, in one state of its table's indexes."""

    cost: float | None = None  # EXPLAIN (GENERIC_PLAN) total cost
    plan: str | None = None  # the plan's node types, outermost first, with index names
    ms: float | None = None  # median execution time over the sampled parameter values
    # every parameter's value came from a sampled row (or is a LIMIT): the timed runs are
    # the workload's kind; False when a parameter no column tells about got a stand-in
    sampled: bool = False
    indexes: list[str] = field(default_factory=list)  # indexes the generic plan uses
    error: str | None = None

    def to_dict(self) -> dict:
        return {"cost": self.cost, "plan": self.plan, "ms": self.ms, "sampled": self.sampled,
                "error": self.error}


@dataclass
class WriteMeasure:
    rows: int = 0
    ms_per_row: float | None = None
    error: str | None = None


@dataclass
class CandidateTrial:
    candidate: Candidate
    name: str
    definition: str
    size_bytes: int | None = None
    build_ms: float | None = None
    after: dict[str, Measure] = field(default_factory=dict)  # queryid -> measure
    write: WriteMeasure = field(default_factory=WriteMeasure)
    error: str | None = None


@dataclass
class TableTrial:
    table: str
    before: dict[str, Measure] = field(default_factory=dict)
    write: WriteMeasure = field(default_factory=WriteMeasure)
    candidates: list[CandidateTrial] = field(default_factory=list)


def _walk_plan(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk_plan(child)


def _summary(plan: dict) -> tuple[str, list[str]]:
    parts, used = [], []
    for node in _walk_plan(plan):
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
            used.append(node["Index Name"])
        if "Relation Name" in node and "Index Name" not in node:
            label += f" on {node['Relation Name']}"
        parts.append(label)
    # A partitioned table's plan repeats the same node per partition: keep each once.
    return " > ".join(dict.fromkeys(parts)), used


class Bench:
    """Explain and time statements on a scratch connection inside the trial's transaction."""

    def __init__(self, conn: psycopg.Connection, samples: int = SAMPLES,
                 statement_timeout: str = "30s"):
        self.conn = conn
        self.samples = samples
        self.statement_timeout = statement_timeout
        self._rows: dict[str, list[dict[str, str | None]]] = {}

    def savepoint(self, action: Callable[[], Any]) -> Any:
        self.conn.execute("SAVEPOINT dmdb_m")
        try:
            return action()
        finally:
            self.conn.execute("ROLLBACK TO SAVEPOINT dmdb_m")
            self.conn.execute("RELEASE SAVEPOINT dmdb_m")

    def explain(self, text: str) -> tuple[float, str, list[str]]:
        row = self.conn.execute("EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + text).fetchone()
        plan = row[0][0]["Plan"]
        summary, used = _summary(plan)
        return float(plan["Total Cost"]), summary, used

    def sample_rows(self, table: str, columns: list[str]) -> list[dict[str, str | None]]:
        """`samples` rows of `table` (their values as text), the same in every state."""
        if table not in self._rows:
            from psycopg import sql

            schema, name = table.split(".", 1)
            cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
            rows = self.conn.execute(sql.SQL(
                "SELECT {} FROM {} TABLESAMPLE BERNOULLI (%s) REPEATABLE (7) LIMIT %s").format(
                    cols, sql.Identifier(schema, name)), (self._percent(schema, name), self.samples)
            ).fetchall()
            if len(rows) < self.samples:
                rows = self.conn.execute(sql.SQL("SELECT {} FROM {} LIMIT %s").format(
                    cols, sql.Identifier(schema, name)), (self.samples,)).fetchall()
            self._rows[table] = [dict(zip(columns, r)) for r in rows]
        return self._rows[table]

    def _percent(self, schema: str, name: str) -> float:
        from psycopg import sql

        rows = self.conn.execute(
            "SELECT greatest(sum(c.reltuples), 1) FROM " + _TREE + " t "
            "JOIN pg_class c ON c.oid = t.relid",
            {"rel": sql.Identifier(schema, name).as_string(self.conn)}).fetchone()[0]
        return min(100.0, 100.0 * self.samples * 20 / float(rows))

    def _values(self, stmt: Statement, types: list[str], table_columns: dict[str, list[str]]
                ) -> tuple[list[list[str | None]], bool]:
        """One list of parameter values (text) per sampled row, and whether every value
        came from a sampled row (or is a LIMIT's)."""
        parsed = stmt.parsed
        by_param: dict[int, tuple[str, str]] = {}
        for scan in parsed.scans:
            for n, col in scan.params.items():
                by_param.setdefault(n, (scan.table, col))
        runs = []
        sampled = all(n in parsed.limit_params or n in by_param for n in range(1, len(types) + 1))
        for i in range(self.samples):
            values = []
            for n in range(1, len(types) + 1):
                if n in parsed.limit_params:
                    values.append(LIMIT_VALUE)
                elif n in by_param:
                    table, col = by_param[n]
                    rows = self.sample_rows(table, table_columns[table])
                    values.append(rows[i % len(rows)][col] if rows else None)
                else:
                    values.append(_default_value(types[n - 1]))
            runs.append(values)
        return runs, sampled

    def time(self, stmt: Statement, table_columns: dict[str, list[str]]
             ) -> tuple[float | None, bool]:
        """The median execution time (ms) of `stmt` over the sampled parameter values
        (each run rolled back), and whether all of them came from sampled rows. An error
        is raised."""
        from psycopg import sql

        name = sql.Identifier(_STATEMENT_NAME)
        self.conn.execute(sql.SQL("PREPARE {} AS ").format(name).as_string(self.conn)
                          + stmt.parsed.text)
        try:
            types = self.conn.execute(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = %s",
                (_STATEMENT_NAME,)).fetchone()[0] or []
            times = []
            runs, sampled = self._values(stmt, types, table_columns)
            for values in runs:
                args = sql.SQL(", ").join(
                    sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t))
                    for v, t in zip(values, types))
                execute = sql.SQL("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE {}").format(name)
                if types:
                    execute = sql.SQL("{}({})").format(execute, args)

                def run(execute=execute) -> float:
                    self.conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                      (self.statement_timeout,))
                    self.conn.execute(execute)  # warm: the first run reads the pages in
                    out = self.conn.execute(execute).fetchone()[0][0]
                    self.conn.execute("SELECT set_config('statement_timeout', '0', true)")
                    return float(out["Execution Time"])

                times.append(self.savepoint(run))
            return (statistics.median(times) if times else None), sampled
        finally:
            self.conn.execute(sql.SQL("DEALLOCATE {}").format(name))

    def measure(self, stmt: Statement, table_columns: dict[str, list[str]]) -> Measure:
        import psycopg

        m = Measure()
        try:
            m.cost, m.plan, m.indexes = self.savepoint(lambda: self.explain(stmt.parsed.text))
        except psycopg.Error as exc:
            m.error = f"not explained: {first_line(exc)}"
            return m
        try:
            m.ms, m.sampled = self.time(stmt, table_columns)
        except psycopg.Error as exc:
            m.error = f"not timed: {first_line(exc)}"
        return m

    def write_sample(self, table: str, rows: int = WRITE_SAMPLE,
                     repeat: int = WRITE_REPEAT) -> WriteMeasure:
        """ms per row to insert rows into `table` with its indexes as they are now: `rows`
        sampled rows deleted, then inserted again (timed), rolled back; the fastest of
        `repeat` runs (the one other load on the machine disturbed least)."""
        import psycopg
        from psycopg import sql

        schema, name = table.split(".", 1)
        ident = sql.Identifier(schema, name)
        stash = sql.Identifier("dmdb_optimize_rows")
        pct = self._percent(schema, name) * rows / self.samples
        out = WriteMeasure()

        def once() -> tuple[int, float]:
            self.conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
                stash, ident))
            self.conn.execute(sql.SQL(
                "WITH d AS (DELETE FROM {t} WHERE (tableoid, ctid) IN (SELECT tableoid, ctid "
                "FROM {t} TABLESAMPLE BERNOULLI (%s) REPEATABLE (11) LIMIT %s) RETURNING *) "
                "INSERT INTO {s} SELECT * FROM d").format(t=ident, s=stash), (min(pct, 100.0), rows))
            n = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(stash)).fetchone()[0]
            plan = self.conn.execute(sql.SQL(
                "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) INSERT INTO {} OVERRIDING SYSTEM VALUE "
                "SELECT * FROM {}").format(
                    ident, stash)).fetchone()[0][0]
            return n, float(plan["Execution Time"])

        try:
            runs = [self.savepoint(once) for _ in range(repeat)]
        except psycopg.Error as exc:
            out.error = f"write sample failed: {first_line(exc)}"
            return out
        out.rows = runs[0][0]
        if out.rows:
            out.ms_per_row = min(ms / n for n, ms in runs if n)
        return out


_DEFAULTS = {
    "boolean": "true", "text": "", "character varying": "", "integer": "1", "bigint": "1",
    "smallint": "1", "numeric": "0", "double precision": "0", "real": "0",
    "jsonb": "{}", "json": "{}", "date": "today", "interval": "1 day",
    "timestamp with time zone": "now", "timestamp without time zone": "now",
}


def _default_value(type_name: str) -> str | None:
    """A value for a parameter no column of the statement tells about."""
    if type_name.endswith("[]"):
        return "{}"
    return _DEFAULTS.get(type_name)


def _copy(live, target, ident, col_list, fmt: str) -> None:
    """The rows of `ident` from the live database into the copy, streamed; a failed COPY
    loads nothing (one statement, autocommit)."""
    from psycopg import sql

    with live.cursor().copy(sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT {})").format(
            col_list, ident, sql.SQL(fmt))) as src, \
            target.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
                ident, col_list, sql.SQL(fmt))) as dst:
        for chunk in src:
            dst.write(chunk)


def relation_size(conn: psycopg.Connection, rel: str) -> int:
    """Bytes of a table or index and of its partitions' (`rel`: a quoted name)."""
    return conn.execute("SELECT coalesce(sum(pg_relation_size(relid)), 0)::bigint FROM " + _TREE
                        + " t", {"rel": rel}).fetchone()[0]


def index_names(conn: psycopg.Connection, index: str, schema: str) -> set[str]:
    """The index and, on a partitioned table, its partitions' indexes."""
    from psycopg import sql

    rows = conn.execute("SELECT c.relname FROM " + _TREE + " t JOIN pg_class c ON c.oid = t.relid",
                        {"rel": sql.Identifier(schema, index).as_string(conn)}).fetchall()
    return {r[0] for r in rows}


def run_trial(settings: Settings, scratch: str, trials: list[TableTrial],
              statements: dict[str, Statement], table_of: dict[str, list[str]],
              table_columns: dict[str, list[str]], *, samples: int = SAMPLES,
              write_rows: int = WRITE_SAMPLE, statement_timeout: str = "30s",
              progress: Callable[[str], None] | None = None) -> None:
    """Fill each TableTrial: its statements before, then each candidate built, measured
    and rolled back. `table_of`: table -> the queryids of its statements."""
    import psycopg
    from psycopg import sql

    with connect(settings, dbname=scratch) as conn:
        die_with_client(conn)
        conn.execute("SET plan_cache_mode = force_custom_plan")
        conn.execute("SET client_min_messages = warning")
        conn.commit()
        bench = Bench(conn, samples, statement_timeout)
        for tt in trials:
            qids = table_of.get(tt.table, [])
            if progress:
                progress(f"{tt.table}: {len(qids)} statement(s) before")
            for qid in qids:
                tt.before[qid] = bench.measure(statements[qid], table_columns)
            tt.write = bench.write_sample(tt.table, write_rows)
            conn.rollback()
            schema = tt.table.split(".", 1)[0]
            for ct in tt.candidates:
                if progress:
                    progress(f"{tt.table}: trying {ct.candidate.label}")
                try:
                    started = time.monotonic()
                    conn.execute(ct.definition)
                    ct.build_ms = (time.monotonic() - started) * 1000
                    ct.size_bytes = relation_size(conn, sql.Identifier(schema, ct.name).as_string(conn))
                    names = index_names(conn, ct.name, schema)
                    for qid in qids:
                        m = bench.measure(statements[qid], table_columns)
                        m.indexes = [i for i in m.indexes if i in names]
                        ct.after[qid] = m
                    ct.write = bench.write_sample(tt.table, write_rows)
                except psycopg.Error as exc:
                    ct.error = f"trial failed: {first_line(exc)}"
                finally:
                    conn.rollback()
