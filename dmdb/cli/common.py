"""What several command groups print the same way."""

from __future__ import annotations

import sys


def show_target(target) -> None:
    """Name the database a command is about to change, first, on stderr (stdout stays the
    command's output: JSON, the SQL of a dry run): server, database, role, version; never
    the password."""
    sys.stderr.write(f"dmdb: target: {target.describe()}\n")
    sys.stderr.flush()


def announce(conn, settings, quiet: bool = False) -> None:
    """`show_target` for the database `conn` is connected to; nothing with --quiet."""
    if quiet:
        return
    from dmdb.db import target

    show_target(target(conn, settings))


def target_callback(quiet: bool = False):
    """`show_target` as the `on_target` callback of library functions that open their
    own connections (seed, reset, restore); None with --quiet."""
    return None if quiet else show_target
