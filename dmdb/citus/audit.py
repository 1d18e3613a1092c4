"""`dmdb lint --citus`: the live schema and the delegated functions against Citus's rules.

Each finding is a BLOCKER (`create_distributed_table` or a delegated call would fail, or
a guarantee would be lost) or a WARNING (works, with a cost or a setting to know), with
the fix. The rules, as Citus documents them:

- every PRIMARY KEY and UNIQUE of a distributed table includes the distribution column;
- foreign keys: distributed -> reference, or between distributed tables on the
  distribution column (co-located); never reference or local -> distributed;
- one level of partitioning under a distributed table;
- bigint sequences and identities (a shard-wide id space);
- every statement of a function meant for delegation pinned to its learner, and no write
  to a reference table from it (a row shared by all learners, written per answer);
- triggers on distributed tables need `citus.enable_unsafe_triggers`; materialized views
  over distributed tables are stored on the coordinator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.citus.catalog import DISTRIBUTION_COLUMN, Schema, read_schema
from dmdb.citus.functions import DELEGATED, analyse

if TYPE_CHECKING:
    import psycopg

BLOCKER, WARNING = "BLOCKER", "WARNING"


@dataclass(frozen=True)
class Finding:
    level: str
    rule: str
    object: str
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.level} {self.rule}: {self.object}: {self.message}; fix: {self.fix}"


@dataclass
class AuditResult:
    schema: str
    column: str
    distributed: list[str]
    reference: list[str]
    local: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.level == BLOCKER]

    def to_dict(self) -> dict:
        return {"schema": self.schema, "distribution_column": self.column,
                "distributed": self.distributed, "reference": self.reference,
                "local": self.local, "blockers": len(self.blockers),
                "warnings": len(self.findings) - len(self.blockers),
                "findings": [asdict(f) for f in self.findings]}


def _keys(s: Schema) -> list[Finding]:
    out = []
    for c in s.constraints:
        column = s.column_of(c.table)
        if c.kind == "f" or s.kind(c.table) != "distributed" or column in c.columns:
            continue
        what = {"p": "primary key", "u": "unique constraint", "i": "unique index"}[c.kind]
        out.append(Finding(
            BLOCKER, "unique-without-distribution-column", f"{c.table}.{c.name}",
            f"{what} ({', '.join(c.columns)}) of a table distributed by {column} does not "
            f"include {column}: Citus can only enforce it within one shard",
            f"make it ({column}, {', '.join(c.columns)}), or keep the uniqueness in a "
            "table of its own keyed by these columns"))
    return out


def _foreign_keys(s: Schema) -> list[Finding]:
    out = []
    for c in s.constraints:
        if c.kind != "f" or c.ref_table is None:
            continue
        src, dst = s.kind(c.table), s.kind(c.ref_table)
        where = f"{c.table}.{c.name}"
        if dst == "distributed" and src != "distributed":
            out.append(Finding(
                BLOCKER, "foreign-key-to-distributed", where,
                f"a {src} table references the distributed table {c.ref_table}",
                f"drop the key, or distribute {c.table} by {s.column} too"))
        elif src == dst == "distributed" and not (s.colocated(c.table)
                                                  and s.colocated(c.ref_table)):
            out.append(Finding(
                BLOCKER, "foreign-key-not-colocated", where,
                f"{c.table} and {c.ref_table} are sharded by different columns",
                "drop the key and keep the rule in a trigger or the functions"))
        elif src == dst == "distributed":
            try:
                i = c.columns.index(s.column)
                colocated = c.ref_columns[i] == s.column
            except (ValueError, IndexError):
                colocated = False
            if not colocated:
                out.append(Finding(
                    BLOCKER, "foreign-key-not-colocated", where,
                    f"({', '.join(c.columns)}) -> {c.ref_table} ({', '.join(c.ref_columns)}) "
                    f"does not join on {s.column}: the rows may live on different workers",
                    f"reference ({s.column}, ...) on both sides, with a unique key "
                    f"({s.column}, ...) on {c.ref_table}"))
    return out


def _partitioning(s: Schema) -> list[Finding]:
    return [Finding(BLOCKER, "nested-partitioning", t.name,
                    "a partition of it is partitioned again; Citus distributes one level",
                    "partition once (by time), distribution shards by learner")
            for t in s.tables.values() if t.kind == "distributed" and t.sub_partitioned]


def _sequences(s: Schema) -> list[Finding]:
    return [Finding(WARNING, "small-sequence", f"{table}.{col}",
                    f"{source} of type {typ}: shards draw ids from one sequence space, which "
                    "a cluster exhausts sooner", f"ALTER TABLE {table} ALTER COLUMN {col} "
                    "TYPE bigint (in a migration)")
            for table, col, typ, source in s.sequences
            if s.kind(table) in ("distributed", "reference") and typ in ("integer", "smallint")]


def _triggers(s: Schema) -> list[Finding]:
    out = []
    for table, name in s.triggers:
        kind = s.kind(table)
        if kind == "distributed":
            out.append(Finding(
                WARNING, "trigger-on-distributed-table", f"{table}.{name}",
                "Citus runs it on the shard's worker only with citus.enable_unsafe_triggers, "
                "and it may then only touch co-located rows of the same learner",
                "set citus.enable_unsafe_triggers = on and keep it to the learner's rows, "
                "or do its work in the functions"))
        elif kind == "reference":
            out.append(Finding(
                WARNING, "trigger-on-reference-table", f"{table}.{name}",
                "a reference table is copied to every node; its trigger runs on each copy "
                "(with citus.enable_unsafe_triggers) and must only read reference tables",
                "keep it a validity check over reference tables, and enable "
                "citus.enable_unsafe_triggers"))
    return out


def _views(s: Schema) -> list[Finding]:
    return [Finding(WARNING, "materialized-view", t.name,
                    "a materialized view over distributed tables is stored on the "
                    "coordinator; its refresh reads every shard",
                    "keep it for analytics (refresh off-peak), or replace it with a rollup "
                    "table distributed by the learner")
            for t in s.tables.values() if t.kind == "view"]


def _functions(conn: psycopg.Connection, s: Schema) -> list[Finding]:
    out = []
    reference = {t.name for t in s.of_kind("reference")}
    distributed = {t.name for t in s.of_kind("distributed") if s.colocated(t.name)}
    for name, argument in DELEGATED.items():
        rows = conn.execute(resources.query("citus_function"),
                            {"schema": s.name, "name": name}).fetchall()
        for signature, language, definition, body, arg_names in rows:
            if argument not in (arg_names or []):
                out.append(Finding(
                    BLOCKER, "delegation-argument-missing", signature,
                    f"no argument {argument} to delegate the call by",
                    f"give it the learner as {argument}"))
                continue
            for issue in analyse(name, language, definition, body, argument, distributed,
                                 reference, s.column):
                out.append(_issue_finding(issue, signature, argument, s.column))
    return out


def _issue_finding(issue, signature: str, argument: str, column: str) -> Finding:
    where = f"{signature}" + (f" line {issue.line}" if issue.line else "")
    if issue.kind == "unpinned":
        return Finding(
            BLOCKER, "delegated-statement-not-pinned", where,
            f"reads or writes {issue.table} without {issue.table}.{column} = {argument} "
            f"({issue.statement})",
            f"add {column} = {argument} to the statement (a key that includes {column} "
            "serves it)")
    if issue.kind == "shared_write":
        return Finding(
            BLOCKER, "per-answer-write-to-shared-row", where,
            f"writes the reference table {issue.table} ({issue.statement}): every node's "
            "copy, on every call",
            "move the write to a rollup over the events (as rollup_learning_events does)")
    return Finding(WARNING, "dynamic-sql", where,
                   "EXECUTE of a string cannot be checked statically",
                   f"pin it to {column} = {argument} by hand, or write it as a static "
                   "statement")


def audit(conn: psycopg.Connection, schema: str = "public",
          column: str = DISTRIBUTION_COLUMN) -> AuditResult:
    """Every rule over the live schema `schema`, distributed by `column`."""
    s = read_schema(conn, schema, column)
    result = AuditResult(schema, column,
                         sorted(t.name for t in s.of_kind("distributed")),
                         sorted(t.name for t in s.of_kind("reference")),
                         sorted(t.name for t in s.of_kind("local")))
    for rule in (_keys, _foreign_keys, _partitioning, _sequences, _triggers, _views):
        result.findings += rule(s)
    result.findings += _functions(conn, s)
    order = {BLOCKER: 0, WARNING: 1}
    result.findings.sort(key=lambda f: (order[f.level], f.rule, f.object))
    return result
