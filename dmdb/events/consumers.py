"""The feed's consumers: each one's position in event_consumers, advanced only after its
batch was handled, by compare-and-set (a second process consuming under the same name
is refused at its first advance instead of both moving one position), and its lag.

`consume` is the loop: read a page after the position, hand it to `handle`, advance the
position to the page's last event; a handler that raises leaves the position where it
was, so the batch comes again (at-least-once: a process killed between handling and
advancing gets that batch once more on its next run).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dmdb import resources
from dmdb.errors import ConfigError, DmdbError
from dmdb.events.feed import Page, read_page, require_feed, resolve, wait_for_events
from dmdb.events.position import Position, Target

if TYPE_CHECKING:
    import psycopg

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,62}$")
LAG_CAP = 10_000_000  # events counted behind a consumer at most (the count reads an index range)


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise ConfigError(f"{name!r} is not a consumer name: 1 to 63 of letters, digits and "
                          "_ . : @ -, starting with a letter or digit")
    return name


@dataclass
class Consumer:
    name: str
    position: Position
    created_at: datetime
    advanced_at: datetime | None
    last_recorded_at: datetime | None
    events_handled: int
    warn_events: int
    critical_events: int
    warn_seconds: float
    critical_seconds: float
    lost_at: datetime | None
    lost_reason: str | None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["position"] = str(self.position)
        return d


_COLUMNS = ("name, position_tx::text, position_id, created_at, advanced_at, last_recorded_at, "
            "events_handled, warn_events, critical_events, warn_seconds, critical_seconds, "
            "lost_at, lost_reason")


def _consumer(row) -> Consumer:
    return Consumer(row[0], Position(int(row[1]), row[2]), *row[3:])


def _not_found(name: str) -> DmdbError:
    return DmdbError(f"no consumer {name}; `dmdb events list` shows them, and `dmdb events "
                     f"consume --consumer {name} --from now|beginning|TX:ID` creates it")


def get_consumer(conn: psycopg.Connection, name: str) -> Consumer | None:
    with conn.transaction():
        row = conn.execute(f"SELECT {_COLUMNS} FROM event_consumers WHERE name = %s",
                           (name,)).fetchone()
    return _consumer(row) if row else None


def list_consumers(conn: psycopg.Connection) -> list[Consumer]:
    with conn.transaction():
        rows = conn.execute(f"SELECT {_COLUMNS} FROM event_consumers ORDER BY name").fetchall()
    return [_consumer(r) for r in rows]


def create_consumer(conn: psycopg.Connection, name: str, start: Target) -> tuple[Consumer, bool]:
    """The consumer `name`, created at `start` when it does not exist: (consumer, created)."""
    check_name(name)
    position = resolve(conn, start)
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO event_consumers (name, position_tx, position_id) "
            f"VALUES (%s, %s::xid8, %s) ON CONFLICT (name) DO NOTHING RETURNING {_COLUMNS}",
            (name, str(position.tx), position.id)).fetchone()
    if row is not None:
        return _consumer(row), True
    return get_consumer(conn, name), False


def drop_consumer(conn: psycopg.Connection, name: str) -> Consumer:
    with conn.transaction():
        row = conn.execute(f"DELETE FROM event_consumers WHERE name = %s RETURNING {_COLUMNS}",
                           (name,)).fetchone()
    if row is None:
        raise _not_found(name)
    return _consumer(row)


def reset_consumer(conn: psycopg.Connection, name: str, to: Target, *,
                   dry_run: bool = False) -> tuple[Consumer, Position]:
    """Move a consumer to `to` (and clear its lost mark): (the consumer before, the new
    position). Its next batch starts after that position."""
    before = get_consumer(conn, name)
    if before is None:
        raise _not_found(name)
    position = resolve(conn, to)
    if not dry_run:
        with conn.transaction():
            conn.execute("UPDATE event_consumers SET position_tx = %s::xid8, position_id = %s, "
                         "advanced_at = now(), lost_at = NULL, lost_reason = NULL "
                         "WHERE name = %s", (str(position.tx), position.id, name))
    return before, position


def set_thresholds(conn: psycopg.Connection, name: str, **values: Any) -> Consumer:
    """Change a consumer's lag thresholds (warn_events, critical_events, warn_seconds,
    critical_seconds): `dmdb monitor`'s event_consumers check reads them."""
    import psycopg

    allowed = ("warn_events", "critical_events", "warn_seconds", "critical_seconds")
    changes = {k: v for k, v in values.items() if k in allowed and v is not None}
    if not changes:
        c = get_consumer(conn, name)
        if c is None:
            raise _not_found(name)
        return c
    from psycopg import sql

    sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k))
                              for k in changes)
    try:
        with conn.transaction():
            row = conn.execute(sql.SQL("UPDATE event_consumers SET {} WHERE name = {} "
                                       "RETURNING ").format(sets, sql.Placeholder("name"))
                               + sql.SQL(_COLUMNS), {**changes, "name": name}).fetchone()
    except psycopg.errors.CheckViolation:
        raise ConfigError("thresholds must be positive with warn <= critical, for events and "
                          "for seconds") from None
    if row is None:
        raise _not_found(name)
    return _consumer(row)


class ConsumerMoved(DmdbError):
    """Another process advanced or reset the consumer meanwhile."""


def advance(conn: psycopg.Connection, name: str, old: Position, new: Position, handled: int,
            recorded_at: datetime | None) -> None:
    """Move the position from `old` to `new` after `handled` events: only if it is still
    at `old` and not lost (compare-and-set), else ConsumerMoved."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE event_consumers SET position_tx = %s::xid8, position_id = %s, "
            "advanced_at = now(), last_recorded_at = coalesce(%s, last_recorded_at), "
            "events_handled = events_handled + %s "
            "WHERE name = %s AND position_tx = %s::xid8 AND position_id = %s AND lost_at IS NULL",
            (str(new.tx), new.id, recorded_at, handled, name, str(old.tx), old.id))
    if cur.rowcount != 1:
        raise ConsumerMoved(
            f"consumer {name} was moved by another process while this one handled "
            f"{old}..{new} (a second `dmdb events consume --consumer {name}`, a reset or a "
            "prune): its position was left as that process set it; run one consumer per name")


@dataclass
class ConsumeResult:
    consumer: str
    created: bool
    start: Position
    position: Position
    batches: int = 0
    events: int = 0
    caught_up: bool = False
    horizon: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"], d["position"] = str(self.start), str(self.position)
        return d


def consume(conn: psycopg.Connection, name: str, handle: Callable[[Page], None], *,
            start: Target | None = None, batch_size: int = 1000, follow: bool = False,
            poll: float = 1.0, max_batches: int | None = None, listening: bool = False,
            stop: Callable[[], bool] | None = None,
            on_batch: Callable[[Page, ConsumeResult], None] | None = None) -> ConsumeResult:
    """Hand the feed after the consumer's position to `handle`, one page (at most
    `batch_size` events) at a time, advancing the position after each page it handled.
    A missing consumer is created at `start` (refused without one). Ends when caught up
    (unless `follow`: then wait `poll` seconds or a wake-up and go on), after
    `max_batches`, or when `stop()` says so; a handler's exception propagates with the
    position unchanged."""
    check_name(name)
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    require_feed(conn)
    if start is not None:
        consumer, created = create_consumer(conn, name, start)
    else:
        consumer, created = get_consumer(conn, name), False
        if consumer is None:
            raise _not_found(name)
    if consumer.lost_at is not None:
        raise DmdbError(f"consumer {name} has lost events: {consumer.lost_reason} (at "
                        f"{consumer.lost_at:%Y-%m-%d %H:%M}); move it on with `dmdb events "
                        f"reset --consumer {name} --to now|TX:ID` once what it missed is "
                        "recovered from elsewhere")
    result = ConsumeResult(name, created, consumer.position, consumer.position)
    while True:
        page = read_page(conn, result.position, batch_size)
        result.horizon = page.horizon
        if page.events:
            handle(page)
            advance(conn, name, result.position, page.last, len(page.events),
                    page.events[-1].recorded_at)
            result.position = page.last
            result.batches += 1
            result.events += len(page.events)
            if on_batch is not None:
                on_batch(page, result)
        result.caught_up = page.caught_up
        if (max_batches is not None and result.batches >= max_batches) or (
                stop is not None and stop()):
            return result
        if page.caught_up:
            if not follow:
                return result
            wait_for_events(conn, poll, listening=listening)


@dataclass
class ConsumerLag:
    """How far a consumer is behind: events below the horizon after its position (at most
    LAG_CAP counted), and since when the first of them waits (its recorded_at)."""

    consumer: Consumer
    behind: int
    behind_capped: bool
    seconds: float
    next_recorded_at: datetime | None
    horizon: int
    status: str = "OK"
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.consumer.to_dict(), "behind": self.behind,
                "behind_capped": self.behind_capped, "seconds_behind": self.seconds,
                "next_recorded_at": self.next_recorded_at, "horizon": str(self.horizon),
                "status": self.status, "problems": self.problems}


def oldest_partition_start(conn: psycopg.Connection) -> datetime | None:
    """Where the oldest monthly partition of learning_events kept begins (None: none);
    partitions.catalog is the one reader of bounds."""
    from dmdb.partitions.catalog import find_table, read_bounds

    with conn.transaction():
        oid = find_table(conn, "public.learning_events")
        starts = [b.lo for b in (read_bounds(conn, oid) if oid else [])
                  if b.lo is not None and not b.is_default]
    return min(starts) if starts else None


def lag(conn: psycopg.Connection, name: str | None = None) -> list[ConsumerLag]:
    """Every consumer's lag (or `name`'s), judged against its own thresholds: WARNING at
    warn_events / warn_seconds, CRITICAL at the critical ones, or when it lost events, or
    when its last handled event is older than the oldest partition kept (the partitions it
    had not read may have been retired)."""
    oldest = oldest_partition_start(conn)
    with conn.transaction():
        rows = conn.execute(resources.query("events_lag"), {"name": name, "cap": LAG_CAP}
                            ).fetchall()
    if name is not None and not rows:
        raise _not_found(name)
    out = []
    for r in rows:
        c = _consumer(r[:13])
        behind, next_at, now, h = r[13], r[14], r[15], int(r[16])
        seconds = max(0.0, (now - next_at).total_seconds()) if next_at is not None else 0.0
        item = ConsumerLag(c, behind, behind >= LAG_CAP, round(seconds, 3), next_at, h)
        _judge(item, oldest)
        out.append(item)
    return out


def _judge(item: ConsumerLag, oldest_partition_start: datetime | None) -> None:
    c = item.consumer
    level = 0
    if c.lost_at is not None:
        level = 2
        item.problems.append(f"lost events: {c.lost_reason}")
    if (oldest_partition_start is not None and c.last_recorded_at is not None
            and c.last_recorded_at < oldest_partition_start and item.behind > 0):
        level = 2
        item.problems.append(
            f"its last event was written {c.last_recorded_at:%Y-%m-%d %H:%M}, before the "
            f"oldest partition kept ({oldest_partition_start:%Y-%m-%d}): events it had not "
            "read may have been retired with their partitions")
    for value, warn, crit, unit in ((item.behind, c.warn_events, c.critical_events, "events"),
                                    (item.seconds, c.warn_seconds, c.critical_seconds, "s")):
        if value >= crit:
            level = max(level, 2)
            item.problems.append(f"{value:,.0f} {unit} behind (critical {crit:,.0f})")
        elif value >= warn:
            level = max(level, 1)
            item.problems.append(f"{value:,.0f} {unit} behind (warning {warn:,.0f})")
    item.status = ("OK", "WARNING", "CRITICAL")[level]


def oldest_writer(conn: psycopg.Connection) -> dict | None:
    """The oldest transaction holding the feed's horizon back (any database of the server),
    or None."""
    from psycopg.rows import dict_row

    with conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(resources.query("events_oldest_writer")).fetchone()
