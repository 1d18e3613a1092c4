"""`dmdb verify`: every rollback must be the exact inverse of its migration.

In a scratch database on the same server, for each migration in order: dump the schema,
apply, roll back, dump again and compare, then apply again to go on. The first migration
whose rollback leaves a different schema is named, with the first lines that differ.

The scratch-database handling here (create, dump, restore, drop) serves `dmdb lint` and
`dmdb drift` too.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from dmdb.config import Settings
from dmdb.db import connect, resolve
from dmdb.errors import DmdbError
from dmdb.migrate.engine import Project, apply_migration, rollback_migration
from dmdb.migrate.files import for_scratch_replay


@dataclass
class VerifyStep:
    id: str
    ok: bool
    diff: list[str] = field(default_factory=list)


@dataclass
class VerifyResult:
    database: str
    steps: list[VerifyStep]
    # cluster-wide statements left out of the replay (roles, tablespaces, databases,
    # server settings: the scratch database shares the live server)
    not_replayed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def first_failure(self) -> VerifyStep | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "database": self.database, "steps": [asdict(s) for s in self.steps],
                "not_replayed": self.not_replayed}


@lru_cache(maxsize=8)
def _dump_tool(settings: Settings) -> str:
    """The embedded package's pg_dump for the embedded server; for any other, one of its
    major version or newer that speaks TLS where the settings require it."""
    from dmdb.server import tools
    from dmdb.server.embedded import pg_tool

    if settings.embedded:
        return str(pg_tool("pg_dump"))
    with connect(settings, autocommit=True) as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000"
                             ).fetchone()[0]
    return tools.find("pg_dump", major, settings=settings).path


def _pg_dump(settings: Settings, dbname: str, *extra: str) -> str:
    from dmdb.server.tools import tool_env

    env = tool_env(settings, dbname)
    done = subprocess.run(
        [_dump_tool(settings), "--schema-only", "--no-comments",
         "--exclude-table=_yoyo_*", "--exclude-table=_dmdb_*",
         # yoyo's own lock table, made by `yoyo apply/list` on a dmdb database
         "--exclude-table=yoyo_lock", *extra],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["pg_dump failed"]
        # The error itself, not the "detail: Query was: ..." after it.
        last = next((ln for ln in reversed(lines) if "error:" in ln), lines[-1])
        raise DmdbError(f"pg_dump of {dbname} failed: {last}")
    return done.stdout


def _noise(line: str) -> bool:
    # \restrict carries a random key per dump (pg_dump 17.6+/18).
    return not line.strip() or line.startswith(("\\restrict", "\\unrestrict"))


def dump_schema(settings: Settings, dbname: str) -> list[str]:
    """The schema as pg_dump prints it, less comments and per-run noise."""
    return [line for line in _pg_dump(settings, dbname).splitlines()
            if not _noise(line) and not line.startswith("--")]


_HEADER = re.compile(r"^-- Name: (?P<name>.*?); Type: (?P<type>[^;]+); Schema: (?P<schema>[^;]*);")


def dump_objects(settings: Settings, dbname: str, *, privileges: bool = True) -> dict[str, list[str]]:
    """The schema as pg_dump objects: {"TYPE schema.name": its SQL lines}, ownership left
    out (who ran the DDL is not the schema)."""
    extra = ["--no-owner"] + ([] if privileges else ["--no-privileges"])
    objects: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _pg_dump(settings, dbname, *extra).splitlines():
        match = _HEADER.match(line)
        if match:
            schema = match["schema"] if match["schema"] != "-" else ""
            key = f"{match['type']} {schema + '.' if schema else ''}{match['name']}"
            current = objects.setdefault(key, [])
            continue
        if current is None or _noise(line) or line.startswith("--"):
            continue
        current.append(line)
    return objects


_EXTENSION_LINE = re.compile(r"^(?:CREATE EXTENSION IF NOT EXISTS|COMMENT ON EXTENSION) (\S+)")


def restore_schema(settings: Settings, source: str, target: str) -> list[str]:
    """Copy `source`'s schema (no data, no ownership, no grants) into the empty `target`.

    Returns the extensions left out: those this role may not create (pg_stat_statements
    installed by an administrator for an owner that is not superuser). Each is tried, not
    inferred from rolsuper: rds_superuser and its kin may create some."""
    import psycopg
    from psycopg import sql

    # transaction_timeout: set by pg_dump 17+, unknown to a PostgreSQL 16 server.
    lines = [line for line in _pg_dump(settings, source, "--no-owner",
                                       "--no-privileges").splitlines()
             if not line.startswith(("\\restrict", "\\unrestrict", "SET transaction_timeout"))]
    extensions = sorted({m[1] for m in map(_EXTENSION_LINE.match, lines) if m})
    left_out = []
    with connect(settings, autocommit=True, dbname=target) as conn:
        conn.execute("SET client_min_messages = warning")
        for name in extensions:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(
                        sql.Identifier(name)))
            except psycopg.errors.InsufficientPrivilege:
                left_out.append(name)
        conn.execute("\n".join(line for line in lines
                               if not ((m := _EXTENSION_LINE.match(line)) and m[1] in left_out)))
    return left_out


@contextmanager
def scratch_database(settings: Settings, purpose: str = "verify") -> Iterator[str]:
    """A throw-away database on the same server, dropped (FORCE) whatever happens."""
    import psycopg
    from psycopg import sql

    name = f"dmdb_{purpose}_{uuid.uuid4().hex[:10]}"
    with connect(settings, autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            hint = (" (or give `dmdb drift --scratch-url` a server of the same major where "
                    "it may, e.g. the embedded one's `dmdb server url`)" if purpose == "drift"
                    else "")
            raise DmdbError(
                f"{purpose} needs to create a scratch database and {settings.user} may not; "
                f"grant CREATEDB or run {purpose} against a development server{hint}"
            ) from None
    try:
        yield name
    finally:
        with connect(settings, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def verify(settings: Settings, project: Project, progress=None) -> VerifyResult:
    settings = resolve(settings.session())
    connect(settings, session="dmdb verify").close()  # a scratch database needs the server itself
    steps: list[VerifyStep] = []
    not_replayed: list[str] = []
    with scratch_database(settings) as scratch, \
            connect(settings, autocommit=True, dbname=scratch) as conn:
        conn.execute("SET client_min_messages = warning")
        for m in project.migrations():
            if m.rollback is None:
                steps.append(VerifyStep(m.id, False, [f"no rollback file for {m.id}"]))
                break
            if progress:
                progress(m.id)
            m, left_out = for_scratch_replay(m)
            not_replayed += left_out
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
    return VerifyResult(scratch, steps, not_replayed)
