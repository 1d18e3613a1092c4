"""`dmdb indexes report`: unused and duplicate indexes, from the usage statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from dmdb import resources

if TYPE_CHECKING:
    import psycopg


UNUSED_MIN_SIZE_MB = 10.0


@dataclass
class ReportResult:
    stats_reset: object  # datetime | None: when the statistics were last reset
    min_size_mb: float
    indexes: list[dict]
    unused: list[dict]
    duplicates: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


_PUBLIC_KEYS = ("schema", "table", "index", "method", "size_bytes", "scans", "last_scan",
                "is_unique", "is_primary", "constraint_name", "partial", "expression", "valid",
                "partitioned", "leaf_indexes", "definition")


def _keys(row: dict) -> list[tuple]:
    n = row["key_count"]
    return list(zip(row["attnums"][:n], row["opclasses"][:n], row["collations"][:n],
                    row["options"][:n]))


def find_unused(rows: list[dict], min_size_bytes: int) -> list[dict]:
    """No scans since the statistics were reset, not unique, not backing a constraint,
    at least `min_size_bytes` (pghero's rule)."""
    return [r for r in rows
            if r["scans"] == 0 and not r["is_unique"] and not r["is_primary"]
            and r["constraint_name"] is None and r["valid"] and r["size_bytes"] >= min_size_bytes]


def find_duplicates(rows: list[dict]) -> list[dict]:
    """Indexes made redundant by another on the same table with the same method whose key
    columns (same operator classes, collations, order) start with all of theirs. Unique,
    partial and expression indexes are never reported, nor used as the covering index when
    partial or expression. Two identical indexes: the one with the later name is reported."""
    out = []
    for a in rows:
        if a["is_unique"] or a["partial"] or a["expression"] or not a["valid"] \
                or a["constraint_name"] is not None:
            continue
        ka = _keys(a)
        a_all = set(a["attnums"])
        for b in rows:
            if b is a or b["table_oid"] != a["table_oid"] or b["method"] != a["method"]:
                continue
            if b["partial"] or b["expression"] or not b["valid"]:
                continue
            kb = _keys(b)
            if kb[: len(ka)] != ka or not a_all <= set(b["attnums"]):
                continue
            if kb == ka and set(a["attnums"]) == set(b["attnums"]) and not b["is_unique"] \
                    and b["constraint_name"] is None and a["index"] < b["index"]:
                continue  # identical twins: report only the later name
            out.append({
                "schema": a["schema"], "table": a["table"], "index": a["index"],
                "covered_by": b["index"], "size_bytes": a["size_bytes"],
                "definition": a["definition"], "covering_definition": b["definition"],
            })
            break
    return out


def report(conn: psycopg.Connection, *, min_size_mb: float = UNUSED_MIN_SIZE_MB) -> ReportResult:
    from psycopg.rows import dict_row

    conn.execute("SELECT pg_stat_clear_snapshot()")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(resources.query("indexes_report")).fetchall()
        reset = cur.execute(resources.query("indexes_stats_reset")).fetchone()
    if not conn.autocommit:
        conn.rollback()
    min_bytes = int(min_size_mb * 1024 * 1024)

    def public(r: dict) -> dict:
        return {k: r[k] for k in _PUBLIC_KEYS}

    return ReportResult(
        stats_reset=reset["stats_reset"] if reset else None,
        min_size_mb=min_size_mb,
        indexes=[public(r) for r in rows],
        unused=[public(r) for r in find_unused(rows, min_bytes)],
        duplicates=find_duplicates(rows),
    )
