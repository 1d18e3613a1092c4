"""`dmdb new`: the next-numbered migration/rollback pair, rendered from templates/."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dmdb import resources
from dmdb.errors import ConfigError
from dmdb.migrate.engine import MIGRATION_NAME


@dataclass(frozen=True)
class NewMigration:
    id: str
    migration: str
    rollback: str
    tree_created: bool = False  # migrations/ (and rollbacks/) made for this first one


# What a migration name may hold. It is rendered into the first comment line of both
# files, where yoyo reads `-- key: value` directives: no colon, no newline, nothing else
# that could turn the title into a directive or a statement.
_NAME = re.compile(r"[A-Za-z0-9 _-]+")
MAX_NAME = 80


def check_name(name: str) -> str:
    """The migration's title (spaces collapsed), or a ConfigError naming what is wrong."""
    title = name.strip()
    if not _NAME.fullmatch(title) or not re.search(r"[A-Za-z0-9]", title):
        raise ConfigError(f"migration name {name!r}: use only letters, digits, spaces, _ and -, "
                          "e.g. dmdb new 'add badges'")
    if len(title) > MAX_NAME:
        raise ConfigError(f"migration name is {len(title)} characters long; keep it under "
                          f"{MAX_NAME + 1}")
    return " ".join(title.split())


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", check_name(name).lower()).strip("_")


def new_migration(sql_dir: Path, name: str) -> NewMigration:
    title = check_name(name)
    migrations, rollbacks = sql_dir / "migrations", sql_dir / "rollbacks"
    # The project's tree (--sql-dir, DMDB_SQL_DIR, the project file's or its sql/): made
    # for its first migration, as `sqitch init` makes its directories.
    created = not migrations.is_dir()
    if created:
        if migrations.exists() or (sql_dir.exists() and not sql_dir.is_dir()):
            raise ConfigError(f"{migrations} is in the way (not a directory); move it, or pass "
                              "--sql-dir naming the project's SQL tree")
        migrations.mkdir(parents=True)
    numbers = [
        int(m.group(1))
        for p in migrations.glob("*.sql")
        if (m := MIGRATION_NAME.match(p.stem))
    ]
    file_id = f"{max(numbers, default=0) + 1:04d}_{slugify(title)}"
    context = {"id": file_id, "title": title, "date": date.today().isoformat()}
    rollbacks.mkdir(exist_ok=True)
    forward, backward = migrations / f"{file_id}.sql", rollbacks / f"{file_id}.sql"
    # "x" mode: two concurrent `dmdb new` never overwrite each other's file.
    with open(forward, "x") as handle:
        handle.write(resources.render_template("migration.sql.j2", **context))
    try:
        with open(backward, "x") as handle:
            handle.write(resources.render_template("rollback.sql.j2", **context))
    except BaseException:
        forward.unlink()  # never half a pair
        raise
    return NewMigration(file_id, str(forward), str(backward), created)
