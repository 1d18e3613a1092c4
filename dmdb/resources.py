"""Where the packaged SQL and templates are, in a checkout and in an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, checkout_name: str) -> Path:
    candidate = _CHECKOUT / checkout_name
    if (_CHECKOUT / "pyproject.toml").exists() and candidate.is_dir():
        return candidate
    return Path(str(resources.files(package)))


def sql_dir() -> Path:
    """The packaged sql/ tree: migrations/, rollbacks/, functions/, queries/."""
    return _package_dir("dmdb.sql", "sql")


def templates_dir() -> Path:
    return _package_dir("dmdb.templates", "templates")


def data_dir() -> Path:
    return _package_dir("dmdb.data", "dmdb/data")


def query(name: str) -> str:
    """The text of sql/queries/<name>.sql (the queries the library runs)."""
    return (sql_dir() / "queries" / f"{name}.sql").read_text()
