"""Backups: `pg_dump -Fc` and `pg_restore` with the server's own major version of the tools.

dmdb.pgtools finds them (the embedded package ships PostgreSQL 18's; pgserver's or
Debian's serve other majors). Passwords reach the tools through the environment
(PGPASSWORD), never their command line, where `ps` would show them.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from dmdb.config import Settings
from dmdb.db import connect, redact, resolve
from dmdb.errors import ConfigError, DmdbError
from dmdb.pgtools import tool_env


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


def _tool(name: str, major: int, *, exact: bool = False) -> str:
    from dmdb import pgtools

    return pgtools.find(name, major, exact=exact).path


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.strip().split()[-1] if out.strip() else "unknown"


def _fail(what: str, done: subprocess.CompletedProcess, settings: Settings) -> DmdbError:
    lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
    return DmdbError(f"{what} failed: {redact(lines[-1] if lines else f'exit {done.returncode}', settings)}")


def backup(settings: Settings, out: Path | None = None) -> BackupResult:
    settings = resolve(settings)
    with connect(settings) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out or f"dmdb-{settings.dbname}-{stamp}.dump").absolute()
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    partial = out.with_name(out.name + ".partial")
    binary = _tool("pg_dump", major)
    started = datetime.now(timezone.utc)
    done = subprocess.run([binary, "--format=custom", "--file", str(partial)],
                          capture_output=True, text=True, env=tool_env(settings, settings.dbname))
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise _fail("pg_dump", done, settings)
    partial.replace(out)  # a crash never leaves a truncated file under the final name
    return BackupResult(str(out), settings.dbname, out.stat().st_size,
                        round((datetime.now(timezone.utc) - started).total_seconds(), 2),
                        server_version, _version(binary))


def _archive_entries(tool: str, file: Path, settings: Settings) -> int:
    done = subprocess.run([tool, "--list", str(file)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DmdbError(f"{file} is not a dump pg_restore can read ({_last_line(done)}); "
                        "give a file written by `dmdb backup` (pg_dump -Fc)")
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(";"))


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


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
        major = int(admin.execute("SHOW server_version_num").fetchone()[0]) // 10000
        restore_tool = _tool("pg_restore", major, exact=True)  # before anything is created
        entries = _archive_entries(restore_tool, file, settings)
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
        if dry_run:
            exists_tables = 0
            if exists:
                with connect(settings, dbname=target) as conn:
                    exists_tables = _table_count(conn)
            if exists_tables:
                raise DmdbError(f"database {target} already holds {exists_tables} tables; restore "
                                "into a new one with --into NAME")
            return RestoreResult(str(file.absolute()), target, not exists, 0.0, dry_run=True,
                                 entries=entries)
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            created = True
    if not created:
        with connect(settings, dbname=target) as conn:
            tables = _table_count(conn)
        if tables:
            raise DmdbError(
                f"database {target} already holds {tables} tables; restore into a new one with "
                "--into NAME"
            )
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
