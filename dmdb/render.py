"""Renderers: the library returns data, these turn it into tables, JSON or plain lines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


def _default(value: Any):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


def print_json(data: Any) -> None:
    sys.stdout.write(to_json(data) + "\n")


# Widest a table printed to a pipe or file may grow (its natural width, up to this).
PIPE_MAX_WIDTH = 1000


def console(stderr: bool = False):
    """A rich console. On a terminal, its width; to a pipe or a file, rich would assume 80
    columns and cut the cells of a wider table (`models fit | cat`: concept names of 4
    characters, `0.67…`): there a table is printed at its natural width instead (COLUMNS,
    when set, is the width of everything else, as rich reads it)."""
    from rich.console import Console

    class _Console(Console):
        def print(self, *objects, **kwargs):
            if not self.is_terminal and objects:
                from rich.table import Table

                wide = self.options.update_width(PIPE_MAX_WIDTH)
                wanted = max((self.measure(o, options=wide).maximum for o in objects
                              if isinstance(o, Table)), default=0)
                if wanted > self.width:
                    kept = self._width
                    self.width = wanted  # print(width=) may only narrow
                    try:
                        return super().print(*objects, **kwargs)
                    finally:
                        self._width = kept
            return super().print(*objects, **kwargs)

    return _Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                    soft_wrap=True)


def error_line(message: str) -> None:
    """One line on stderr: `dmdb: error: ...`."""
    sys.stderr.write(f"dmdb: error: {message}\n")
    sys.stderr.flush()


def warning_line(message: str) -> None:
    sys.stderr.write(f"dmdb: warning: {message}\n")
    sys.stderr.flush()


def human_bytes(n: float | None) -> str:
    """A byte count in binary steps with PostgreSQL's unit names (`12.3 MB`, as
    pg_size_pretty); None (no size known) is blank."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def show_progress(quiet: bool = False) -> bool:
    """Progress bars only for a person at a terminal."""
    return not quiet and sys.stdout.isatty()


class activity:
    """A spinner with the elapsed time and a line saying what runs, on a terminal only
    (`enabled`, normally show_progress(...)), gone when done: for work of seconds that has
    no steps to count (one long statement, pg_dump). `update(text)` changes the line."""

    def __init__(self, text: str, enabled: bool):
        self.text, self.enabled, self._progress, self._task = text, enabled, None, None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=console(), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.text, total=None)
        return self

    def update(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


def plain_table(title: str, columns: tuple[str, ...], rows: list[tuple]) -> str:
    """Aligned columns without rich: `status` and a no-op `up` are run by scripts and
    deploy gates, and their start-up time is the command's cost (rich's import is ~10 %)."""
    cells = [tuple(str(c) for c in columns)] + [tuple("" if v is None else str(v) for v in r)
                                                for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [title]
    for n, row in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
