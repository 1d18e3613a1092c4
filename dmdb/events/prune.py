"""`dmdb events prune`: what the feed keeps only for its consumers, given back.

The feed's events are learning_events rows, which the platform keeps anyway (their
retention is `dmdb partitions`'): a consumer holds nothing of them on disk. What the
feed alone keeps is event_tombstones (the learner_erased events). prune deletes the
tombstones every live consumer has passed and, the retention limit, those older than
`max_age` whoever has not read them: a dead consumer cannot keep them forever, and it is
not left to skip them silently either: it is marked lost (consume refuses it, the monitor
reports it CRITICAL) until reset.

It also reports the learning_events partitions every live consumer has passed (their
last feed event is at or before the slowest position), for the partitions' retention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from psycopg import sql

from dmdb import resources
from dmdb.errors import ConfigError
from dmdb.events.position import Position
from dmdb.partitions.catalog import find_table, read_bounds

if TYPE_CHECKING:
    import psycopg

DEFAULT_MAX_AGE = timedelta(days=30)


@dataclass
class PartitionPassed:
    partition: str
    last_position: str | None  # its last feed event, None: no feed event in it
    passed: bool               # every live consumer is past it
    bytes: int


@dataclass
class PruneResult:
    dry_run: bool
    max_age_days: float
    slowest: str | None            # the slowest live consumer's position
    tombstones: int                # to delete (passed or past the limit)
    passed: int                    # of which every live consumer has read
    expired_unread: int            # of which past the limit, unread by some live consumer
    deleted: int
    lost_consumers: list[str]      # marked lost (dry run: would be)
    tombstones_left: int           # after the run (dry run: would be)
    tombstone_bytes: int
    partitions: list[PartitionPassed] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def prune(conn: psycopg.Connection, *, max_age: timedelta = DEFAULT_MAX_AGE,
          dry_run: bool = False) -> PruneResult:
    """Delete the tombstones every live consumer has passed and those older than
    `max_age` (marking the live consumers that had not read them lost); in one statement,
    so a consumer advancing meanwhile is judged on one snapshot."""
    if max_age <= timedelta(0):
        raise ConfigError("--max-age must be positive (the retention limit of tombstones "
                          "a live consumer has not read)")
    days = max_age.total_seconds() / 86400
    with conn.transaction():
        cutoff = conn.execute("SELECT now() - %s::interval", (max_age,)).fetchone()[0]
        row = conn.execute(resources.query("events_prune"),
                           {"cutoff": cutoff, "dry_run": dry_run,
                            "limit_text": f"--max-age {days:g} days"}).fetchone()
        slowest = conn.execute(
            "SELECT position_tx::text, position_id FROM event_consumers WHERE lost_at IS NULL "
            "ORDER BY position_tx, position_id LIMIT 1").fetchone()
    result = PruneResult(dry_run, days, f"{slowest[0]}:{slowest[1]}" if slowest else None,
                         row[0], row[1], row[2], row[3], list(row[4]),
                         row[6] - (row[0] if dry_run else row[3]), row[7])
    result.partitions = partitions_passed(
        conn, Position(int(slowest[0]), slowest[1]) if slowest else None)
    return result


def partitions_passed(conn: psycopg.Connection, slowest: Position | None) -> list[PartitionPassed]:
    """Each partition of learning_events (partitions.catalog is the one reader of bounds)
    with its last feed event (a backward scan of its feed index) and whether the slowest
    live consumer is past it."""
    oid = find_table(conn, "public.learning_events")
    if oid is None:
        return []
    out = []
    with conn.transaction():
        for p in read_bounds(conn, oid):
            ident = sql.Identifier(p.schema, p.name)
            last = conn.execute(sql.SQL(
                "SELECT feed_tx::text, event_id FROM {} WHERE feed_tx IS NOT NULL "
                "ORDER BY feed_tx DESC, event_id DESC LIMIT 1").format(ident)).fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s)", (p.oid,)).fetchone()[0]
            pos = Position(int(last[0]), last[1]) if last else None
            passed = slowest is not None and (pos is None or pos <= slowest)
            out.append(PartitionPassed(p.name, str(pos) if pos else None, passed, size))
    return out
