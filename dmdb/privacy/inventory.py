"""Every relation of the live catalog that holds a learner's data, and its classification.

Found, not listed by hand: tables with a foreign key to users, tables (in any schema,
partitions aside) with the learner column, materialized views over any of these, and
every relation of dmdb's own schemas. Each is matched against sql/privacy.toml (the
shipped file, then the project's); one that no entry classifies is `unclassified`, and
`dmdb lint` and the suite fail on it — a team's new table included.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

INVENTORY_FILE = "privacy.toml"
ACTIONS = ("delete", "refresh", "excluded")


@dataclass(frozen=True)
class Rule:
    pattern: str
    action: str
    key: str | None
    reason: str
    source: str


@dataclass
class Relation:
    schema: str
    name: str
    kind: str  # table | matview
    why: str  # how it was found: foreign key to users, learner column, view over ..., dmdb schema
    action: str | None = None  # None: unclassified
    key: str | None = None
    reason: str = ""
    source: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Inventory:
    relations: list[Relation] = field(default_factory=list)

    @property
    def unclassified(self) -> list[Relation]:
        return [r for r in self.relations if r.action is None]

    def covered(self, action: str = "delete") -> list[Relation]:
        return [r for r in self.relations if r.action == action]

    def to_dict(self) -> dict:
        return {"relations": [asdict(r) | {"relation": r.qualified} for r in self.relations],
                "unclassified": [r.qualified for r in self.unclassified]}


def read_rules(sql_dir: Path | None = None) -> list[Rule]:
    """The shipped sql/privacy.toml, then the project's (its entries win)."""
    import tomllib

    files = [resources.sql_dir() / INVENTORY_FILE]
    if sql_dir is not None and (Path(sql_dir) / INVENTORY_FILE).resolve() != files[0].resolve():
        files.append(Path(sql_dir) / INVENTORY_FILE)
    rules: dict[str, Rule] = {}
    for path in files:
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file") from None
        for pattern, entry in data.get("relations", {}).items():
            action = entry.get("action")
            if action not in ACTIONS:
                raise ConfigError(f"{path}: relation {pattern!r} has action {action!r}; use "
                                  f"one of {', '.join(ACTIONS)}")
            if action == "delete" and not entry.get("key"):
                raise ConfigError(f"{path}: relation {pattern!r} is deleted by a key; add "
                                  'key = "user_id" (the learner column)')
            if action == "excluded" and not entry.get("reason"):
                raise ConfigError(f"{path}: relation {pattern!r} is excluded; say why in "
                                  "reason = \"...\"")
            rules[pattern] = Rule(pattern, action, entry.get("key"), entry.get("reason", ""),
                                  str(path))
    return list(rules.values())


def _match(rules: list[Rule], qualified: str) -> Rule | None:
    exact = [r for r in rules if r.pattern == qualified]
    if exact:
        return exact[-1]
    found = [r for r in rules if fnmatch.fnmatchcase(qualified, r.pattern)]
    return found[-1] if found else None


def inventory(conn: psycopg.Connection, sql_dir: Path | None = None) -> Inventory:
    """The user-linked relations of the live catalog, each classified (or not)."""
    rules = read_rules(sql_dir)
    out = Inventory()
    for schema, name, kind, why in conn.execute(resources.query("privacy_relations")).fetchall():
        relation = Relation(schema, name, kind, why)
        rule = _match(rules, relation.qualified)
        if rule is not None:
            relation.action, relation.key = rule.action, rule.key
            relation.reason, relation.source = rule.reason, rule.source
        out.relations.append(relation)
    return out
