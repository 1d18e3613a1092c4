"""Writing generated files safely: private ones are 0600 (directories 0700) from the
moment they exist, whatever the umask, and values that go into line-based formats
(crontab, systemd units, pgbouncer.ini, userlists) cannot start a new line."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dmdb.errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def refuse_control(value: str, what: str) -> str:
    """`value` unchanged, or a ConfigError naming `what` when it holds a control character
    (a newline would add a line of the caller's choosing to the rendered file)."""
    match = _CONTROL.search(value)
    if match:
        raise ConfigError(f"{what} {value!r} holds a control character "
                          f"({match.group()!r}); remove it")
    return value


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with the last level 0700; an existing one is
    left as it is (it is the caller's)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write `text` to `path`, 0600 at creation (an existing file is made 0600 before a
    byte is written); never through a symbolic link (one planted in a shared directory
    would otherwise make the write land on its target). `mode` 0644 for a file without
    secrets that another user's service reads."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return Path(path)
