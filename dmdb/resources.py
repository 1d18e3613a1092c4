"""Where the packaged SQL, templates and data are, in a checkout and in an installed wheel.

In a checkout they sit beside the package (sql/, templates/) or in it (dmdb/data); the
wheel maps them to dmdb/sql, dmdb/templates and dmdb/data (pyproject's package-dir).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _package_dir(name: str) -> Path:
    in_checkout = _CHECKOUT / name
    if (_CHECKOUT / "pyproject.toml").is_file() and in_checkout.is_dir():
        return in_checkout
    return _PACKAGE / name


def sql_dir() -> Path:
    """The packaged sql/ tree: migrations/, rollbacks/, functions/, queries/."""
    return _package_dir("sql")


def templates_dir() -> Path:
    return _package_dir("templates")


def render_template(template: str, **context) -> str:
    """A jinja2 template of templates/, rendered strictly (an unknown name is an error)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(**context)


def data_dir() -> Path:
    return _PACKAGE / "data"


@cache
def query(name: str) -> str:
    """The text of sql/queries/<name>.sql (the queries the library runs)."""
    return (sql_dir() / "queries" / f"{name}.sql").read_text()
