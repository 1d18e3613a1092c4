"""WAL positions and segment file names, pure: LSNs as PostgreSQL prints them
(`0/3000028`), segment names as the archiver writes them (`000000010000000000000003`:
timeline, then the segment number split in two 8-digit halves), and the order of an
archive's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
SEGMENT = re.compile(r"[0-9A-F]{24}")
HISTORY = re.compile(r"[0-9A-F]{8}\.history")


def is_lsn(text: str) -> bool:
    return bool(_LSN.fullmatch(text.strip()))


def parse_lsn(text: str) -> int:
    match = _LSN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an LSN (e.g. 0/3000028)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _per_id(segment_size: int) -> int:
    """Segments per "log id" (the first 8 hex digits after the timeline)."""
    return 0x100000000 // segment_size


def segment_number(lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return lsn // segment_size


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per = _per_id(segment_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def segment_of(timeline: int, lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The name of the segment file holding `lsn`."""
    return segment_name(timeline, segment_number(lsn, segment_size), segment_size)


@dataclass(frozen=True, order=True)
class Segment:
    segno: int
    timeline: int
    name: str

    def start_lsn(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
        return self.segno * segment_size


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment | None:
    """A segment file name as (segment number, timeline); None for any other file
    (.history, .partial, .backup, basic_archive's archtemp files)."""
    if not SEGMENT.fullmatch(name):
        return None
    timeline = int(name[:8], 16)
    segno = int(name[8:16], 16) * _per_id(segment_size) + int(name[16:], 16)
    return Segment(segno, timeline, name)
