"""Positions in the event feed, and where a reader starts. Pure: no database.

A position is the (feed_tx, event_id) of the last event handled, written `TX:ID`; the
events after it are those with a greater pair. `beginning` is 0:0 (every event of the
feed); `now` is the horizon with id 0 (every event not yet below the horizon: the ones
committed from then on); an event id N starts just before event N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dmdb.errors import ConfigError

_POSITION = re.compile(r"^(\d{1,20}):(\d{1,19})$")
MAX_XID8 = 2**64 - 1
MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True, order=True)
class Position:
    """(feed_tx, event_id) of the last event handled: the feed resumes after it."""

    tx: int
    id: int

    def __str__(self) -> str:
        return f"{self.tx}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Position:
        m = _POSITION.match(text.strip())
        if not m or int(m[1]) > MAX_XID8 or int(m[2]) > MAX_BIGINT:
            raise ConfigError(f"{text!r} is not a feed position; a position is TX:ID, "
                              "e.g. 7391:120455 (as `dmdb events list` shows it)")
        return cls(int(m[1]), int(m[2]))


BEGINNING = Position(0, 0)


@dataclass(frozen=True)
class Target:
    """Where a reader starts: `kind` beginning | now | position | event."""

    kind: str
    position: Position | None = None
    event_id: int | None = None

    def __str__(self) -> str:
        if self.kind == "position":
            return str(self.position)
        if self.kind == "event":
            return f"event {self.event_id}"
        return self.kind


def parse_target(text: str) -> Target:
    """`beginning`, `now` (also `end`), a position TX:ID, or an event id."""
    word = text.strip().lower()
    if word in ("beginning", "start", "earliest"):
        return Target("beginning", BEGINNING)
    if word in ("now", "end", "latest"):
        return Target("now")
    if word.isdigit():
        if int(word) < 1 or int(word) > MAX_BIGINT:
            raise ConfigError(f"event id {text} is out of range")
        return Target("event", event_id=int(word))
    if ":" in word:
        return Target("position", Position.parse(word))
    raise ConfigError(f"{text!r}: say where to start: beginning, now, a position TX:ID "
                      "or an event id")
