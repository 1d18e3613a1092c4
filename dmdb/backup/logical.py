"""Backups: `pg_dump -Fc` and `pg_restore` with the server's own major version of the tools.

dmdb.server.tools finds them (the embedded package ships PostgreSQL 18's; pgserver's or
Debian's serve other majors). Passwords reach the tools through the environment
(PGPASSWORD), never their command line, where `ps` would show them. A dump holds users'
e-mail addresses: it is 0600 from its first byte (pg_dump writes into a file created so,
under umask 077), whatever the caller's umask.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dmdb.config import Settings
from dmdb.db import connect, extensions_refused, redact, resolve
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
    # Learners erased on the live database after the dump was taken, erased again in the
    # restored copy before it is handed over.
    erasures_reapplied: list[int] = field(default_factory=list)
    # Extensions of the archive that this role may not create (pg_stat_statements for an
    # owner that is not superuser): left out of the restore, and named.
    left_out: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def _error_line(done: subprocess.CompletedProcess) -> str:
    """The line that says what went wrong: pg_restore ends with "Command was: ...", the
    statement, after the error itself."""
    lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "FATAL:" in ln or "ERROR:" in ln]
    return errors[-1] if errors else (lines[-1] if lines else f"exit {done.returncode}")


def _fail(what: str, done: subprocess.CompletedProcess, settings: Settings) -> DmdbError:
    return DmdbError(f"{what} failed: {redact(_error_line(done), settings)}")


def _server_version(conn) -> tuple[str, int]:
    """(server_version, major) in one round trip."""
    text, num = conn.execute("SELECT current_setting('server_version'), "
                             "current_setting('server_version_num')::int").fetchone()
    return text, num // 10000


def backup(settings: Settings, out: Path | None = None, *, force: bool = False,
           progress=None) -> BackupResult:
    """`pg_dump -Fc` of the database into `out`. `progress(bytes written so far)` is
    called about five times a second while pg_dump runs."""
    # pg_dump sets session parameters (search_path, ...) that would stay on a pooled
    # server connection: a dump goes to DMDB_DIRECT_URL, or is refused through a pooler.
    settings = resolve(settings.session())
    with connect(settings, session="dmdb backup") as conn:
        server_version, major = _server_version(conn)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out or f"dmdb-{settings.dbname}-{stamp}.dump").absolute()
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    if (out.exists() or out.is_symlink()) and not force:
        raise ConfigError(f"--out {out} already exists; pass --force to replace it (only once "
                          "the new dump is complete), or choose another file")
    partial = out.with_name(out.name + ".partial")
    tool = tools.find("pg_dump", major, settings=settings)
    started = datetime.now(timezone.utc)
    # A left-over .partial may be someone else's or a link: start from a fresh 0600 file.
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    done = _run_watching([tool.path, "--format=custom", "--file", str(partial)],
                         env=tool_env(settings, settings.dbname), watch=partial,
                         progress=progress)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise _fail("pg_dump", done, settings)
    partial.replace(out)  # a crash never leaves a truncated file under the final name
    return BackupResult(str(out), settings.dbname, out.stat().st_size,
                        round((datetime.now(timezone.utc) - started).total_seconds(), 2),
                        server_version, tool.version)


def _run_watching(args: list[str], *, env: dict, watch: Path, progress
                  ) -> subprocess.CompletedProcess:
    """subprocess.run(args) under umask 077, calling `progress(size of watch)` while it
    runs (without progress: subprocess.run itself)."""
    if progress is None:
        return subprocess.run(args, capture_output=True, text=True, env=env, umask=0o077)
    import tempfile
    import time

    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env, umask=0o077)
        try:
            while proc.poll() is None:
                try:
                    progress(watch.stat().st_size)
                except OSError:
                    pass
                time.sleep(0.2)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())


def _archive_entries(tool: str, file: Path, settings: Settings) -> list[str]:
    """The archive's table of contents, one line an entry (`pg_restore --list`)."""
    done = subprocess.run([tool, "--list", str(file)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DmdbError(f"{file} is not a dump pg_restore can read ({_last_line(done)}); "
                        "give a file written by `dmdb backup` (pg_dump -Fc)")
    return [line for line in done.stdout.splitlines() if line and not line.startswith(";")]


# "215; 3079 16385 EXTENSION - pg_stat_statements" and its "COMMENT - EXTENSION name".
_EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(\S+)")


def restore(settings: Settings, file: Path, into: str | None = None, *,
            dry_run: bool = False, no_owner: bool = False, on_target=None) -> RestoreResult:
    """Restore a `dmdb backup` file into an empty or new database, in one transaction.

    `no_owner` restores every object as the connected role (pg_restore --no-owner): for a
    dump taken on another server, whose owner role does not exist here or is not ours."""
    from psycopg import sql

    named = settings
    settings = resolve(settings.session())
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such backup file")
    target = into or settings.dbname
    created = False
    started = datetime.now(timezone.utc)
    with connect(settings, autocommit=True, dbname="postgres",
                 session=None if dry_run else "dmdb restore") as admin:
        if on_target is not None:
            from dataclasses import replace

            from dmdb.db import target as target_of

            on_target(replace(target_of(admin, named), database=target))
        _, major = _server_version(admin)
        # Found before anything is created: no pg_restore, no new database.
        restore_tool = tools.find("pg_restore", major, exact=True, settings=settings).path
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
                                 entries=len(entries))
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            created = True
    extensions = {m[1] for m in map(_EXTENSION_ENTRY.match, entries) if m}
    try:
        with connect(settings, autocommit=True, dbname=target) as conn:
            refused = extensions_refused(conn, extensions)
        done = _pg_restore(restore_tool, file, target, settings, entries, refused, no_owner)
    except BaseException:
        _drop_created(settings, target, created)
        raise
    if done.returncode != 0:
        _drop_created(settings, target, created)
        raise _fail("pg_restore", done, settings)
    reapplied = _reapply_erasures(settings, target, restore_tool, file)
    return RestoreResult(str(file.absolute()), target, created,
                         round((datetime.now(timezone.utc) - started).total_seconds(), 2),
                         entries=len(entries), erasures_reapplied=reapplied,
                         left_out=[f"EXTENSION {name}: this role may not create it; an "
                                   f"administrator can run CREATE EXTENSION {name} in {target}"
                                   for name in sorted(refused)])


def _pg_restore(tool: str, file: Path, target: str, settings: Settings, entries: list[str],
                refused: set[str], no_owner: bool) -> subprocess.CompletedProcess:
    """pg_restore in one transaction, stopping at the first error; the entries of
    `refused` extensions commented out of its list (`--use-list`)."""
    import tempfile

    args = [tool, "--exit-on-error", "--single-transaction", "--dbname", target]
    if no_owner:
        args.append("--no-owner")
    with tempfile.TemporaryDirectory(prefix="dmdb-restore-") as scratch:
        if refused:
            listing = Path(scratch) / "toc.list"
            listing.write_text("".join(
                (";" if (m := _EXTENSION_ENTRY.match(line)) and m[1] in refused else "")
                + line + "\n" for line in entries))
            args += ["--use-list", str(listing)]
        return subprocess.run([*args, str(file)], capture_output=True, text=True,
                              env=tool_env(settings, target))


def _dump_time(tool: str, file: Path) -> datetime | None:
    """When pg_dump took the archive (its header's "Archive created at")."""
    done = subprocess.run([tool, "--list", str(file)], capture_output=True, text=True)
    match = re.search(r"^;\s+Archive created at (.+)$", done.stdout, re.MULTILINE)
    if not match:
        return None
    text = match.group(1).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _reapply_erasures(settings: Settings, target: str, tool: str, file: Path) -> list[int]:
    """The live database's erasures made after the dump, applied to the restored copy."""
    from dmdb.privacy.erase import reapply
    from dmdb.privacy.inventory import inventory

    if target == settings.dbname:
        return []  # restored over the live database itself: its ledger is the dump's
    since = _dump_time(tool, file)
    if since is None:
        return []
    with connect(settings, autocommit=True) as live, \
            connect(settings, autocommit=True, dbname=target) as restored:
        return reapply(live, restored, since, inventory(restored, settings.sql_dir))


def _drop_created(settings: Settings, target: str, created: bool) -> None:
    """A failed restore leaves no half database behind: the one it created is dropped."""
    import psycopg
    from psycopg import sql

    if not created:
        return
    with connect(settings, autocommit=True, dbname="postgres") as admin:
        try:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(target)))
        except psycopg.Error:
            pass


def _table_count(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchone()[0]
