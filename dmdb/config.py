"""Settings: command-line flags > environment > `.env` > the project file > defaults.

The project file is found like alembic.ini or sqitch.conf: upward from the working
directory, the first `dmdb.toml`, or `pyproject.toml` with a `[tool.dmdb]` table. Its
folder is the project root: the project's SQL tree (`sql_dir`, default `sql/`) and its
embedded server (`home`, default `.dmdb/`) are relative to it, so every subdirectory and
every install mode sees the same ones. Outside any project: the shipped SQL tree and one
per-user home (`$XDG_DATA_HOME/dmdb`, else `~/.local/share/dmdb`).

`DATABASE_URL` overrides the `DB_*` keys. With neither `DATABASE_URL` nor a host
configured, dmdb uses its embedded PostgreSQL under the home.
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
    "DB_SSLROOTCERT",
    "DB_SSLCERT",
    "DB_SSLKEY",
    "DB_SSLCRL",
    "DB_SSLNEGOTIATION",
    "DB_CHANNEL_BINDING",
    "DB_READ_REPLICA_HOST",
    "DB_READ_REPLICA_PORT",
    "DMDB_HOME",
    "DMDB_SQL_DIR",
    "DMDB_LOCK_TIMEOUT",
    "DMDB_DIRECT_URL",
    "DMDB_BACKUP_REPO",
)
PROJECT_FILE = "dmdb.toml"
# Keys a project file may set (the DB_* names in lower case, without DB_), with their type.
PROJECT_KEYS: dict[str, type] = {
    "sql_dir": str, "home": str, "host": str, "port": int, "dbname": str, "user": str,
    "sslmode": str, "connect_timeout": int, "max_connections": int, "idle_timeout": int,
    "read_replica_host": str, "read_replica_port": int, "lock_timeout": str,
    "sslrootcert": str, "sslcert": str, "sslkey": str, "sslcrl": str, "sslnegotiation": str,
    "channel_binding": str, "backup_repo": str,
}
# The TLS settings that have a DB_* key and a project-file key of their own; any other
# libpq parameter reaches dmdb through DATABASE_URL's query string.
TLS_KEYS = ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslnegotiation", "channel_binding")
# Parameters dmdb sets itself, and those that are not a way to reach a server.
_OWN_PARAMS = {
    "application_name": "dmdb names its sessions application_name=dmdb (lock reports and "
                        "the monitor find them by it); remove it from the URL",
    "fallback_application_name": "dmdb sets application_name itself; remove it from the URL",
    "replication": "dmdb opens ordinary sessions; remove it from the URL",
}

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The one reader of durations, for every flag, environment variable and project-file
# key that takes one: a number with a unit (us, ms, s, min, h, d, as PostgreSQL writes
# them), and a bare number means SECONDS everywhere (PostgreSQL's own `SET lock_timeout
# = 500` would read it as milliseconds: dmdb passes the value on with its unit).
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*")
_UNITS_MS = {"us": 0.001, "ms": 1.0, "": 1000.0, "s": 1000.0, "min": 60_000.0,
             "h": 3_600_000.0, "d": 86_400_000.0}
DURATION_HELP = "a duration: 2s, 500ms, 1min, 2h; a bare number is seconds"


def duration_ms(value: str, name: str, *, example: str = "2s") -> float:
    """Milliseconds of a duration (2s, 500ms, 1min; a bare number is seconds)."""
    match = _DURATION.fullmatch(str(value if value is not None else ""))
    if not match:
        raise ConfigError(f"{name} {value!r} is not a duration; write e.g. {example} or 500ms "
                          "(a bare number is seconds)")
    return float(match.group(1)) * _UNITS_MS[match.group(2) or ""]


def duration_seconds(value, name: str, *, example: str = "2s") -> float:
    """Seconds of a duration (a number given by Python code is seconds too)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return duration_ms(value, name, example=example) / 1000.0


def check_duration(value: str, name: str) -> str:
    """A duration as PostgreSQL reads it, its unit always written: `2` (seconds) -> `2s`,
    `500ms` stays."""
    match = _DURATION.fullmatch(str(value if value is not None else ""))
    duration_ms(value, name)
    number, unit = match.group(1), match.group(2)
    return f"{number}{unit or 's'}"


def check_lock_timeout(value: str, name: str) -> str:
    """A lock_timeout that is a real limit: 0 means "wait forever" to PostgreSQL, and a
    DDL waiting for its lock queues every later query of its table behind it. A bare
    number of 1000 or more is refused: written for milliseconds (as this setting once
    read it, and PostgreSQL still does), it would wait 17 minutes or more."""
    checked = check_duration(value, name)
    if duration_ms(checked, name) <= 0:
        raise ConfigError(f"{name} {value!r} removes the lock wait limit (0 = wait forever, "
                          "and the table's queries queue behind the waiting DDL); set a "
                          "bounded duration such as 2s")
    bare_too_long(value, name)
    return checked


def bare_too_long(value, name: str) -> None:
    """Refuse a bare number of 1000 or more for a lock wait: meant as milliseconds?"""
    match = _DURATION.fullmatch(str(value))
    if match and not match.group(2) and float(match.group(1)) >= 1000:
        raise ConfigError(f"{name} {value!r}: a bare number is seconds, so this would wait "
                          f"{float(match.group(1)) / 60:.0f} minutes; write the unit: "
                          f"{match.group(1)}ms, or {match.group(1)}s if you mean it")


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
    # Every other libpq parameter of DATABASE_URL and the DB_SSL* keys (sslrootcert,
    # channel_binding, options, target_session_attrs, ...), carried into every connection
    # and every tool dmdb runs. Multi-host URLs keep their port list here ("port").
    libpq: tuple[tuple[str, str], ...] = ()
    # DMDB_DIRECT_URL: the server's own address when DATABASE_URL is a transaction pooler's
    # (Supabase, Neon, Azure and RDS Proxy hand out both); commands that need a session use it.
    direct_url: str | None = field(default=None, repr=False)
    read_replica_host: str | None = None
    read_replica_port: int | None = None
    home: Path = Path(".dmdb")
    # The backup repository (base backups, archived WAL, their catalog); None: <home>/backups.
    backup_repo: Path | None = None
    lock_timeout: str = "5s"
    # The project's SQL tree; None: the one shipped with dmdb.
    sql_dir: Path | None = None
    # The project file found (dmdb.toml or pyproject.toml), None outside any project.
    project_file: Path | None = None
    # May connecting initialise a new embedded cluster? The CLI allows it only for the
    # commands that change the database; the others never create a server silently.
    create_embedded: bool = field(default=True, compare=False)
    # Where each value came from, for `dmdb config`: flag, env, .env, url, project file, default.
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
        for key, value in self.libpq:
            if key != "port" or not replica:
                params[key] = value
        return params

    def session(self) -> Settings:
        """The settings for work that needs a real session (advisory locks): the direct
        URL's server when DMDB_DIRECT_URL is set, these settings otherwise."""
        if not self.direct_url:
            return self
        values = _parse_url(self.direct_url, "DMDB_DIRECT_URL")
        # The TLS settings (DB_SSLROOTCERT, ...) hold for both addresses unless the direct
        # URL says otherwise; a pooler's port list does not.
        libpq = {k: v for k, v in self.libpq if k != "port"}
        libpq.update(values["libpq"])
        values["libpq"] = tuple(sorted(libpq.items()))
        values.setdefault("sslmode", self.sslmode)
        values.setdefault("port", 5432)  # its own address: libpq's default, not the pooler's
        for key in ("user", "password"):
            values.setdefault(key, getattr(self, key))
        return replace(self, direct_url=None, **values)

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
        elif "," in host:
            netloc = auth + host  # the port list travels as port=..., from libpq
        else:
            netloc = f"{auth}{host}:{info['port']}"
        if info.get("sslmode"):
            query.append("sslmode=" + info["sslmode"])
        for key, value in self.libpq:
            if key == "port" and replica:
                continue
            shown = "***" if key in _SECRET_PARAMS and redact else value
            query.append(f"{key}={quote(shown, safe='/,')}")
        tail = ("?" + "&".join(query)) if query else ""
        return f"postgresql://{netloc}/{quote(info['dbname'], safe='')}{tail}"

    def redacted(self) -> dict:
        """The effective settings as plain data, the password replaced by ***."""
        data = asdict(self)
        data.pop("sources", None)
        data.pop("create_embedded", None)
        data["password"] = "***" if self.password else None
        data["direct_url"] = _redact_url(self.direct_url) if self.direct_url else None
        data["libpq"] = {k: ("***" if k in _SECRET_PARAMS else v) for k, v in self.libpq}
        data["home"] = str(self.home)
        for key in ("sql_dir", "project_file", "backup_repo"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["embedded"] = self.embedded
        return data

    def with_overrides(self, **changes) -> Settings:
        clean = {k: v for k, v in changes.items() if v is not None}
        sources = dict(self.sources)
        sources.update({k: "flag" for k in clean})
        return replace(self, sources=sources, **clean)


@dataclass(frozen=True)
class ProjectFile:
    """The project file found, and the dmdb settings it holds."""

    path: Path
    values: dict

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def label(self) -> str:
        return f"{self.path.name} [tool.dmdb]" if self.path.name == "pyproject.toml" else self.path.name


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; check its permissions") from None


def _refuse_foreign(path: Path, what: str) -> None:
    """A project file or .env decides which SQL dmdb runs, as whom and where: one that
    another user owns (say /tmp/dmdb.toml, which anyone may create) could make `dmdb up`
    run their SQL as you. Like git's "dubious ownership", only yours or root's count."""
    if not hasattr(os, "geteuid"):
        return
    try:
        owner = path.stat().st_uid
    except OSError:
        return
    if owner not in (os.geteuid(), 0):
        raise ConfigError(
            f"{path} belongs to another user (uid {owner}): dmdb does not read a {what} "
            "someone else can change (it decides which SQL runs as you); remove it or chown "
            "it, or work in a directory of your own project")


def find_project_file(start: Path) -> ProjectFile | None:
    """The nearest project file upward from `start`: dmdb.toml, or a pyproject.toml with
    a [tool.dmdb] table (a pyproject.toml without one does not stop the search)."""
    start = start.absolute()
    for folder in (start, *start.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            _refuse_foreign(candidate, "project file")
            return ProjectFile(candidate, _read_toml(candidate))
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            table = _read_toml(candidate).get("tool", {}).get("dmdb")
            if isinstance(table, dict):
                _refuse_foreign(candidate, "project file")
                return ProjectFile(candidate, table)
    return None


def _check_project_values(project: ProjectFile) -> dict:
    values = dict(project.values)
    for key, value in values.items():
        if key in ("password", "database_url"):
            raise ConfigError(
                f"{project.path}: `{key}` does not belong in a project file (it would be "
                "committed); set DATABASE_URL or DB_PASSWORD in the environment or .env"
            )
        kind = PROJECT_KEYS.get(key)
        if kind is None:
            raise ConfigError(
                f"{project.path}: unknown dmdb setting `{key}`; use one of "
                + ", ".join(PROJECT_KEYS)
            )
        if not isinstance(value, kind) or isinstance(value, bool):
            example = '"value"' if kind is str else "5432"
            raise ConfigError(f"{project.path}: `{key}` must be a {kind.__name__}, "
                              f"e.g. {key} = {example}")
    return values


def user_home(environ: dict[str, str]) -> Path:
    """The per-user embedded-server home used outside any project (XDG data directory)."""
    xdg = environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "dmdb"
    base = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return base / ".local" / "share" / "dmdb"


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    _refuse_foreign(path, ".env")
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


_SECRET_PARAMS = ("password", "sslpassword", "oauth_client_secret")


def _redact_url(url: str) -> str:
    """A URL with its password and secret parameters shown as ***."""
    url = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", url)
    return re.sub(r"((?:^|[?&])(?:" + "|".join(_SECRET_PARAMS) + r")=)[^&]*", r"\1***", url)


def libpq_params() -> dict[str, str | None]:
    """Every connection parameter the client library knows, with its environment variable
    (None where it has none): read from libpq itself, so a newer libpq's parameters pass."""
    from psycopg import pq

    return {o.keyword.decode(): (o.envvar.decode() if o.envvar else None)
            for o in pq.Conninfo.get_defaults() if b"D" not in (o.dispchar or b"")}


def _split_hosts(netloc: str, name: str) -> tuple[str, str | None, str | None, str | None]:
    """(hosts, ports, user, password) of a multi-host netloc `u:p@h1:5432,h2:5433`."""
    auth, _, hosts = netloc.rpartition("@")
    user, _, password = auth.partition(":") if auth else ("", "", "")
    names, ports = [], []
    for item in hosts.split(","):
        host, port = item, ""
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        elif ":" in item:
            host, _, port = item.rpartition(":")
        if not host or (port and not port.isdigit()):
            raise ConfigError(f"{name} has an invalid host list {hosts!r}; write "
                              "postgresql://user@host1:5432,host2:5432/dbname")
        names.append(unquote(host))
        ports.append(port)
    port_list = ",".join(p or "5432" for p in ports) if any(ports) else None
    return (",".join(names), port_list, unquote(user) if user else None,
            unquote(password) if password else None)


def _parse_url(url: str, name: str = "DATABASE_URL") -> dict:
    """A postgresql:// URL as settings: host, port, dbname, user, password, sslmode and
    connect_timeout as such, every other libpq parameter carried in `libpq`; a parameter
    libpq does not know is refused by name, never dropped."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{name} must start with postgresql:// (got {parts.scheme or 'no'} scheme); "
            "fix the URL, e.g. postgresql://user:pass@host:5432/dbname"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    out: dict = {}
    libpq: dict[str, str] = {}
    if "," in parts.netloc:
        host, ports, user, password = _split_hosts(parts.netloc, name)
        if ports:
            out["port"] = int(ports.split(",")[0])
            libpq["port"] = ports
    else:
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{name} has an invalid port; fix the URL") from None
        host = unquote(parts.hostname) if parts.hostname else None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if port:
            out["port"] = port
    host = host or query.pop("host", None)
    query.pop("host", None)
    if not host:
        raise ConfigError(
            f"{name} names no host; add one (postgresql://user@host/db) "
            "or unset it to use the embedded server"
        )
    out["host"] = host
    if "port" in query:
        raw = query.pop("port")
        if "," in raw:
            libpq["port"] = raw
            raw = raw.split(",")[0]
        out["port"] = _int(f"{name} port", raw)
    if parts.path and parts.path != "/":
        out["dbname"] = unquote(parts.path.lstrip("/"))
    if "dbname" in query:
        out["dbname"] = query.pop("dbname")
    user = user or query.pop("user", None)
    query.pop("user", None)
    password = password or query.pop("password", None)
    query.pop("password", None)
    if user:
        out["user"] = user
    if password:
        out["password"] = password
    if "sslmode" in query:
        out["sslmode"] = query.pop("sslmode")
    if "connect_timeout" in query:
        out["connect_timeout"] = _int(f"{name} connect_timeout", query.pop("connect_timeout"))
    if query:
        known = libpq_params()
        for key, value in query.items():
            if key in _OWN_PARAMS:
                raise ConfigError(f"{name} parameter {key}: {_OWN_PARAMS[key]}")
            if key not in known:
                raise ConfigError(
                    f"{name} parameter {key!r} is not a libpq connection parameter; fix its "
                    "name or remove it (libpq's list: "
                    "https://www.postgresql.org/docs/current/libpq-connect.html)")
            libpq[key] = value
    out["libpq"] = tuple(sorted(libpq.items()))
    return out


def load_settings(env: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Build the effective settings from the environment, `.env` and the project file
    (flags come later, with `Settings.with_overrides`)."""
    cwd = (cwd or Path.cwd()).absolute()
    environ = dict(os.environ if env is None else env)
    project = find_project_file(cwd)
    from_project = _check_project_values(project) if project else {}
    # `.env` of the working directory, else the project root's.
    dotenv_path = cwd / ".env"
    if not dotenv_path.is_file() and project is not None:
        dotenv_path = project.root / ".env"
    dotenv = _read_dotenv(dotenv_path)
    project_label = project.label if project else ""

    values: dict = {}
    sources: dict[str, str] = {}

    def get(key: str) -> tuple[str | None, str]:
        if environ.get(key) not in (None, ""):
            return environ[key], "env"
        if dotenv.get(key) not in (None, ""):
            return dotenv[key], ".env"
        return None, "default"

    def path_of(raw: str, src: str) -> Path:
        """A path setting: relative to the file that holds it, or to the working directory."""
        base = {".env": dotenv_path.parent, project_label: project.root if project else cwd}
        return base.get(src, cwd) / Path(raw).expanduser()

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
            if attr in from_project:
                values[attr] = from_project[attr]
                sources[attr] = project_label
            continue
        values[attr] = _int(key, raw) if kind is int else raw
        sources[attr] = src

    # TLS settings: DB_SSLROOTCERT etc., else the project file's (paths relative to it).
    libpq: dict[str, str] = {}
    for key in TLS_KEYS:
        raw, src = get("DB_" + key.upper())
        if raw is None and key in from_project:
            raw, src = from_project[key], project_label
        if raw is None:
            continue
        if key in ("sslrootcert", "sslcert", "sslkey", "sslcrl") and raw != "system":
            raw = str(path_of(raw, src)) if src != "env" else raw
        libpq[key] = raw
        sources[key] = src

    url, src = get("DATABASE_URL")
    if url:
        for attr, value in _parse_url(url).items():
            if attr == "libpq":
                for key, item in value:
                    libpq[key] = item
                    sources[key] = f"DATABASE_URL ({src})"
                continue
            values[attr] = value
            sources[attr] = f"DATABASE_URL ({src})"
    if libpq:
        values["libpq"] = tuple(sorted(libpq.items()))
        sources["libpq"] = ", ".join(sorted({sources.pop(k) for k in libpq}))

    direct, src = get("DMDB_DIRECT_URL")
    if direct:
        _parse_url(direct, "DMDB_DIRECT_URL")  # refused now, not when a command needs it
        values["direct_url"], sources["direct_url"] = direct, src

    home, src = get("DMDB_HOME")
    if home is None and "home" in from_project:
        home, src = from_project["home"], project_label
    if home is not None:
        values["home"], sources["home"] = path_of(home, src), src
    elif project is not None:
        values["home"], sources["home"] = project.root / ".dmdb", "default (project root)"
    else:
        values["home"], sources["home"] = user_home(environ), "default (per user)"

    sql_dir, src = get("DMDB_SQL_DIR")
    if sql_dir is None and "sql_dir" in from_project:
        sql_dir, src = from_project["sql_dir"], project_label
    if sql_dir is not None:
        values["sql_dir"], sources["sql_dir"] = path_of(sql_dir, src), src
    elif project is not None and (project.root / "sql" / "migrations").is_dir():
        values["sql_dir"], sources["sql_dir"] = project.root / "sql", "default (project root)"
    else:
        sources["sql_dir"] = "default (shipped)"
    repo, src = get("DMDB_BACKUP_REPO")
    if repo is None and "backup_repo" in from_project:
        repo, src = from_project["backup_repo"], project_label
    if repo is not None:
        values["backup_repo"], sources["backup_repo"] = path_of(repo, src), src

    if project is not None:
        values["project_file"] = project.path
        sources["project_file"] = "found upward from " + str(cwd)

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
        values["lock_timeout"] = check_lock_timeout(values["lock_timeout"], "DMDB_LOCK_TIMEOUT")
    return Settings(**values, sources=sources)
