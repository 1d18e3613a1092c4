"""Running PostgreSQL's backup tools: the child dies with dmdb, its progress is read as it
comes, and a failure is reported by its error line.

A SIGKILLed dmdb must not leave a pg_basebackup writing on into a directory the next
backup clears: the children get PR_SET_PDEATHSIG (Linux), so they end with their parent.
pg_basebackup forks a WAL streamer of its own that outlives a killed pg_basebackup (it
keeps the write end of the pipe it waits on): with `group`, the tool runs in a process
group of its own under a shell that, when dmdb dies, ends the whole group.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Done:
    returncode: int
    stdout: str
    lines: list[str]  # stderr, one entry per line (\r-separated progress lines included)

    def error_line(self) -> str:
        """The line that names the failure: the first error (later ones are often the
        clean-up after it), else the last line."""
        lines = [ln.strip() for ln in self.lines if ln.strip()]
        errors = [ln for ln in lines if re.search(r"error:|FATAL:|ERROR:|fatal:", ln)]
        if errors:
            return errors[0]
        return lines[-1] if lines else f"exit {self.returncode}"


# sh -c GROUP "sh" tool args...: the tool in the background, its status passed on; on
# SIGTERM (dmdb died: PR_SET_PDEATHSIG) every process of the group gets one too.
_GROUP = ("trap 'trap \"\" TERM; kill -TERM 0 2>/dev/null; exit 143' TERM; "
          '"$@" & wait $!')


def run(args: list[str], *, env: dict | None = None, on_line: Callable[[str], None] | None = None,
        cwd: str | None = None, group: bool = False, **kwargs) -> Done:
    """Run `args` (umask 077), reading stderr as it comes; `on_line` sees each line or
    progress update. Never raises for a non-zero exit: the caller names the failure."""
    import os
    import threading

    if group:
        args = ["/bin/sh", "-c", _GROUP, "sh", *args]
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=cwd, umask=0o077, preexec_fn=_die_with_parent, **kwargs)
    lines: list[str] = []
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    buffer = b""
    try:
        assert proc.stderr is not None
        while True:
            chunk = proc.stderr.read1(65536) if hasattr(proc.stderr, "read1") else proc.stderr.read(65536)
            if not chunk:
                break
            buffer += chunk
            parts = re.split(rb"[\r\n]", buffer)
            buffer = parts.pop()
            for part in parts:
                text = part.decode(errors="replace")
                if text.strip():
                    lines.append(text)
                    if on_line is not None:
                        on_line(text)
            if len(lines) > 2000:  # progress lines: keep what names a failure
                lines = lines[:100] + lines[-500:]
        if buffer.strip():
            lines.append(buffer.decode(errors="replace"))
        proc.wait()
        reader.join()
        stdout = b"".join(out).decode(errors="replace")
    except BaseException:
        if group:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            proc.kill()
        proc.wait()
        raise
    return Done(proc.returncode, stdout, lines)
