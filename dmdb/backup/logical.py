"""Backups: `pg_dump -Fc` and `pg_restore` with the server's own major version of the tools.

dmdb.server.tools finds them (the embedded package ships PostgreSQL 18's; pgserver's or
Debian's serve other majors). Passwords reach the tools through the environment
(PGPASSWORD), never their command line, where `ps` would show them. A dump holds users'
e-mail addresses: it is 0600 from its first byte (pg_dump writes into a file created so,
under umask 077), whatever the caller's umask.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from dmdb.config import Settings
from dmdb.db import connect, redact, resolve
from dmdb.errors import ConfigError, DmdbError
from dmdb.server import tools
from dmdb.server.tools import tool_env


@dataclass
class BackupResult:
    file: str
    database: str
    bytes: int
    seconds: float
    server_version: str
    pg_dump_version: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RestoreResult:
    file: str
    database: str
    created: bool
    seconds: float
    dry_run: bool = False
    entries: int = 0  # objects in the archive's table of contents

    def to_dict(self) -> dict:
        return asdict(self)


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def _fail(what: str, done: subprocess.CompletedProcess, settings: Settings) -> DmdbError:
    return DmdbError(f"{what} failed: {redact(_last_line(done), settings)}")


def _server_version(conn) -> tuple[str, int]:
    """(server_version, major) in one round trip."""
    text, num = conn.execute("SELECT current_setting('server_version'), "
                             "current_setting('server_version_num')::int").fetchone()
    return text, num // 10000


def backup(settings: Settings, out: Path | None = None) -> BackupResult:
    settings = resolve(settings)
    with connect(settings) as conn:
        server_version, major = _server_version(conn)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out or f"dmdb-{settings.dbname}-{stamp}.dump").absolute()
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    partial = out.with_name(out.name + ".partial")
    tool = tools.find("pg_dump", major)
    started = datetime.now(timezone.utc)
    # A left-over .partial may be someone else's or a link: start from a fresh 0600 file.
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    done = subprocess.run([tool.path, "--format=custom", "--file", str(partial)],
                          capture_output=True, text=True, env=tool_env(settings, settings.dbname),
                          umask=0o077)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise _fail("pg_dump", done, settings)
    partial.replace(out)  # a crash never leaves a truncated file under the final name
    return BackupResult(str(out), settings.dbname, out.stat().st_size,
                        round((datetime.now(timezone.utc) - started).total_seconds(), 2),
                        server_version, tool.version)


def _archive_entries(tool: str, file: Path, settings: Settings) -> int:
    done = subprocess.run([tool, "--list", str(file)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DmdbError(f"{file} is not a dump pg_restore can read ({_last_line(done)}); "
                        "give a file written by `dmdb backup` (pg_dump -Fc)")
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(";"))


def restore(settings: Settings, file: Path, into: str | None = None, *,
            dry_run: bool = False) -> RestoreResult:
    import psycopg
    from psycopg import sql

    settings = resolve(settings)
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such backup file")
    target = into or settings.dbname
    created = False
    started = datetime.now(timezone.utc)
    with connect(settings, autocommit=True, dbname="postgres") as admin:
        _, major = _server_version(admin)
        # Found before anything is created: no pg_restore, no new database.
        restore_tool = tools.find("pg_restore", major, exact=True).path
        entries = _archive_entries(restore_tool, file, settings)
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
        if exists:
            with connect(settings, dbname=target) as conn:
                tables = _table_count(conn)
            if tables:
                raise DmdbError(f"database {target} already holds {tables} tables; restore "
                                "into a new one with --into NAME")
        if dry_run:
            return RestoreResult(str(file.absolute()), target, not exists, 0.0, dry_run=True,
                                 entries=entries)
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            created = True
    done = subprocess.run(
        [restore_tool, "--exit-on-error", "--single-transaction", "--dbname", target,
         str(file)],
        capture_output=True, text=True, env=tool_env(settings, target),
    )
    if done.returncode != 0:
        if created:
            with connect(settings, autocommit=True, dbname="postgres") as admin:
                try:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(target)))
                except psycopg.Error:
                    pass
        raise _fail("pg_restore", done, settings)
    return RestoreResult(str(file.absolute()), target, created,
                         round((datetime.now(timezone.utc) - started).total_seconds(), 2),
                         entries=entries)


def _table_count(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchone()[0]
