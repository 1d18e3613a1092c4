"""`dmdb verify`: every rollback must be the exact inverse of its migration.

In a scratch database on the same server, for each migration in order: dump the schema,
apply, roll back, dump again and compare, then apply again to go on. The first migration
whose rollback leaves a different schema is named, with the first lines that differ.
"""

from __future__ import annotations

import difflib
import subprocess
import uuid
from dataclasses import asdict, dataclass, field

from dmdb.config import Settings
from dmdb.db import connect, resolve
from dmdb.errors import DmdbError
from dmdb.migrations import Project, apply_migration, rollback_migration


@dataclass
class VerifyStep:
    id: str
    ok: bool
    diff: list[str] = field(default_factory=list)


@dataclass
class VerifyResult:
    database: str
    steps: list[VerifyStep]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def first_failure(self) -> VerifyStep | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "database": self.database, "steps": [asdict(s) for s in self.steps]}


def dump_schema(settings: Settings, dbname: str) -> list[str]:
    """The schema as pg_dump prints it, less comments and per-run noise."""
    from dmdb.embedded import pg_tool
    from dmdb.pgtools import tool_env

    env = tool_env(settings, dbname)
    done = subprocess.run(
        [str(pg_tool("pg_dump")), "--schema-only", "--no-comments",
         "--exclude-table=_yoyo_*", "--exclude-table=_dmdb_*"],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pg_dump failed"])[-1]
        raise DmdbError(f"pg_dump of {dbname} failed: {last}")
    lines = []
    for line in done.stdout.splitlines():
        # \restrict carries a random key per dump (pg_dump 17.6+/18).
        if not line.strip() or line.startswith("--") or line.startswith(("\\restrict", "\\unrestrict")):
            continue
        lines.append(line)
    return lines


def verify(settings: Settings, project: Project, progress=None) -> VerifyResult:
    import psycopg
    from psycopg import sql

    settings = resolve(settings)
    scratch = f"dmdb_verify_{uuid.uuid4().hex[:10]}"
    with connect(settings, autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        except psycopg.errors.InsufficientPrivilege:
            raise DmdbError(
                f"verify needs to create a scratch database and {settings.user} may not; "
                "grant CREATEDB or run verify against a development server"
            ) from None
    steps: list[VerifyStep] = []
    try:
        with connect(settings, autocommit=True, dbname=scratch) as conn:
            conn.execute("SET client_min_messages = warning")
            for m in project.migrations():
                if m.rollback is None:
                    steps.append(VerifyStep(m.id, False, [f"no rollback file for {m.id}"]))
                    break
                if progress:
                    progress(m.id)
                before = dump_schema(settings, scratch)
                apply_migration(conn, m, record=False)
                rollback_migration(conn, m, record=False)
                after = dump_schema(settings, scratch)
                if before != after:
                    diff = list(difflib.unified_diff(before, after, "before", "after rollback",
                                                     lineterm="", n=1))
                    steps.append(VerifyStep(m.id, False, diff[:60]))
                    break
                apply_migration(conn, m, record=False)
                steps.append(VerifyStep(m.id, True))
    finally:
        with connect(settings, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )
    return VerifyResult(scratch, steps)
