"""Which tried candidates to keep, and why each was kept or dropped (pure).

For a candidate and a statement of its table, the trial gives the generic plan's cost and
the measured time before and after the index. A statement is *served* when its plan uses
the index and its cost falls to at most half (dexter's rule). Over the workload's window
(pg_stat_statements since its reset):

- benefit = Σ over the served statements of calls × the time each call saves: the
  statement's mean time in the workload × (1 − measured time after / before), when every
  parameter of the timed runs came from a sampled row; else (a parameter no column tells
  about, such as `now() - $2`, got a stand-in value, or the statement could not be run)
  × (1 − cost after / before), the planner's estimate for any parameter;
- write cost = the rows the workload inserted into the table × the measured extra time
  per inserted row (the trial's write sample with and without the index; when noise
  makes it come out at zero or less, the insert time per row shared among the table's
  indexes and its heap is taken instead: an index is never free), plus for
  updated rows: an UPDATE that sets a column of the index is no longer HOT, and then
  inserts into every index of the table (the extra time × (indexes + 1) per row); an
  UPDATE that was not HOT already inserts into the new index too (the extra time);
- size: an index larger than its table is dropped.

A candidate is viable when it serves a statement and its benefit exceeds its write cost.
Per table, the viable candidates in order of net benefit (benefit − write cost, smaller
first on a tie) are kept while they serve a statement no kept one serves yet, at most
`max_per_table`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dmdb.optimize.candidates import Candidate, ExistingIndex
from dmdb.optimize.trial import CandidateTrial, Measure, TableTrial
from dmdb.optimize.workload import Statement

MAX_PER_TABLE = 3
COST_RATIO = 0.5  # a served statement's cost falls to at most this share
MAX_SIZE_RATIO = 1.0  # an index larger than this share of its table is dropped


@dataclass
class Evidence:
    queryid: str
    query: str
    calls: int
    mean_ms: float
    cost_before: float | None
    cost_after: float | None
    ms_before: float | None
    ms_after: float | None
    saving_from: str  # "time" (measured, sampled values) | "cost" (the generic plans)
    plan_before: str | None
    plan_after: str | None
    uses_index: bool
    served: bool
    saved_ms: float  # over the window: calls × time saved per call
    error: str | None = None


@dataclass
class Decision:
    table: str
    columns: list[str]
    where: str | None
    name: str
    definition: str  # as built in the trial (CREATE INDEX ...)
    kept: bool
    reason: str
    benefit_ms: float = 0.0
    write_cost_ms: float = 0.0
    size_bytes: int | None = None
    build_ms: float | None = None
    insert_ms_per_row_before: float | None = None
    insert_ms_per_row_after: float | None = None
    rows_inserted: int = 0
    rows_updated: int = 0
    write_cost_from: str = "measured"  # measured | estimated (see extra_ms_per_row)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def net_ms(self) -> float:
        return self.benefit_ms - self.write_cost_ms

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.table, tuple(self.columns), self.where)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["net_ms"] = round(self.net_ms, 3)
        return data


@dataclass
class TableWrites:
    """What the workload wrote to one table over the window."""

    inserted: int = 0
    updates: list[tuple[list[str], int]] = field(default_factory=list)  # (SET columns, rows)


def _short(text: str, limit: int = 200) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _evidence(stmt: Statement, before: Measure, after: Measure) -> Evidence:
    ratio = None
    if before.cost and after.cost is not None:
        ratio = after.cost / before.cost
    uses = bool(after.indexes)
    served = uses and ratio is not None and ratio <= COST_RATIO
    if before.ms and after.ms is not None and before.sampled and after.sampled:
        time_ratio, source = after.ms / before.ms, "time"
    else:
        time_ratio, source = (ratio if ratio is not None else 1.0), "cost"
    saved = stmt.calls * stmt.mean_ms * max(0.0, 1.0 - time_ratio) if served else 0.0
    return Evidence(stmt.queryid, _short(stmt.query), stmt.calls, stmt.mean_ms,
                    before.cost, after.cost, before.ms, after.ms, source, before.plan,
                    after.plan, uses, served, saved, after.error or before.error)


def extra_ms_per_row(ct: CandidateTrial, tt: TableTrial,
                     existing: list[ExistingIndex]) -> tuple[float, str]:
    """(ms the index adds to each inserted row, "measured" | "estimated"): the write
    samples' difference; when it is not positive (noise), the insert time per row over
    the heap and the table's indexes, the new one included."""
    if ct.write.ms_per_row is None or tt.write.ms_per_row is None:
        return 0.0, "estimated"
    extra = ct.write.ms_per_row - tt.write.ms_per_row
    if extra > 0:
        return extra, "measured"
    return tt.write.ms_per_row / (len(existing) + 2), "estimated"


def write_cost(ct: CandidateTrial, tt: TableTrial, writes: TableWrites,
               existing: list[ExistingIndex], hot_columns: set[str]) -> float:
    extra, _ = extra_ms_per_row(ct, tt, existing)
    cols = set(ct.candidate.columns)
    if ct.candidate.where:
        cols.add(ct.candidate.where.removeprefix("NOT ").split(" IS ")[0])
    cost = writes.inserted * extra
    for set_cols, rows in writes.updates:
        touched = set(set_cols)
        if touched & hot_columns:
            cost += rows * extra  # not HOT already: one more index to insert into
        elif touched & cols:
            cost += rows * extra * (len(existing) + 1)  # no longer HOT: every index
    return cost


def decide(trials: list[TableTrial], statements: dict[str, Statement],
           writes: dict[str, TableWrites], existing: dict[str, list[ExistingIndex]],
           hot_columns: dict[str, set[str]], table_sizes: dict[str, int], *,
           max_per_table: int = MAX_PER_TABLE,
           max_size_ratio: float = MAX_SIZE_RATIO) -> list[Decision]:
    out: list[Decision] = []
    for tt in trials:
        w = writes.get(tt.table, TableWrites())
        viable: list[Decision] = []
        for ct in tt.candidates:
            c = ct.candidate
            d = Decision(tt.table, list(c.columns), c.where, ct.name, ct.definition, False, "",
                         size_bytes=ct.size_bytes, build_ms=ct.build_ms,
                         insert_ms_per_row_before=tt.write.ms_per_row,
                         insert_ms_per_row_after=ct.write.ms_per_row,
                         rows_inserted=w.inserted, rows_updated=sum(r for _, r in w.updates))
            out.append(d)
            if ct.error:
                d.reason = ct.error
                continue
            d.evidence = [_evidence(statements[q], tt.before[q], ct.after[q])
                          for q in tt.before if q in ct.after]
            d.evidence.sort(key=lambda e: -e.saved_ms)
            d.benefit_ms = sum(e.saved_ms for e in d.evidence)
            d.write_cost_ms = write_cost(ct, tt, w, existing.get(tt.table, []),
                                         hot_columns.get(tt.table, set()))
            d.write_cost_from = extra_ms_per_row(ct, tt, existing.get(tt.table, []))[1]
            used = [e for e in d.evidence if e.uses_index]
            size = table_sizes.get(tt.table) or 0
            if not used:
                d.reason = "no statement's plan uses it"
            elif not any(e.served for e in used):
                best = min((e.cost_after / e.cost_before for e in used
                            if e.cost_before and e.cost_after is not None), default=1.0)
                d.reason = (f"plans use it, but no statement's cost falls to half or less "
                            f"(best: {best:.0%} of before)")
            elif size and ct.size_bytes and ct.size_bytes > max_size_ratio * size:
                d.reason = (f"larger than its table ({ct.size_bytes} bytes, table {size} bytes)")
            elif d.benefit_ms <= d.write_cost_ms:
                d.reason = (f"write cost {d.write_cost_ms:.1f} ms >= benefit {d.benefit_ms:.1f} "
                            "ms over the window")
            else:
                viable.append(d)
        viable.sort(key=lambda d: (-d.net_ms, d.size_bytes or 0, len(d.columns), d.name))
        served_by: dict[str, str] = {}
        kept = 0
        for d in viable:
            mine = [e for e in d.evidence if e.served]
            fresh = [e for e in mine if e.queryid not in served_by]
            remaining = sum(e.saved_ms for e in fresh)
            if not fresh or remaining <= d.write_cost_ms:
                others = sorted({served_by[e.queryid] for e in mine if e.queryid in served_by})
                d.reason = f"its statements are better served by {', '.join(others)}"
                continue
            if kept >= max_per_table:
                d.reason = f"at most {max_per_table} per table; this one saves less"
                continue
            kept += 1
            d.kept = True
            d.reason = (f"serves {len(fresh)} statement(s): saves {remaining:.1f} ms over the "
                        f"window against {d.write_cost_ms:.1f} ms of extra write time")
            for e in fresh:
                served_by[e.queryid] = d.name
    out.sort(key=lambda d: (not d.kept, -d.net_ms if d.kept else 0, d.table, d.name))
    return out
