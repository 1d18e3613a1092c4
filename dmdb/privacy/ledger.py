"""The request ledger (dmdb_privacy.requests, migration 0018): one row per export or
erasure, naming the learner by a keyed hash only."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from dmdb.errors import DmdbError

if TYPE_CHECKING:
    import psycopg


@dataclass
class Request:
    request_id: int
    kind: str
    subject: str
    received_at: datetime
    completed_at: datetime
    counts: dict
    backups_clean_after: datetime | None
    requested_by: str
    reapplied_from: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def require_ledger(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('dmdb_privacy.requests') IS NULL").fetchone()[0]:
        raise DmdbError("the database has no privacy ledger (migration 0018); run `dmdb up`")


def subject_key(conn: psycopg.Connection) -> bytes:
    require_ledger(conn)
    row = conn.execute("SELECT key FROM dmdb_privacy.subject_key").fetchone()
    if row is None:
        raise DmdbError("dmdb_privacy.subject_key is empty; restore it from a backup (the "
                        "ledger's hashes cannot be matched without it)")
    return bytes(row[0])


def subject(key: bytes, user_id: int) -> str:
    """The learner as the ledger names it."""
    return hmac.new(key, f"user:{user_id}".encode(), hashlib.sha256).hexdigest()


def record(conn: psycopg.Connection, kind: str, subject_hash: str, received_at: datetime,
           counts: dict, backups_clean_after: datetime | None = None,
           reapplied_from: int | None = None) -> int:
    return conn.execute(
        "INSERT INTO dmdb_privacy.requests (kind, subject, received_at, counts, "
        "backups_clean_after, reapplied_from) VALUES (%s, %s, %s, %s, %s, %s) "
        "RETURNING request_id",
        (kind, subject_hash, received_at, json.dumps(counts), backups_clean_after,
         reapplied_from)).fetchone()[0]


def requests(conn: psycopg.Connection, *, since: datetime | None = None,
             kind: str | None = None) -> list[Request]:
    require_ledger(conn)
    rows = conn.execute(
        "SELECT request_id, kind, subject, received_at, completed_at, counts, "
        "backups_clean_after, requested_by, reapplied_from FROM dmdb_privacy.requests "
        "WHERE (%(since)s::timestamptz IS NULL OR completed_at > %(since)s) "
        "AND (%(kind)s::text IS NULL OR kind = %(kind)s) ORDER BY request_id",
        {"since": since, "kind": kind}).fetchall()
    return [Request(*r) for r in rows]
