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
from dmdb.db import connect, extensions_refused, resolve
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
    # server settings: the replay keeps the live server's; on the live server it would
    # change them)
    not_replayed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where it replayed, when that matters

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def first_failure(self) -> VerifyStep | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "database": self.database, "steps": [asdict(s) for s in self.steps],
                "not_replayed": self.not_replayed, "notes": self.notes}


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


def dump_objects(settings: Settings, dbname: str, *, privileges: bool = True,
                 exclude_schemas: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The schema as pg_dump objects: {"TYPE schema.name": its SQL lines}, ownership left
    out (who ran the DDL is not the schema); `exclude_schemas` left out whole."""
    extra = ["--no-owner"] + ([] if privileges else ["--no-privileges"])
    extra += [f"--exclude-schema={name}" for name in exclude_schemas]
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


def restore_schema(settings: Settings, source: str, target: Scratch) -> list[str]:
    """Copy `source`'s schema (no data, no ownership, no grants) into the empty `target`.

    Returns the extensions left out: those this role may not create (pg_stat_statements
    installed by an administrator for an owner that is not superuser). Each is tried, not
    inferred from rolsuper: rds_superuser and its kin may create some."""

    # transaction_timeout: set by pg_dump 17+, unknown to a PostgreSQL 16 server.
    lines = [line for line in _pg_dump(settings, source, "--no-owner",
                                       "--no-privileges").splitlines()
             if not line.startswith(("\\restrict", "\\unrestrict", "SET transaction_timeout"))]
    extensions = sorted({m[1] for m in map(_EXTENSION_LINE.match, lines) if m})
    with connect(target.settings, autocommit=True, dbname=target.name) as conn:
        conn.execute("SET client_min_messages = warning")
        left_out = sorted(extensions_refused(conn, extensions))
        conn.execute("\n".join(line for line in lines
                               if not ((m := _EXTENSION_LINE.match(line)) and m[1] in left_out)))
    return left_out


@dataclass(frozen=True)
class Scratch:
    """A scratch database: where it is (`settings`, its server), its name, and in words."""

    settings: Settings
    name: str
    where: str  # "a throw-away PostgreSQL 18 cluster" | "the live server"
    note: str | None = None  # what the user should know about it (a checkpoint forced)


def _server_facts(settings: Settings) -> dict:
    """What a scratch cluster mirrors of the live server: major version, the database's
    owner (the role that runs migrations, whoever logs in to check them: a monitoring
    login may only read) with its attributes and memberships, the other roles, and the
    extensions of the database."""
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000, r.rolname,"
            " r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolinherit, r.rolbypassrls"
            " FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
            " WHERE d.datname = current_database()").fetchone()
        roles = [r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND oid >= 16384")]
        member_of = [r[0] for r in conn.execute(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            "WHERE m.member = (SELECT datdba FROM pg_database "
            "                  WHERE datname = current_database())")]
        extensions = [r[0] for r in conn.execute("SELECT extname FROM pg_extension")]
    keys = ("major", "user", "superuser", "createrole", "createdb", "inherit", "bypassrls")
    facts = {**dict(zip(keys, row)), "roles": roles, "member_of": member_of,
             "extensions": extensions}
    facts["owner"] = facts["user"]
    return facts


def _mirror(admin, facts: dict) -> None:
    """The live server's roles in the scratch cluster (NOLOGIN; the login role with its
    attributes and memberships), so that a replay grants and owns as it would there;
    cluster-wide statements are not replayed (see files.CLUSTER_WIDE)."""
    import psycopg
    from psycopg import sql

    existing = {r[0] for r in admin.execute("SELECT rolname FROM pg_roles")}
    for name in facts["roles"]:
        if name not in existing:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    user = facts["user"]
    if user not in existing and user not in facts["roles"]:
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(user)))
    if user != SCRATCH_SUPERUSER:
        flags = [("SUPERUSER" if facts["superuser"] else "NOSUPERUSER"),
                 ("CREATEROLE" if facts["createrole"] else "NOCREATEROLE"),
                 ("CREATEDB" if facts["createdb"] else "NOCREATEDB"),
                 ("INHERIT" if facts["inherit"] else "NOINHERIT"),
                 ("BYPASSRLS" if facts["bypassrls"] else "NOBYPASSRLS"), "LOGIN"]
        admin.execute(sql.SQL("ALTER ROLE {} " + " ".join(flags)).format(sql.Identifier(user)))
    for group in facts["member_of"]:
        try:
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group),
                                                          sql.Identifier(user)))
        except psycopg.Error:  # a role of the live server's that is not here: not needed
            pass


SCRATCH_SUPERUSER = "postgres"


def _cluster_fits(facts: dict) -> bool:
    """A throw-away cluster can stand in for the live server: the embedded package is of
    its major version (pg_dump prints each major's catalog differently) and has every
    extension the live database has. DMDB_SCRATCH=server forces the live server."""
    import os

    from dmdb.server.embedded import embedded_major

    if os.environ.get("DMDB_SCRATCH", "").lower() == "server":
        return False
    return embedded_major() == facts["major"]


@contextmanager
def scratch_database(settings: Settings, purpose: str = "verify", *,
                     cluster: bool = True) -> Iterator[Scratch]:
    """A throw-away database for a replay, dropped whatever happens.

    In a throw-away cluster of the live server's major version when the embedded package
    is that version and has the database's extensions: nothing on the live server, which
    a DROP DATABASE there would make checkpoint (every time). Otherwise on the live server
    (`Scratch.note` says so). `cluster=False`: on `settings`' server, as asked (a
    --scratch-url server)."""
    name = f"dmdb_{purpose}_{uuid.uuid4().hex[:10]}"
    facts = _server_facts(settings)
    if cluster and _cluster_fits(facts):
        with _in_cluster(settings, facts, name) as scratch:
            if scratch is not None:
                yield scratch
                return
    with _on_server(settings, purpose, name, facts, live=cluster) as scratch:
        yield scratch


@contextmanager
def _in_cluster(settings: Settings, facts: dict, name: str) -> Iterator[Scratch | None]:
    """The scratch database in a throw-away cluster; None when it lacks an extension of
    the live database (the caller goes to the live server)."""
    from dataclasses import replace

    import psycopg
    from psycopg import sql

    from dmdb.server.embedded import scratch_cluster

    with scratch_cluster() as info:
        admin_settings = Settings(host=info.socket_dir, port=info.port, dbname="postgres",
                                  user=SCRATCH_SUPERUSER)
        with psycopg.connect(**admin_settings.conninfo(), autocommit=True) as admin:
            available = {r[0] for r in admin.execute("SELECT name FROM pg_available_extensions")}
            if not set(facts["extensions"]) <= available:
                yield None
                return
            _mirror(admin, facts)
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(facts["owner"])))
        yield Scratch(replace(admin_settings, dbname=name, user=facts["user"],
                              lock_timeout=settings.lock_timeout),
                      name, f"a throw-away PostgreSQL {facts['major']} cluster")


@contextmanager
def _on_server(settings: Settings, purpose: str, name: str, facts: dict, *,
               live: bool = True) -> Iterator[Scratch]:
    """The scratch database on the live server, dropped (FORCE) at the end: that DROP
    DATABASE forces a checkpoint there, and the note says so."""
    import psycopg
    from psycopg import sql

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
    note = None if not live else (
        f"replayed in a scratch database of the live server (no throw-away PostgreSQL "
        f"{facts['major']} cluster at hand here: the embedded package is "
        f"PostgreSQL {_embedded_label()}, or lacks an extension of the database, or "
        "DMDB_SCRATCH=server): its DROP DATABASE forces a checkpoint there")
    try:
        yield Scratch(settings, name, "the live server" if live else "the scratch server",
                      note)
    finally:
        with connect(settings, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _embedded_label() -> str:
    from dmdb.server.embedded import embedded_major

    major = embedded_major()
    return str(major) if major is not None else "not installed"


def verify(settings: Settings, project: Project, progress=None) -> VerifyResult:
    settings = resolve(settings.session())
    connect(settings, session="dmdb verify").close()  # a scratch database needs the server itself
    steps: list[VerifyStep] = []
    not_replayed: list[str] = []
    with scratch_database(settings) as scratch, \
            connect(scratch.settings, autocommit=True, dbname=scratch.name) as conn:
        conn.execute("SET client_min_messages = warning")
        for m in project.migrations():
            if m.rollback is None:
                steps.append(VerifyStep(m.id, False, [f"no rollback file for {m.id}"]))
                break
            if progress:
                progress(m.id)
            m, left_out = for_scratch_replay(m)
            not_replayed += left_out
            before = dump_schema(scratch.settings, scratch.name)
            apply_migration(conn, m, record=False)
            rollback_migration(conn, m, record=False)
            after = dump_schema(scratch.settings, scratch.name)
            if before != after:
                diff = list(difflib.unified_diff(before, after, "before", "after rollback",
                                                 lineterm="", n=1))
                steps.append(VerifyStep(m.id, False, diff[:60]))
                break
            apply_migration(conn, m, record=False)
            steps.append(VerifyStep(m.id, True))
    return VerifyResult(scratch.name, steps, not_replayed,
                        notes=[scratch.note] if scratch.note else [])
