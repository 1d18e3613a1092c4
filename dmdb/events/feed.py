"""Reading the event feed: one page after a position, and following it.

Every read is one short transaction of its own (nothing is set for the session, so it
works through PgBouncer in transaction mode): TimeZone UTC for the transaction, the
horizon pg_snapshot_xmin(pg_current_snapshot()), then the events after the position and
below that horizon, in (feed_tx, event_id) order (sql/queries/events_read.sql). A reader
never holds a transaction open between pages.

The optional wake-up (LISTEN dmdb_events, sent by the writers when
algorithm_settings.events_notify is on) needs a session of its own; polling stays the
authority: a lost notification only delays a page to the next poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import DmdbError
from dmdb.events.position import BEGINNING, Position, Target

if TYPE_CHECKING:
    import psycopg

NOTIFY_CHANNEL = "dmdb_events"
INDEX = "learning_events_feed_idx"


@dataclass(frozen=True)
class Event:
    """One event of the feed: its position, when it was written, and its JSON object
    (keys in docs/events.md) as the server rendered it."""

    position: Position
    recorded_at: datetime | None
    line: str

    def data(self) -> dict:
        import json

        return json.loads(self.line)


@dataclass
class Page:
    """The events after `after`, below `horizon` (its feed_tx), at most `limit` of them:
    fewer means the reader has caught up with the horizon."""

    after: Position
    horizon: int
    limit: int
    events: list[Event] = field(default_factory=list)

    @property
    def last(self) -> Position:
        return self.events[-1].position if self.events else self.after

    @property
    def caught_up(self) -> bool:
        return len(self.events) < self.limit


def _utc(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config('TimeZone', 'UTC', true)", prepare=False)


def require_feed(conn: psycopg.Connection) -> None:
    """Refuse, in one line, a database where the feed cannot be read yet: migrations 0014
    and 0015 not applied, or the feed index not built on partitions that held rows."""
    with conn.transaction():
        installed, valid, unindexed = conn.execute(resources.query("events_index_state"),
                                                   prepare=False).fetchone()
    if not installed or valid is None:
        raise DmdbError("the event feed is not installed in this database: run `dmdb up` "
                        "(migrations 0014_event_feed and 0015_event_feed_index)")
    if not valid:
        some = ", ".join(unindexed[:5]) + (", ..." if len(unindexed) > 5 else "")
        raise DmdbError(f"the event feed's index {INDEX} is not built on "
                        f"{len(unindexed)} partition(s) ({some}): without it each read scans "
                        "them; run `dmdb indexes build --table learning_events` (CONCURRENTLY: "
                        "writers are not blocked)")


def horizon(conn: psycopg.Connection) -> int:
    """The feed's horizon now: every transaction with a smaller id has ended."""
    with conn.transaction():
        return int(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
                                prepare=False).fetchone()[0])


def resolve(conn: psycopg.Connection, target: Target) -> Position:
    """The position a reader starting at `target` resumes after."""
    if target.kind == "beginning":
        return BEGINNING
    if target.kind == "position":
        return target.position
    if target.kind == "now":
        return Position(horizon(conn), 0)
    with conn.transaction():
        row = conn.execute(
            "SELECT feed_tx::text FROM learning_events WHERE event_id = %(id)s "
            "AND feed_tx IS NOT NULL UNION ALL SELECT feed_tx::text FROM event_tombstones "
            "WHERE event_id = %(id)s", {"id": target.event_id}).fetchone()
    if row is None:
        raise DmdbError(f"no event {target.event_id} in the feed (never written, written "
                        "before the feed existed, retired with its partition, or its learner "
                        "erased); give a position TX:ID instead")
    return Position(int(row[0]), target.event_id - 1)


def read_page(conn: psycopg.Connection, after: Position, limit: int = 1000) -> Page:
    """The events after `after` below the current horizon, at most `limit`."""
    with conn.transaction():
        _utc(conn)
        h = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
                         prepare=False).fetchone()[0]
        rows = conn.execute(resources.query("events_read"),
                            {"tx": str(after.tx), "id": after.id, "horizon": h, "limit": limit}
                            ).fetchall()
    return Page(after, int(h), limit,
                [Event(Position(int(tx), eid), at, line) for tx, eid, at, line in rows])


def set_notify(conn: psycopg.Connection, on: bool | None) -> bool:
    """Turn the writers' wake-up NOTIFY on or off (None: leave it); returns the setting."""
    with conn.transaction():
        if on is None:
            row = conn.execute("SELECT events_notify FROM algorithm_settings").fetchone()
        else:
            row = conn.execute("UPDATE algorithm_settings SET events_notify = %s, "
                               "updated_at = now() RETURNING events_notify", (on,)).fetchone()
    if row is None:
        raise DmdbError("algorithm_settings has no row; INSERT INTO algorithm_settings "
                        "DEFAULT VALUES restores the defaults")
    return bool(row[0])


def listen(conn: psycopg.Connection) -> None:
    """LISTEN for the writers' wake-up on a connection of its own (a session: never through
    a transaction pooler, where the LISTEN would stay on a shared server connection)."""
    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")


def wait_for_events(conn: psycopg.Connection, seconds: float, *, listening: bool,
                    sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait up to `seconds` before the next poll: for a wake-up when `listening` (True when
    one came), else just sleep."""
    if not listening:
        sleep(seconds)
        return False
    woke = any(True for _ in conn.notifies(timeout=seconds, stop_after=1))
    if woke:  # the others queued meanwhile say nothing more
        for _ in conn.notifies(timeout=0):
            pass
    return woke


def follow(conn: psycopg.Connection, after: Position, *, limit: int = 1000,
           poll: float = 1.0, forever: bool = True, listening: bool = False,
           stop: Callable[[], bool] | None = None) -> Iterator[Page]:
    """Pages of the feed after `after`, each as soon as it is read; when caught up, wait
    `poll` seconds (or a wake-up) and read again, until `stop()` or, without `forever`,
    the first time it is caught up."""
    position = after
    while True:
        page = read_page(conn, position, limit)
        if page.events:
            yield page
            position = page.last
        if stop is not None and stop():
            return
        if page.caught_up:
            if not forever:
                return
            wait_for_events(conn, poll, listening=listening)
