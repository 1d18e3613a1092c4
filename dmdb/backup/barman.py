"""`dmdb backup barman-config`: a Barman server configuration for the primary.

When one repository on one machine is not enough (several servers, backups kept on a
backup host, retention by policy, parallel restores), Barman (PyPI) is the next step:
`backup_method = postgres` (pg_basebackup) and `streaming_archiver = on` (pg_receivewal
through a replication slot) need nothing installed on the database server. The rendered
file holds no password (Barman's user reads ~/.pgpass). Values are written so that
Barman's INI reader takes them as they are: no control characters, `%` doubled.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from dmdb.backup import providers
from dmdb.config import Settings
from dmdb.errors import ConfigError, DmdbError
from dmdb.files import refuse_control

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RETENTION = re.compile(r"(REDUNDANCY \d+|RECOVERY WINDOW OF \d+ (DAYS?|WEEKS?|MONTHS?))",
                        re.IGNORECASE)


@dataclass
class BarmanConfig:
    name: str
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def _conninfo(params: dict) -> str:
    def value(v: str) -> str:
        if v and re.fullmatch(r"[A-Za-z0-9_./:@,-]+", v):
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={value(str(v))}" for k, v in params.items() if v is not None)


def render(settings: Settings, *, name: str = "dmdb",
           retention: str = "RECOVERY WINDOW OF 7 DAYS",
           streaming_user: str | None = None) -> BarmanConfig:
    from dmdb.resources import render_template

    if settings.embedded:
        raise ConfigError("Barman backs up a server it reaches over the network; the embedded "
                          "server listens on its own socket for its owner only: set "
                          "DATABASE_URL to the primary")
    provider = providers.detect(settings)
    if provider:
        raise DmdbError(providers.explain(provider, "an external backup tool (Barman)"))
    if not _NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: letters, digits, _ and - only (Barman's server name)")
    if not _RETENTION.fullmatch(retention.strip()):
        raise ConfigError(f"--retention {retention!r} is not a Barman retention policy; "
                          "e.g. 'REDUNDANCY 2' or 'RECOVERY WINDOW OF 7 DAYS'")
    info = settings.conninfo()
    info.pop("password", None)
    info["application_name"] = "barman"
    stream = dict(info)
    stream.pop("dbname", None)
    stream["application_name"] = "barman_receive_wal"
    if streaming_user:
        stream["user"] = streaming_user
    values = {"conninfo": _conninfo(info), "streaming_conninfo": _conninfo(stream)}
    for key, text in values.items():
        refuse_control(text, "the connection settings")
        values[key] = text.replace("%", "%%")
    text = render_template("barman.conf.j2", name=name, retention=retention.strip().upper(),
                           host=str(settings.host).replace("%", "%%"), **values)
    return BarmanConfig(name, text)
