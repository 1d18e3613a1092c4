"""Settings: command-line flags > environment > a `.env` file in the working directory.

`DATABASE_URL` overrides the `DB_*` keys. With neither `DATABASE_URL` nor `DB_HOST`
configured, dmdb uses its embedded PostgreSQL under `.dmdb/` (or `DMDB_HOME`).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from dmdb.errors import ConfigError

ENV_KEYS = (
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_MAX_CONNECTIONS",
    "DB_IDLE_TIMEOUT",
    "DB_CONNECT_TIMEOUT",
    "DB_SSLMODE",
    "DB_READ_REPLICA_HOST",
    "DB_READ_REPLICA_PORT",
    "DMDB_HOME",
    "DMDB_LOCK_TIMEOUT",
)

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_DURATION = re.compile(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h)?\s*")


def check_duration(value: str, name: str) -> str:
    """A PostgreSQL duration such as 2s, 500ms or 1min (a bare number is milliseconds)."""
    if not _DURATION.fullmatch(value or ""):
        raise ConfigError(f"{name} {value!r} is not a duration; write e.g. 2s or 500ms")
    return value.strip()


@dataclass(frozen=True)
class Settings:
    host: str | None = None
    port: int = 5432
    dbname: str = "dmdb"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    max_connections: int = 20
    idle_timeout: int = 600
    connect_timeout: int = 5
    sslmode: str | None = None
    read_replica_host: str | None = None
    read_replica_port: int | None = None
    home: Path = Path(".dmdb")
    lock_timeout: str = "5s"
    # Where each value came from, for `dmdb config`: flag, env, .env, url, default.
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def embedded(self) -> bool:
        """No server configured: use the embedded PostgreSQL."""
        return self.host is None

    def conninfo(self, *, replica: bool = False, dbname: str | None = None) -> dict:
        """Keyword arguments for psycopg.connect (the password included)."""
        host = self.read_replica_host if replica else self.host
        port = (self.read_replica_port or self.port) if replica else self.port
        params: dict = {
            "host": host,
            "port": port,
            "dbname": dbname or self.dbname,
            "connect_timeout": self.connect_timeout,
            "application_name": "dmdb",
        }
        if self.user:
            params["user"] = self.user
        if self.password:
            params["password"] = self.password
        if self.sslmode:
            params["sslmode"] = self.sslmode
        return params

    def url(self, *, redact: bool = True, replica: bool = False, dbname: str | None = None) -> str:
        """A postgresql:// URL; the password shown as *** unless redact=False."""
        info = self.conninfo(replica=replica, dbname=dbname)
        auth = ""
        if info.get("user"):
            auth = quote(info["user"], safe="")
            if info.get("password"):
                auth += ":" + ("***" if redact else quote(info["password"], safe=""))
            auth += "@"
        host = info["host"] or ""
        query = []
        if host.startswith("/"):
            # libpq reads a socket directory from the query string.
            query.append("host=" + quote(host, safe="/"))
            if info["port"] != 5432:
                query.append(f"port={info['port']}")
            netloc = auth if auth else ""
        else:
            netloc = f"{auth}{host}:{info['port']}"
        if info.get("sslmode"):
            query.append("sslmode=" + info["sslmode"])
        tail = ("?" + "&".join(query)) if query else ""
        return f"postgresql://{netloc}/{quote(info['dbname'], safe='')}{tail}"

    def redacted(self) -> dict:
        """The effective settings as plain data, the password replaced by ***."""
        data = asdict(self)
        data.pop("sources", None)
        data["password"] = "***" if self.password else None
        data["home"] = str(self.home)
        data["embedded"] = self.embedded
        return data

    def with_overrides(self, **changes) -> Settings:
        clean = {k: v for k, v in changes.items() if v is not None}
        sources = dict(self.sources)
        sources.update({k: "flag" for k in clean})
        return replace(self, sources=sources, **clean)


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


_EXAMPLES = {"DB_PORT": "5432", "DB_READ_REPLICA_PORT": "5432", "DB_MAX_CONNECTIONS": "20",
             "DB_IDLE_TIMEOUT": "600", "DB_CONNECT_TIMEOUT": "5"}


def _int(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        example = _EXAMPLES.get(key, "10")
        raise ConfigError(f"{key}={raw!r} is not a whole number; set e.g. {key}={example}") from None


def _parse_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// (got {parts.scheme or 'no'} scheme); "
            "fix the URL, e.g. postgresql://user:pass@host:5432/dbname"
        )
    query = dict(parse_qsl(parts.query))
    out: dict = {}
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("DATABASE_URL has an invalid port; fix the URL") from None
    host = parts.hostname or query.get("host")
    if not host:
        raise ConfigError(
            "DATABASE_URL names no host; add one (postgresql://user@host/db) "
            "or unset it to use the embedded server"
        )
    out["host"] = unquote(host) if parts.hostname is None else host
    if port:
        out["port"] = port
    elif "port" in query:
        out["port"] = _int("DATABASE_URL port", query["port"])
    if parts.path and parts.path != "/":
        out["dbname"] = unquote(parts.path.lstrip("/"))
    if parts.username:
        out["user"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    if "sslmode" in query:
        out["sslmode"] = query["sslmode"]
    return out


def load_settings(env: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Build the effective settings from the environment and `.env` (flags come later)."""
    cwd = cwd or Path.cwd()
    environ = dict(os.environ if env is None else env)
    dotenv = _read_dotenv(cwd / ".env")

    values: dict = {}
    sources: dict[str, str] = {}

    def get(key: str) -> tuple[str | None, str]:
        if environ.get(key) not in (None, ""):
            return environ[key], "env"
        if dotenv.get(key) not in (None, ""):
            return dotenv[key], ".env"
        return None, "default"

    simple = {
        "DB_HOST": ("host", str),
        "DB_PORT": ("port", int),
        "DB_NAME": ("dbname", str),
        "DB_USER": ("user", str),
        "DB_PASSWORD": ("password", str),
        "DB_MAX_CONNECTIONS": ("max_connections", int),
        "DB_IDLE_TIMEOUT": ("idle_timeout", int),
        "DB_CONNECT_TIMEOUT": ("connect_timeout", int),
        "DB_SSLMODE": ("sslmode", str),
        "DB_READ_REPLICA_HOST": ("read_replica_host", str),
        "DB_READ_REPLICA_PORT": ("read_replica_port", int),
        "DMDB_LOCK_TIMEOUT": ("lock_timeout", str),
    }
    for key, (attr, kind) in simple.items():
        raw, src = get(key)
        if raw is None:
            continue
        values[attr] = _int(key, raw) if kind is int else raw
        sources[attr] = src

    url, src = get("DATABASE_URL")
    if url:
        for attr, value in _parse_url(url).items():
            values[attr] = value
            sources[attr] = f"DATABASE_URL ({src})"

    home, src = get("DMDB_HOME")
    values["home"] = Path(home).expanduser() if home else cwd / ".dmdb"
    sources["home"] = src

    if values.get("sslmode") and values["sslmode"] not in SSLMODES:
        raise ConfigError(
            f"DB_SSLMODE={values['sslmode']!r} is not a libpq sslmode; use one of {', '.join(SSLMODES)}"
        )
    for attr, key in (("port", "DB_PORT"), ("read_replica_port", "DB_READ_REPLICA_PORT")):
        if attr in values and not (0 < values[attr] < 65536):
            raise ConfigError(f"{key}={values[attr]} is out of range; use a port from 1 to 65535")
    for attr, key in (("max_connections", "DB_MAX_CONNECTIONS"),
                      ("connect_timeout", "DB_CONNECT_TIMEOUT"), ("idle_timeout", "DB_IDLE_TIMEOUT")):
        if attr in values and values[attr] < 1:
            raise ConfigError(f"{key}={values[attr]} must be 1 or more")
    if "lock_timeout" in values:
        values["lock_timeout"] = check_duration(values["lock_timeout"], "DMDB_LOCK_TIMEOUT")
        # 0 means "no limit" to PostgreSQL: a waiting DDL would stall its table's traffic.
        if not re.search(r"[1-9]", values["lock_timeout"]):
            raise ConfigError(
                f"DMDB_LOCK_TIMEOUT={values['lock_timeout']!r} removes the lock wait limit; "
                "set a bounded duration such as 5s")
    return Settings(**values, sources=sources)
