"""Migration, rollback and function files: yoyo's format, read cheaply.

A file is read whole once (its SHA-256 and leading directives need nothing more); its
statements are split (sqlparse, as yoyo does) only when something runs or inspects
them. `dmdb status` and a no-op `dmdb up` therefore cost the same with 6 migrations or
with 500: no file that will not run is ever parsed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dmdb import resources
from dmdb.errors import ConfigError, MigrationError

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)$")

# yoyo's leading-comment grammar (yoyo.migrations.parse_metadata_from_sql_comments),
# re-implemented so that reading a file imports neither yoyo nor sqlparse.
_DIRECTIVE = re.compile(r"^\s*--\s*(transactional|depends)\s*:\s*(.*)$")
_COMMENT_OR_EMPTY = re.compile(r"^(\s*|\s*--.*)$")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line of the file where the statement's SQL starts
    text_line: int = 0  # the line where `sql` (with its leading comments) starts

    @property
    def first_line(self) -> str:
        """Its first line of SQL (comment lines skipped), at most 100 characters."""
        for line in self.sql.splitlines():
            if line.strip() and not line.strip().startswith("--"):
                return line.strip()[:100]
        return ""


def migration_hash(file_id: str) -> str:
    """yoyo's ledger key: the SHA-256 of the migration id (yoyo.migrations.get_migration_hash)."""
    return hashlib.sha256(file_id.encode("utf-8")).hexdigest()


def leading_metadata(text: str) -> tuple[dict[str, str], str]:
    """(directives, description) from the file's leading comment block, as yoyo reads them."""
    directives: dict[str, str] = {}
    comments: list[str] = []
    for line in _lines(text):
        match = _DIRECTIVE.match(line)
        if match:
            key, value = match.groups()
            directives[key] = f"{directives[key]} {value}" if key in directives else value
        elif _COMMENT_OR_EMPTY.match(line):
            comments.append(line.strip().lstrip("-").strip())
        else:
            break
    description = next((c for c in comments if c), "")
    return directives, description


def _lines(text: str):
    """Lines one by one, without splitting the whole file (only its head is read)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end].rstrip("\r")
        start = end + 1


def _leading_comment_lines(raw: str) -> int:
    """Lines of blank space and `--` comments before a statement's first SQL line."""
    count = 0
    for line in raw.split("\n"):
        if line.strip() and not line.strip().startswith("--"):
            break
        count += 1
    return count


def split_statements(text: str) -> tuple[Statement, ...]:
    """The file's statements as yoyo would run them (sqlparse.split), with line numbers."""
    import sqlparse

    statements = []
    offset = 0
    for raw in sqlparse.split(text):
        start = text.find(raw, offset)
        if start < 0:  # sqlparse normalised something: fall back to the running offset
            start = offset
        offset = start + len(raw)
        if not _COMMENTS.sub("", raw).strip():
            continue
        text_line = text.count("\n", 0, start) + 1
        statements.append(Statement(raw.strip(), text_line + _leading_comment_lines(raw), text_line))
    return tuple(statements)


@dataclass(frozen=True)
class SqlFile:
    id: str
    path: Path
    sha256: str
    text: str

    @cached_property
    def _metadata(self) -> tuple[bool, str]:
        directives, description = leading_metadata(self.text)
        transactional = directives.get("transactional", "true").strip().lower()
        if transactional not in ("true", "false"):
            raise MigrationError(
                f"{self.path}: '-- transactional: {transactional}' must be true or false")
        return transactional == "true", description

    @property
    def transactional(self) -> bool:
        return self._metadata[0]

    @property
    def description(self) -> str:
        return self._metadata[1]

    @cached_property
    def statements(self) -> tuple[Statement, ...]:
        return split_statements(self.text)

    @property
    def is_empty(self) -> bool:
        """Nothing but comments and blank space (no parse needed): as a rollback, it would
        record its migration as rolled back and leave every change in place."""
        return not _COMMENTS.sub("", self.text).strip()


def read_sql_file(path: Path) -> SqlFile:
    """Read a SQL file: content and checksum; directives and statements on demand."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    if "\r" in text:  # checksums are of the text with universal newlines, as always
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        raw = text.encode("utf-8")
    return SqlFile(id=path.stem, path=path, sha256=hashlib.sha256(raw).hexdigest(), text=text)


@dataclass(frozen=True)
class Migration:
    id: str
    forward: SqlFile
    rollback: SqlFile | None

    @property
    def hash(self) -> str:
        return migration_hash(self.id)


# Statements on objects the whole cluster shares (roles and memberships, tablespaces,
# databases, server settings). `dmdb lint`, `verify` and `drift` replay files in a
# scratch database of the live server, so replaying one would change the live server
# (a rollback's DROP ROLE would drop the live role): they are named, not run. (A DO
# block that does the same is not recognised.)
CLUSTER_WIDE = re.compile(
    r"^\s*(?:(?:CREATE|ALTER|DROP)\s+(?:ROLE|GROUP|TABLESPACE|DATABASE)\b"
    r"|(?:CREATE|ALTER|DROP)\s+USER\b(?!\s+MAPPING)|ALTER\s+SYSTEM\b"
    r"|(?:GRANT|REVOKE)\b(?![^;]*\bON\b))", re.IGNORECASE)


def is_cluster_wide(stmt: Statement) -> bool:
    return bool(CLUSTER_WIDE.match(_COMMENTS.sub("", stmt.sql)))


def without_cluster_wide(sql_file: SqlFile) -> SqlFile:
    """The file as a scratch replay may run it: without its cluster-wide statements."""
    from dataclasses import replace

    kept = tuple(stmt for stmt in sql_file.statements if not is_cluster_wide(stmt))
    if len(kept) == len(sql_file.statements):
        return sql_file
    copy = replace(sql_file)
    copy.__dict__["statements"] = kept  # the cached_property's slot
    return copy


def for_scratch_replay(migration: Migration) -> tuple[Migration, list[str]]:
    """The migration with its forward and rollback files as a scratch replay may run them,
    and one note per statement left out ("<file>:<line>: <first line>")."""
    notes = []
    for sql_file in (migration.forward, migration.rollback):
        if sql_file is None:
            continue
        notes += [f"{sql_file.path.parent.name}/{sql_file.id}.sql:{stmt.line}: {stmt.first_line}"
                  for stmt in sql_file.statements if is_cluster_wide(stmt)]
    if not notes:
        return migration, notes
    rollback = without_cluster_wide(migration.rollback) if migration.rollback else None
    return Migration(migration.id, without_cluster_wide(migration.forward), rollback), notes


class Project:
    """The SQL files of one project: sql_dir/{migrations,rollbacks,functions}.

    The files are read once, when the project is made; a run works on that snapshot
    (make a new Project to see edits)."""

    def __init__(self, sql_dir: Path | None = None):
        self.sql_dir = Path(sql_dir) if sql_dir else resources.sql_dir()
        if not (self.sql_dir / "migrations").is_dir():
            raise ConfigError(
                f"{self.sql_dir}/migrations is not a directory; "
                "pass --sql-dir (or DMDB_SQL_DIR) pointing at a tree with migrations/"
            )
        # Misnamed or duplicate files are usage errors, found up front.
        self._migrations = self._read_migrations()
        self._functions: list[SqlFile] | None = None

    def migrations(self) -> list[Migration]:
        return self._migrations

    def migration(self, file_id: str, option: str = "") -> Migration:
        """The migration `file_id` names: its whole id, or its number alone (`0012` or
        `12`; numbers are unique). Anything else is a usage error with a did-you-mean."""
        wanted = self.resolve_id(file_id, option)
        return next(m for m in self._migrations if m.id == wanted)

    def resolve_id(self, text: str, option: str = "", extra: tuple[str, ...] = ()) -> str:
        """The id `text` names among the files (and `extra` ids, say the ledger's): the
        id itself, or the number alone. ConfigError with the closest ids otherwise."""
        ids = [m.id for m in self._migrations]
        ids += [i for i in extra if i not in ids]
        if text in ids:
            return text
        if text.isdigit() and len(text) <= 4:
            by_number = [i for i in ids if i[:4] == text.zfill(4)]
            if len(by_number) == 1:
                return by_number[0]
        import difflib

        close = ([i for i in ids if i.startswith(text)]
                 or [i for i in ids if i[5:] == text or i[5:].startswith(text)]
                 or difflib.get_close_matches(text, ids, n=3, cutoff=0.5))
        near = (f"; did you mean {' or '.join(close[:3])}?" if close
                else "; `dmdb status` lists the ids")
        label = f"{option} {text}" if option else text
        raise ConfigError(f"{label}: no such migration (give its id or its number){near}")

    def functions(self) -> list[SqlFile]:
        if self._functions is None:
            folder = self.sql_dir / "functions"
            self._functions = ([read_sql_file(p) for p in sorted(folder.glob("*.sql"))]
                               if folder.is_dir() else [])
        return self._functions

    def _read_migrations(self) -> list[Migration]:
        out = []
        rollbacks = self.sql_dir / "rollbacks"
        present = {p.name for p in rollbacks.glob("*.sql")} if rollbacks.is_dir() else set()
        for path in sorted((self.sql_dir / "migrations").glob("*.sql")):
            if not MIGRATION_NAME.match(path.stem):
                raise ConfigError(
                    f"{path.name}: migration files are named NNNN_lower_snake.sql; rename it"
                )
            rollback = read_sql_file(rollbacks / path.name) if path.name in present else None
            out.append(Migration(path.stem, read_sql_file(path), rollback))
        numbers = [m.id[:4] for m in out]
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        if dupes:
            raise ConfigError(f"two migrations share the number {dupes[0]}; renumber one of them")
        return out


def joined(sql_file: SqlFile | None) -> str:
    """The file's statements, each ending in one `;` (for --dry-run)."""
    if sql_file is None:
        return ""
    return "\n\n".join(s.sql.rstrip().rstrip(";") + ";" for s in sql_file.statements)
