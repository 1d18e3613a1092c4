"""Erasures re-applied to a restored copy before it is handed over (issue 27): a backup
taken before a learner was erased still holds them; the live database's privacy ledger
says who was erased after the copy's last transaction, and they are erased again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dmdb.config import Settings
from dmdb.db import connect
from dmdb.errors import ConnectError


@dataclass
class Reapplied:
    learners: list[int] = field(default_factory=list)
    note: str | None = None  # why nothing could be re-applied, when so


def reapply_to(settings: Settings, restored_url: str, since: datetime) -> Reapplied:
    """Erase again in the copy at `restored_url` the learners the live database (settings)
    erased after `since`. A live server that cannot be reached is said, not fatal: the
    copy may be what replaces it."""
    import psycopg

    from dmdb.privacy.erase import reapply
    from dmdb.privacy.inventory import inventory

    try:
        live = connect(settings, autocommit=True)
    except ConnectError as exc:
        return Reapplied(note=f"the live database cannot be read ({exc}): erasures made after "
                              f"{since.isoformat()} are not re-applied to the copy; run `dmdb "
                              "privacy requests` on the live ledger and erase them again")
    with live, psycopg.connect(restored_url, autocommit=True) as restored:
        return Reapplied(reapply(live, restored, since, inventory(restored, settings.sql_dir)))
