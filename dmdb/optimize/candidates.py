"""Candidate indexes from the workload's scans (pure).

dexter's rule, per table: every column a statement searches by is a one-column candidate;
two-column candidates put an equality (or join) column first and another searched column
second; a constant predicate that most of the table's statements share (`parent_id IS
NOT NULL`, `is_active`) adds partial variants. Never a btree on a column whose type has
no useful btree order (jsonb, json, xml, ...). A candidate an existing valid btree index
already serves (its leading columns, and no predicate or the same one) is not tried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from dmdb.optimize.parse import Scan

# Types a btree cannot usefully order or search: their operators are GIN/GiST's.
NO_BTREE = ("jsonb", "json", "xml", "tsvector", "tsquery", "point", "polygon", "circle",
            "box", "path", "line", "lseg", "int4range", "int8range", "numrange", "tsrange",
            "tstzrange", "daterange")
MAX_PER_TABLE = 8
# A predicate is the table's common case when the statements carrying it hold at least
# this share of the table's statement time.
PREDICATE_SHARE = 0.5
MAX_IDENTIFIER_BYTES = 63


@dataclass(frozen=True)
class Candidate:
    table: str  # schema-qualified
    columns: tuple[str, ...]
    where: str | None = None  # normalized predicate (parse.Scan.predicates' form)

    @property
    def label(self) -> str:
        text = f"{self.table} ({', '.join(self.columns)})"
        return text + (f" WHERE {self.where}" if self.where else "")


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    table: str  # schema-qualified
    method: str
    columns: tuple[str | None, ...]  # None: an expression
    where: str | None
    valid: bool = True


@dataclass
class Weighted:
    """A scan and the weight of its statement (its total time, ms)."""

    scan: Scan
    queryid: str
    weight: float


@dataclass
class Candidates:
    tried: list[Candidate]
    # candidate -> the queryids it came from
    sources: dict[Candidate, list[str]] = field(default_factory=dict)
    # candidates not tried, and why
    skipped: list[tuple[Candidate, str]] = field(default_factory=list)


def btree_type(type_name: str) -> bool:
    base = type_name.split("(")[0].strip()
    return not base.endswith("[]") and base not in NO_BTREE


def covered_by(c: Candidate, existing: list[ExistingIndex]) -> ExistingIndex | None:
    for ix in existing:
        if not ix.valid or ix.method != "btree" or ix.table != c.table:
            continue
        if tuple(ix.columns[:len(c.columns)]) == c.columns and ix.where in (None, c.where):
            return ix
    return None


def _keys(scan: Scan) -> list[tuple[str, ...]]:
    first = list(dict.fromkeys(scan.eq + scan.join))
    second = list(dict.fromkeys(scan.eq + scan.join + scan.range + scan.order[:1]))
    singles = list(dict.fromkeys(first + scan.range + scan.order[:1]))
    keys = [(c,) for c in singles]
    keys += [(a, b) for a in first for b in second if a != b]
    if not first and len(scan.order) >= 2:
        keys.append(tuple(scan.order[:2]))
    if not first and scan.range and scan.order and scan.order[0] != scan.range[0]:
        keys.append((scan.order[0], scan.range[0]))
    return keys


def generate(scans: list[Weighted], types: dict[str, dict[str, str]],
             existing: list[ExistingIndex], *, max_per_table: int = MAX_PER_TABLE) -> Candidates:
    """The candidates to try, per table the `max_per_table` heaviest (by the summed weight
    of the statements they may serve; fewer columns first on a tie)."""
    weight: dict[Candidate, float] = {}
    sources: dict[Candidate, list[str]] = {}
    skipped: dict[Candidate, str] = {}
    by_table: dict[str, list[Weighted]] = {}
    for w in scans:
        by_table.setdefault(w.scan.table, []).append(w)
    for table, items in by_table.items():
        total = sum(w.weight for w in items) or 1.0
        shares: dict[str, float] = {}
        for w in items:
            for p in w.scan.predicates:
                shares[p] = shares.get(p, 0.0) + w.weight
        common = {p for p, s in shares.items() if s / total >= PREDICATE_SHARE}
        col_types = types.get(table, {})
        for w in items:
            for key in _keys(w.scan):
                wheres = [None] + sorted(p for p in w.scan.predicates if p in common)
                for where in wheres:
                    c = Candidate(table, key, where)
                    bad = [col for col in key if not btree_type(col_types.get(col, ""))]
                    if bad:
                        skipped.setdefault(c, f"never a btree on {', '.join(bad)} "
                                              f"({col_types.get(bad[0], 'unknown type')})")
                        continue
                    ix = covered_by(c, existing)
                    if ix is not None:
                        skipped.setdefault(c, f"already served by {ix.name}")
                        continue
                    weight[c] = weight.get(c, 0.0) + w.weight
                    if w.queryid not in sources.setdefault(c, []):
                        sources[c].append(w.queryid)
    tried: list[Candidate] = []
    for table in sorted(by_table):
        ranked = sorted((c for c in weight if c.table == table),
                        key=lambda c: (-weight[c], len(c.columns), c.where is not None,
                                       c.columns, c.where or ""))
        tried += ranked[:max_per_table]
        for c in ranked[max_per_table:]:
            skipped[c] = f"more than {max_per_table} candidates on {table}: lighter ones not tried"
    return Candidates(tried, {c: sources[c] for c in tried},
                      sorted(skipped.items(), key=lambda kv: kv[0].label))


def index_name(c: Candidate, taken: set[str], derived=lambda name: []) -> str:
    """`<table>_<columns>[_<predicate>]_idx`, at most 63 bytes (cut, with 8 hex digits of
    a hash of the full name), neither it nor the names `derived(name)` gives (its
    partitions' indexes) one of `taken`."""
    table = c.table.split(".", 1)[1]
    parts = [table, *c.columns]
    if c.where:
        parts.append(c.where.lower().replace(" is not null", "_notnull").replace(" is null", "_null")
                     .replace("not ", "not_"))
    base = "_".join(parts) + "_idx"
    name = base
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore") + "_" + digest
    n = 2
    first = name
    while name in taken or taken & set(derived(name)):
        suffix = f"_{n}"
        name = first.encode()[: MAX_IDENTIFIER_BYTES - len(suffix)].decode(errors="ignore") + suffix
        n += 1
    taken.add(name)
    taken.update(derived(name))
    return name


def predicate_sql(where: str):
    """The SQL of a normalized predicate (parse.Scan.predicates' forms)."""
    from psycopg import sql

    if where.endswith(" IS NOT NULL"):
        return sql.SQL("{} IS NOT NULL").format(sql.Identifier(where[: -len(" IS NOT NULL")]))
    if where.endswith(" IS NULL"):
        return sql.SQL("{} IS NULL").format(sql.Identifier(where[: -len(" IS NULL")]))
    if where.startswith("NOT "):
        return sql.SQL("NOT {}").format(sql.Identifier(where[4:]))
    return sql.Identifier(where)


def index_tail(c: Candidate) -> str:
    """`USING btree (columns) [WHERE predicate]`, composed from identifiers."""
    from psycopg import sql

    tail = sql.SQL("USING btree ({})").format(sql.SQL(", ").join(sql.Identifier(x) for x in c.columns))
    if c.where:
        tail = sql.SQL("{} WHERE {}").format(tail, predicate_sql(c.where))
    return tail.as_string()


def create_sql(c: Candidate, name: str) -> str:
    from psycopg import sql

    schema, table = c.table.split(".", 1)
    return sql.SQL("CREATE INDEX {} ON {} {}").format(
        sql.Identifier(name), sql.Identifier(schema, table), sql.SQL(index_tail(c))).as_string()
