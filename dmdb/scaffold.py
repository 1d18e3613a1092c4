"""`dmdb new`: the next-numbered migration/rollback pair, rendered from templates/."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dmdb import resources
from dmdb.errors import ConfigError
from dmdb.migrations import MIGRATION_NAME


@dataclass(frozen=True)
class NewMigration:
    id: str
    migration: str
    rollback: str


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not slug:
        raise ConfigError(f"{name!r} gives an empty file name; use letters or digits, e.g. add_badges")
    return slug


def render(template: str, **context) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(resources.templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(**context)


def new_migration(sql_dir: Path, name: str) -> NewMigration:
    migrations, rollbacks = sql_dir / "migrations", sql_dir / "rollbacks"
    if not migrations.is_dir():
        raise ConfigError(
            f"{migrations} is not a directory; run `dmdb new` in the project checkout "
            "or pass --sql-dir"
        )
    numbers = [
        int(m.group(1))
        for p in migrations.glob("*.sql")
        if (m := MIGRATION_NAME.match(p.stem))
    ]
    file_id = f"{max(numbers, default=0) + 1:04d}_{slugify(name)}"
    context = {"id": file_id, "title": name.strip(), "date": date.today().isoformat()}
    rollbacks.mkdir(exist_ok=True)
    forward, backward = migrations / f"{file_id}.sql", rollbacks / f"{file_id}.sql"
    # "x" mode: two concurrent `dmdb new` never overwrite each other's file.
    with open(forward, "x") as handle:
        handle.write(render("migration.sql.j2", **context))
    with open(backward, "x") as handle:
        handle.write(render("rollback.sql.j2", **context))
    return NewMigration(file_id, str(forward), str(backward))
