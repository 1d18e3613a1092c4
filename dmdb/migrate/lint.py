"""`dmdb lint`: what a migration will do to a live database, found before deploying it.

Two sources of findings:

- squawk's static rules (the `squawk` binary of the squawk-cli dependency), with the
  project's squawk config when there is one (`<sql dir>/squawk.toml`, a `.squawk.toml`
  beside the SQL tree, or one in the working directory);
- a *lock trace*: the files are replayed in a scratch database on the same server that
  holds the live schema (pg_dump, no data) and a few rows copied from each live table.
  Each statement of a transactional file runs inside the file's transaction; before and
  after it dmdb reads, for every table that exists in the live database, the locks the
  migrating backend holds (pg_locks), its relfilenode (changed = the table was
  rewritten), its scans in this transaction (pg_stat_get_xact_numscans: a validation
  scan), its rows written and its indexes.

Rules of the trace (severity): `table-rewrite` (error), `non-concurrent-index` (error),
`validation-scan` (error under ACCESS EXCLUSIVE, which blocks reads; else warning),
`lock-held-across-work` (warning: ACCESS EXCLUSIVE taken by an earlier statement of the
transaction is still held while this one does work), `access-exclusive` (info),
`cluster-wide` (warning: a statement on roles, tablespaces, databases or server settings,
shared with the live server, so not replayed), `replay-failed` (error). A finding is
silenced for one statement by a comment among the statement's leading comments, which must give a reason:

    -- dmdb-lint: ignore table-rewrite -- users has 40 rows in every environment
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.config import Settings
from dmdb.db import connect, resolve
from dmdb.errors import ConfigError, DmdbError
from dmdb.migrate.engine import Runner, status
from dmdb.migrate.files import (
    Project,
    SqlFile,
    Statement,
    is_cluster_wide,
    read_sql_file,
    without_cluster_wide,
)
from dmdb.migrate.retry import extra_detail
from dmdb.migrate.verify import Scratch, restore_schema, scratch_database

if TYPE_CHECKING:
    import psycopg

SEVERITIES = ("info", "warning", "error")
SAMPLE_ROWS = 3
# The rules of the lock trace; an ignore comment may name these and squawk's.
TRACE_RULES = ("table-rewrite", "non-concurrent-index", "validation-scan",
               "lock-held-across-work", "access-exclusive", "cluster-wide", "replay-failed")

MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
         "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
_BLOCKS_WRITES = MODES.index("ShareLock")


def mode_name(mode: str) -> str:
    """"AccessExclusiveLock" -> "ACCESS EXCLUSIVE"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()


_IGNORE = re.compile(r"^\s*--\s*dmdb-lint:\s*ignore\s+(?P<rules>[\w\-]+(?:\s*,\s*[\w\-]+)*)"
                     r"\s*(?:--\s*(?P<reason>.*?))?\s*$")
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|COPY|WITH|SELECT)\b", re.IGNORECASE)


@dataclass
class Lock:
    table: str
    mode: str  # ACCESS EXCLUSIVE, SHARE, ...


@dataclass
class TracedStatement:
    line: int
    first_line: str
    locks: list[Lock] = field(default_factory=list)  # taken on tables of the live schema
    rewrites: list[str] = field(default_factory=list)
    scans: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # tables whose rows it changed
    indexes_built: list[str] = field(default_factory=list)  # on tables of the live schema
    ms: float = 0.0
    traced: bool = True
    error: str | None = None
    # Why a statement was not traced: "concurrently" (cannot run in the transaction
    # the trace needs) or "cluster-wide" (not replayed at all); None when traced.
    not_traced: str | None = None


@dataclass
class LintFile:
    id: str
    path: str
    transactional: bool
    statements: list[TracedStatement] = field(default_factory=list)


@dataclass
class Finding:
    file: str
    line: int
    rule: str
    severity: str
    message: str
    source: str  # trace | squawk | dmdb-lint
    ignored: bool = False
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LintResult:
    files: list[LintFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def at_or_above(self, severity: str) -> list[Finding]:
        rank = SEVERITIES.index(severity)
        return [f for f in self.findings
                if not f.ignored and SEVERITIES.index(f.severity) >= rank]

    def to_dict(self) -> dict:
        return {"files": [asdict(f) for f in self.files],
                "findings": [asdict(f) for f in self.findings], "notes": self.notes}


# -- ignores ---------------------------------------------------------------------


def _ignore_comments(stmt: Statement):
    """(line, [rules], reason) of each ignore comment among a statement's leading comments."""
    for offset, line in enumerate(stmt.sql.splitlines()):
        if line.strip() and not line.strip().startswith("--"):
            break
        match = _IGNORE.match(line)
        if match:
            yield (stmt.text_line + offset, re.split(r"\s*,\s*", match["rules"].strip()),
                   (match["reason"] or "").strip())


def ignores(stmt: Statement) -> tuple[dict[str, str], list[int]]:
    """({rule: reason}, [lines of ignores without a reason]) from a statement's leading
    comments."""
    found: dict[str, str] = {}
    bad: list[int] = []
    for line, rules, reason in _ignore_comments(stmt):
        if not reason:
            bad.append(line)
            continue
        for rule in rules:
            found[rule] = reason
    return found, bad


def unknown_rules(names: set[str]) -> set[str]:
    """The names that are no rule of the trace nor of squawk (which tells, rule by rule,
    when `--exclude` names one it does not have)."""
    left = sorted(n for n in names if n not in TRACE_RULES)
    unknown: set[str] = set()
    while left:
        done = subprocess.run([squawk_binary(), "--exclude", ",".join(left), "--reporter",
                               "json"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        bad = re.search(r"invalid rule name (\S+)", done.stderr or "")
        if done.returncode == 0 or bad is None or bad.group(1) not in left:
            break
        unknown.add(bad.group(1))
        left.remove(bad.group(1))
    return unknown


def _unknown_ignores(by_id: dict[str, SqlFile]) -> list[Finding]:
    """A warning for each rule an ignore comment names that no linter has (a typo
    silences nothing: the finding it meant stays)."""
    import difflib

    named = [(sql_file.id, line, rule) for sql_file in by_id.values()
             for stmt in sql_file.statements for line, rules, _ in _ignore_comments(stmt)
             for rule in rules]
    unknown = unknown_rules({rule for _, _, rule in named}) if named else set()
    out = []
    for file_id, line, rule in named:
        if rule not in unknown:
            continue
        close = difflib.get_close_matches(rule, TRACE_RULES, n=1, cutoff=0.8)
        hint = (f"did you mean {close[0]}?" if close else
                f"name a rule of the trace ({', '.join(TRACE_RULES)}) or of squawk, as the "
                "finding to silence names it")
        out.append(Finding(file_id, line, "unknown-ignore-rule", "warning",
                           f"`-- dmdb-lint: ignore {rule}` names no rule of dmdb lint or squawk, "
                           f"so it silences nothing: {hint}", "dmdb-lint"))
    return out


def _statement_at(sql_file: SqlFile, line: int) -> Statement | None:
    chosen = None
    for stmt in sql_file.statements:
        if stmt.text_line <= line:
            chosen = stmt
    return chosen


def _apply_ignores(result: LintResult, by_id: dict[str, SqlFile]) -> None:
    for finding in result.findings:
        sql_file = by_id.get(finding.file)
        stmt = _statement_at(sql_file, finding.line) if sql_file else None
        if stmt is None:
            continue
        rules, _ = ignores(stmt)
        if finding.rule in rules:
            finding.ignored = True
            finding.reason = rules[finding.rule]
    for sql_file in by_id.values():
        for stmt in sql_file.statements:
            for line in ignores(stmt)[1]:
                result.findings.append(Finding(
                    sql_file.id, line, "ignore-without-reason", "error",
                    "a `-- dmdb-lint: ignore RULE` comment must say why: append `-- reason`",
                    "dmdb-lint"))
    result.findings += _unknown_ignores(by_id)


# -- squawk ----------------------------------------------------------------------


def squawk_binary() -> str:
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.is_file() else shutil.which("squawk")
    if not found:
        raise DmdbError("squawk not found; install the squawk-cli package (a dependency of dmdb) "
                        "or put `squawk` on PATH")
    return found


def squawk_config(project: Project) -> Path | None:
    # The shipped tree carries its own (sql/squawk.toml); a project may keep its
    # config inside its SQL tree or as squawk's usual .squawk.toml beside it.
    sql_dir = project.sql_dir
    for candidate in (sql_dir / "squawk.toml", sql_dir.parent / ".squawk.toml",
                      Path.cwd() / ".squawk.toml"):
        if candidate.is_file():
            return candidate
    return None


def run_squawk(project: Project, files: list[SqlFile]) -> list[Finding]:
    """squawk's findings for `files` (lines 1-based). Transactional files are checked as
    dmdb runs them, inside a transaction; `-- transactional: false` ones outside."""
    binary = squawk_binary()
    config = squawk_config(project)
    base = [binary, "--reporter", "json"]
    if config is not None:
        base += ["--config", str(config)]
    else:
        # dmdb sets lock_timeout per attempt and statement_timeout itself.
        base += ["--exclude", "require-lock-timeout,require-statement-timeout"]
    findings: list[Finding] = []
    by_path = {str(f.path.resolve()): f for f in files}
    for transactional in (True, False):
        group = [f for f in files if f.transactional is transactional]
        if not group:
            continue
        flag = "--assume-in-transaction" if transactional else "--no-assume-in-transaction"
        done = subprocess.run([*base, flag, *(str(f.path) for f in group)],
                              capture_output=True, text=True)
        try:
            reported = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            raise DmdbError(f"squawk failed: {(done.stderr or done.stdout).strip()[:300]}") from None
        for item in reported:
            sql_file = by_path.get(str(Path(item["file"]).resolve()))
            level = str(item.get("level", "warning")).lower()
            findings.append(Finding(
                sql_file.id if sql_file else item["file"], int(item.get("line", 0)) + 1,
                item.get("rule_name", "squawk"), "error" if level == "error" else "warning",
                item.get("message", "") + (f" {item['help']}" if item.get("help") else ""),
                "squawk"))
    return findings


# -- the lock trace --------------------------------------------------------------


@dataclass
class _Relation:
    oid: int
    root: str  # the table's name, or its partitioned root's
    kind: str
    relfilenode: int


def _relations(conn: psycopg.Connection) -> dict[int, _Relation]:
    rows = conn.execute(resources.query("lint_relations")).fetchall()
    return {r[0]: _Relation(r[0], r[1], r[2], r[3]) for r in rows}


def _snapshot(conn: psycopg.Connection, oids: list[int]) -> dict:
    locks = conn.execute(resources.query("lint_locks"), (oids,)).fetchall()
    stats = conn.execute(resources.query("lint_stats"), (oids,)).fetchall()
    return {
        "locks": {(r[0], r[1]) for r in locks},
        "nodes": {r[0]: r[1] for r in stats},
        "scans": {r[0]: r[2] for r in stats},
        "writes": {r[0]: r[3] for r in stats},
        "indexes": {r[0] for r in conn.execute(resources.query("lint_indexes"), (oids,)).fetchall()},
    }


def _strongest(locks: set[tuple[int, str]], live: dict[int, _Relation]) -> dict[str, str]:
    out: dict[str, str] = {}
    for oid, mode in locks:
        root = live[oid].root
        if mode in MODES and (root not in out or MODES.index(mode) > MODES.index(out[root])):
            out[root] = mode
    return out


def _trace_statement(conn: psycopg.Connection, stmt: Statement, live: dict[int, _Relation]
                     ) -> tuple[TracedStatement, dict[str, str]]:
    """Run one statement inside the open transaction; what it did to live tables, and
    the strongest lock it holds on each (raw mode names)."""
    oids = list(live)
    before = _snapshot(conn, oids)
    started = time.monotonic()
    conn.execute(stmt.sql)
    ms = (time.monotonic() - started) * 1000
    after = _snapshot(conn, oids)
    new_locks = _strongest(after["locks"] - before["locks"], live)
    held = _strongest(after["locks"], live)

    def roots(oid_set) -> list[str]:
        return sorted({live[o].root for o in oid_set})

    rewritten = [o for o, node in after["nodes"].items()
                 if node and before["nodes"].get(o) and node != before["nodes"][o]]
    scanned = [o for o, n in after["scans"].items() if n > before["scans"].get(o, 0)]
    written = [o for o, n in after["writes"].items() if n > before["writes"].get(o, 0)]
    built = conn.execute(resources.query("lint_index_tables"),
                         (list(after["indexes"] - before["indexes"]),)).fetchall()
    traced = TracedStatement(
        stmt.line, stmt.first_line, [Lock(t, mode_name(m)) for t, m in sorted(new_locks.items())],
        roots(rewritten), roots(set(scanned) - set(rewritten)), roots(written),
        sorted({live[r[0]].root for r in built if r[0] in live}), round(ms, 1))
    return traced, held


def _judge(file_id: str, st: TracedStatement, held: dict[str, str],
           held_before: dict[str, int]) -> list[Finding]:
    """Findings of one traced statement. `held_before`: tables under ACCESS EXCLUSIVE
    taken by earlier statements of the transaction -> their line."""
    out = []

    def add(rule: str, severity: str, message: str) -> None:
        out.append(Finding(file_id, st.line, rule, severity, message, "trace"))

    for table in st.rewrites:
        add("table-rewrite", "error",
            f"rewrites {table} under ACCESS EXCLUSIVE: reads and writes wait for the whole copy; "
            "add the column without a volatile default, or change it in steps (new column, "
            "backfill in batches, swap)")
    for table in st.indexes_built:
        if table not in st.rewrites:
            add("non-concurrent-index", "error",
                f"builds an index on existing table {table} without CONCURRENTLY: writes wait for "
                "the whole build; use CREATE INDEX CONCURRENTLY in a `-- transactional: false` "
                "migration")
    for table in st.scans:
        mode = held.get(table, "")
        if table in st.indexes_built or not mode or MODES.index(mode) < _BLOCKS_WRITES:
            continue
        blocks = "reads and writes" if mode == "AccessExclusiveLock" else "writes"
        add("validation-scan", "error" if mode == "AccessExclusiveLock" else "warning",
            f"scans {table} to validate while holding {mode_name(mode)}: {blocks} wait for the "
            "scan; add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration")
    # A DDL statement's own row writes are the DDL audit's one row, not work.
    writes = st.writes if _DML.match(st.first_line) else []
    work = st.rewrites or st.scans or writes or st.indexes_built
    for table, line in held_before.items():
        if work:
            did = ", ".join(filter(None, [
                f"rewrites {', '.join(st.rewrites)}" if st.rewrites else "",
                f"builds an index on {', '.join(st.indexes_built)}" if st.indexes_built else "",
                f"scans {', '.join(st.scans)}" if st.scans else "",
                f"writes rows of {', '.join(writes)}" if writes else ""]))
            add("lock-held-across-work", "warning",
                f"ACCESS EXCLUSIVE on {table} (taken at line {line}) is still held while this "
                f"statement {did}: every query on {table} waits until the migration commits; "
                "move this work to its own migration, or take the lock last")
    for lock in st.locks:
        if lock.mode == "ACCESS EXCLUSIVE" and not out:
            add("access-exclusive", "info",
                f"takes ACCESS EXCLUSIVE on {lock.table}: queries on it queue while dmdb waits "
                "for the lock (at most --attempt-timeout per attempt) and until commit")
    return out


_CLUSTER_WIDE_WHAT = re.compile(
    r"^\s*(?P<verb>CREATE|ALTER|DROP|GRANT|REVOKE)\b\s*"
    r"(?P<obj>SYSTEM|ROLE|USER|GROUP|TABLESPACE|DATABASE)?\b", re.IGNORECASE)
_NOUN = {"ROLE": "a role", "USER": "a role", "GROUP": "a role", "TABLESPACE": "a tablespace",
         "DATABASE": "a database"}


def cluster_wide_what(text: str) -> str:
    """What a cluster-wide statement changes, for its finding: "changes a server setting
    (ALTER SYSTEM)", "drops a role", "grants a role membership"..."""
    m = _CLUSTER_WIDE_WHAT.match(text)
    if m is None:
        return "changes roles, tablespaces, databases or server settings"
    verb, obj = m["verb"].upper(), (m["obj"] or "").upper()
    if obj == "SYSTEM":
        return "changes a server setting (ALTER SYSTEM writes postgresql.auto.conf)"
    if verb in ("GRANT", "REVOKE"):
        return f"{'grants' if verb == 'GRANT' else 'revokes'} a role membership"
    done = {"CREATE": "creates", "ALTER": "alters", "DROP": "drops"}[verb]
    return f"{done} {_NOUN.get(obj, 'a shared object')}"


def _trace_file(conn: psycopg.Connection, sql_file: SqlFile, live: dict[int, _Relation]
                ) -> tuple[LintFile, list[Finding]]:
    import psycopg

    lint_file = LintFile(sql_file.id, str(sql_file.path), sql_file.transactional)
    findings: list[Finding] = []
    held_before: dict[str, int] = {}

    def failed(stmt: Statement, exc: Exception) -> None:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
        message = " ".join((primary + extra_detail(exc)).split())
        lint_file.statements.append(TracedStatement(stmt.line, stmt.first_line, error=message))
        findings.append(Finding(sql_file.id, stmt.line, "replay-failed", "error",
                                f"fails on the live schema: {message}", "trace"))

    def cluster_wide(stmt: Statement) -> bool:
        if not is_cluster_wide(stmt):
            return False
        lint_file.statements.append(TracedStatement(stmt.line, stmt.first_line, traced=False,
                                                    not_traced="cluster-wide"))
        findings.append(Finding(
            sql_file.id, stmt.line, "cluster-wide", "warning",
            f"{cluster_wide_what(_COMMENTS.sub('', stmt.sql))}, which every database of the "
            "server shares: not replayed (the scratch copy lives on the live server); it takes "
            "effect on the whole server at once when applied", "trace"))
        return True

    if sql_file.transactional:
        conn.execute("BEGIN")
        for stmt in sql_file.statements:
            if cluster_wide(stmt):
                continue
            try:
                traced, held = _trace_statement(conn, stmt, live)
            except psycopg.Error as exc:
                conn.execute("ROLLBACK")
                failed(stmt, exc)
                return lint_file, findings
            lint_file.statements.append(traced)
            findings += _judge(sql_file.id, traced, held, held_before)
            for lock in traced.locks:
                if lock.mode == "ACCESS EXCLUSIVE":
                    held_before.setdefault(lock.table, traced.line)
        conn.execute("COMMIT")
        return lint_file, findings
    for stmt in sql_file.statements:
        if cluster_wide(stmt):
            continue
        body = _COMMENTS.sub("", stmt.sql)
        try:
            if _CONCURRENTLY.search(body):
                # Cannot run in a transaction block, so not traced; it takes SHARE UPDATE
                # EXCLUSIVE, which blocks no reader or writer.
                started = time.monotonic()
                conn.execute(stmt.sql)
                lint_file.statements.append(TracedStatement(
                    stmt.line, stmt.first_line, ms=round((time.monotonic() - started) * 1000, 1),
                    traced=False, not_traced="concurrently"))
                continue
            conn.execute("BEGIN")
            traced, held = _trace_statement(conn, stmt, live)
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not conn.info.transaction_status == 0:  # in a failed transaction
                conn.execute("ROLLBACK")
            failed(stmt, exc)
            return lint_file, findings
        lint_file.statements.append(traced)
        findings += _judge(sql_file.id, traced, held, {})
    return lint_file, findings


def _copy_samples(settings: Settings, scratch: Scratch, notes: list[str]) -> None:
    """A few rows of each live table into the scratch copy (parents before children;
    a row the copy's constraints refuse is skipped)."""
    import psycopg
    from psycopg import sql

    with connect(settings, autocommit=True) as live, \
            connect(scratch.settings, autocommit=True, dbname=scratch.name) as target:
        live.execute("SET default_transaction_read_only = on")
        live.execute("SET statement_timeout = '5s'")
        tables = live.execute(resources.query("lint_sample_tables")).fetchall()
        copied = 0
        for schema, name, columns in tables:
            ident = sql.Identifier(schema, name)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            rows: list[bytes] = []
            try:
                with live.cursor().copy(sql.SQL("COPY (SELECT {} FROM {} LIMIT {}) TO STDOUT").format(
                        cols, ident, sql.Literal(SAMPLE_ROWS))) as cp:
                    rows = b"".join(bytes(chunk) for chunk in cp).splitlines(keepends=True)
            except psycopg.Error:
                continue
            for row in rows:
                try:
                    with target.transaction(), target.cursor().copy(
                            sql.SQL("COPY {} ({}) FROM STDIN").format(ident, cols)) as cp:
                        cp.write(row)
                    copied += 1
                except psycopg.Error:
                    continue
        # The copy's sequences start over; the live values keep sampled keys unique.
        for schema, name, value in live.execute(resources.query("lint_sequences")).fetchall():
            try:
                target.execute("SELECT setval(%s, %s)",
                               (sql.Identifier(schema, name).as_string(target), value))
            except psycopg.Error:
                continue
        notes.append(f"lock trace on a scratch copy of the live schema with {copied} sample row(s)")


@dataclass
class _Plan:
    steps: list[tuple[SqlFile, bool]]  # (file, report it?) in replay order
    reported: list[SqlFile]
    # Set when a chosen file is an applied migration: the scratch copy is then built by
    # replaying the migrations before it, not from the live schema (which has it already).
    before: str | None = None


def _plan(conn: psycopg.Connection, project: Project, files: list[Path] | None) -> _Plan:
    """What to replay, in order, and what to report on."""
    state = status(conn, project)
    applied = {m.id for m in state.migrations if m.state == "applied"}
    pending = [m.forward for m in project.migrations() if m.id not in applied]
    if not files:
        return _Plan([(f, True) for f in pending], pending)
    chosen: list[SqlFile] = []
    for path in files:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file; pass migration files, or nothing for the "
                              "pending migrations")
        chosen.append(read_sql_file(path))
    wanted = {str(f.path.resolve()) for f in chosen}
    in_project = {str(m.forward.path.resolve()): m for m in project.migrations()}
    earliest = min((in_project[w].id for w in wanted
                    if w in in_project and in_project[w].id in applied), default=None)
    if earliest is not None:
        # An applied migration: against the schema before it, replayed from the files.
        ordered = [m.forward for m in project.migrations()]
        last = max(i for i, f in enumerate(ordered) if str(f.path.resolve()) in wanted)
        steps = [(f, str(f.path.resolve()) in wanted) for f in ordered[:last + 1]]
        steps += [(f, True) for f in chosen if str(f.path.resolve()) not in in_project]
        return _Plan(steps, chosen, before=earliest)
    steps: list[tuple[SqlFile, bool]] = []
    last = max((i for i, f in enumerate(pending) if str(f.path.resolve()) in wanted), default=-1)
    for f in pending[:last + 1]:  # pending migrations before a chosen one run first, unreported
        if str(f.path.resolve()) not in wanted:
            steps.append((f, False))
    steps += [(f, True) for f in chosen]
    return _Plan(steps, chosen)


def rollback_findings(reported: list[SqlFile]) -> list[Finding]:
    """A migration without its rollback, or with one that holds no statement (comments
    only), is refused by `up`: lint says so first (rules `missing-rollback`,
    `empty-rollback`, errors). A migration is paired with the rollbacks/ beside its
    migrations/; a file outside any migrations/ folder has no pair to look for."""
    out = []
    for sql_file in reported:
        folder = sql_file.path.resolve().parent
        if folder.name != "migrations":
            continue
        tree = folder.parent
        rollback = tree / "rollbacks" / sql_file.path.name
        if not rollback.is_file():
            out.append(Finding(sql_file.id, 1, "missing-rollback", "error",
                               f"no rollback file {rollback}: `dmdb up` refuses a migration "
                               "without its exact inverse; write it", "dmdb-lint"))
        elif read_sql_file(rollback).is_empty:
            out.append(Finding(sql_file.id, 1, "empty-rollback", "error",
                               f"its rollback {rollback} holds no statement (comments only): "
                               "`dmdb up` refuses it; write the inverse (nothing to undo: say so "
                               "in a comment and `SELECT 1;`)", "dmdb-lint"))
    return out


def _unclassified(conn: psycopg.Connection, project: Project) -> set[str]:
    """The user-linked relations sql/privacy.toml does not classify (dmdb.privacy)."""
    from dmdb.privacy.inventory import inventory

    return {r.qualified for r in inventory(conn, project.sql_dir).unclassified}


def _privacy_finding(file_id: str, relation: str) -> Finding:
    return Finding(file_id, 0, "privacy-unclassified", "error",
                   f"{relation} holds user data (a key to users or a user_id column) and "
                   "sql/privacy.toml does not classify it: add it (action \"delete\" with its "
                   "key, or \"excluded\" with a reason) so erasure and export cover it",
                   "dmdb-lint")


def lint(settings: Settings, project: Project, *, files: list[Path] | None = None,
         trace: bool = True, progress: Callable[[str], None] | None = None) -> LintResult:
    settings = resolve(settings.session())
    result = LintResult()
    with connect(settings, autocommit=True, session="dmdb lint") as conn:
        planned = _plan(conn, project, files)
    plan, reported = planned.steps, planned.reported
    if not reported:
        result.notes.append("no pending migrations: nothing to lint")
        return result
    result.findings += rollback_findings(reported)
    result.findings += run_squawk(project, reported)
    if trace:
        with scratch_database(settings, "lint") as scratch:
            if scratch.note:
                result.notes.append(scratch.note)
            if planned.before is not None:
                result.notes.append(
                    f"{planned.before} is applied: linted against the schema before it, made "
                    "by replaying the migrations before it (the live schema has it already)")
            else:
                for name in restore_schema(settings, settings.dbname, scratch):
                    result.notes.append(f"extension {name} left out of the scratch copy: this "
                                        "role may not create it (the live database has it)")
                _copy_samples(settings, scratch, result.notes)
            with connect(scratch.settings, autocommit=True, dbname=scratch.name) as conn:
                conn.execute("SET client_min_messages = warning")
                live = _relations(conn)
                runner = Runner(conn, command="dmdb lint")
                unclassified = _unclassified(conn, project)
                sampled = planned.before is None
                for sql_file, report in plan:
                    if not report:
                        runner.run_file(without_cluster_wide(sql_file))
                        continue
                    if not sampled:  # the schema before the applied file is made: its rows
                        _copy_samples(settings, scratch, result.notes)
                        live, sampled = _relations(conn), True
                    if progress:
                        progress(sql_file.id)
                    lint_file, findings = _trace_file(conn, sql_file, live)
                    result.files.append(lint_file)
                    result.findings += findings
                    now = _unclassified(conn, project)
                    result.findings += [_privacy_finding(sql_file.id, name)
                                        for name in sorted(now - unclassified)]
                    unclassified = now
    else:
        result.files = [LintFile(f.id, str(f.path), f.transactional) for f in reported]
    _apply_ignores(result, {f.id: f for f in reported})
    result.findings.sort(key=lambda f: (f.file, f.line, -SEVERITIES.index(f.severity)))
    return result
