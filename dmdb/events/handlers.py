"""Handing a batch of events to a command: the batch on its stdin, one JSON object per
line; the consumer's position advances only when the command exits 0."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from dmdb.errors import DmdbError
from dmdb.events.feed import Event


class CommandFailed(DmdbError):
    """The command did not take the batch (non-zero exit, killed, or not runnable)."""


def run_command(command: str, events: Sequence[Event], *, consumer: str | None = None,
                timeout: float | None = None) -> None:
    """Run `command` with /bin/sh, the events on its stdin; raise CommandFailed unless it
    exits 0. Its environment adds DMDB_EVENTS_CONSUMER, DMDB_EVENTS_COUNT,
    DMDB_EVENTS_FIRST and DMDB_EVENTS_LAST (positions TX:ID)."""
    payload = "".join(e.line + "\n" for e in events).encode()
    env = dict(os.environ)
    env.update({"DMDB_EVENTS_CONSUMER": consumer or "", "DMDB_EVENTS_COUNT": str(len(events)),
                "DMDB_EVENTS_FIRST": str(events[0].position) if events else "",
                "DMDB_EVENTS_LAST": str(events[-1].position) if events else ""})
    what = (f"{len(events)} event(s) {events[0].position}..{events[-1].position}"
            if events else "an empty batch")
    try:
        done = subprocess.run(["/bin/sh", "-c", command], input=payload, env=env,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"the command did not finish within {timeout:g} s on {what}") from None
    except OSError as exc:
        raise CommandFailed(f"cannot run the command: {exc.strerror or exc}") from None
    if done.returncode != 0:
        how = (f"was killed by signal {-done.returncode}" if done.returncode < 0
               else f"exited with {done.returncode}")
        raise CommandFailed(f"the command {how} on {what}")
