"""Running one SQL file on one connection: short lock waits retried whole, timeouts of
`-- transactional: false` statements, INVALID indexes of an earlier failed CONCURRENTLY
build dropped and rebuilt, and failures told for what they are (retry.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from dmdb import resources
from dmdb.errors import MigrationError
from dmdb.migrate.files import SqlFile, Statement
from dmdb.migrate.retry import (
    BlockerWatch,
    OnWait,
    RetriesExhausted,
    RetryPolicy,
    Wait,
    attempt_with_retries,
    connection_lost,
    describe_cancel,
    describe_lost_connection,
    describe_sql_error,
    sqlstate,
)

if TYPE_CHECKING:
    import psycopg


_CONCURRENT_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>(?:\"[^\"]+\"|[\w$]+)(?:\s*\.\s*(?:\"[^\"]+\"|[\w$]+))?)",
    re.IGNORECASE,
)
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def concurrent_index_name(sql_text: str) -> str | None:
    """The index a `CREATE INDEX CONCURRENTLY name ...` statement builds, as written."""
    match = _CONCURRENT_INDEX.match(_SQL_COMMENTS.sub("", sql_text))
    return match["name"] if match else None


class Runner:
    """Runs files on one connection: retries, timeouts, and failures told as they are."""

    def __init__(self, conn: psycopg.Connection, *, policy: RetryPolicy | None = None,
                 watch: BlockerWatch | None = None, on_wait: OnWait | None = None,
                 command: str = "dmdb up", waits: list[Wait] | None = None,
                 dropped: list[str] | None = None):
        self.conn = conn
        self.policy = policy or RetryPolicy()
        self.watch = watch
        self.on_wait = on_wait
        self.command = command
        self.waits = waits if waits is not None else []  # lock waits retried
        self.dropped = dropped if dropped is not None else []  # INVALID indexes rebuilt

    def _fail(self, sql_file: SqlFile, stmt: Statement | None, exc: Exception, *,
              transactional: bool, note: str = "") -> MigrationError:
        if isinstance(exc, RetriesExhausted):
            return exc
        code = sqlstate(exc)
        if connection_lost(exc, self.conn):
            return MigrationError(describe_lost_connection(
                sql_file.id, exc, transactional=transactional, command=self.command))
        where = f"{sql_file.path}:{stmt.line}" if stmt else str(sql_file.path)
        if code == "57014":
            return MigrationError(describe_cancel(sql_file.id, where, exc, self.policy))
        text = describe_sql_error(sql_file.path, stmt, exc) if stmt else str(exc)
        return MigrationError(text + note)

    def run_file(self, sql_file: SqlFile, record: Callable[[], None] | None = None) -> None:
        """Run a file and, in the same transaction when it is transactional, `record()`."""
        import psycopg

        if not sql_file.transactional:
            self._run_each(sql_file)
            if record is not None:
                self._retrying(sql_file, lambda: self._in_transaction(record))
            return
        current: list[Statement | None] = [None]

        def attempt() -> None:
            with self.conn.transaction():
                for stmt in sql_file.statements:
                    current[0] = stmt
                    self.conn.execute(stmt.sql)
                current[0] = None
                if record is not None:
                    record()

        try:
            attempt_with_retries(attempt, file_id=sql_file.id, policy=self.policy,
                                 watch=self.watch, on_wait=self.on_wait, waits=self.waits)
        except (psycopg.Error, RetriesExhausted) as exc:
            raise self._fail(sql_file, current[0], exc, transactional=True) from exc

    def _in_transaction(self, action: Callable[[], None]) -> None:
        with self.conn.transaction():
            action()

    def _retrying(self, sql_file: SqlFile, action: Callable[[], None]) -> None:
        import psycopg

        try:
            attempt_with_retries(action, file_id=sql_file.id, policy=self.policy, watch=self.watch,
                                 on_wait=self.on_wait, waits=self.waits)
        except (psycopg.Error, RetriesExhausted) as exc:
            raise self._fail(sql_file, None, exc, transactional=True) from exc

    def _set(self, name: str, value: str) -> None:
        self.conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    def _drop_invalid(self, index: str) -> None:
        from psycopg import sql

        row = self.conn.execute(resources.query("ledger_invalid_index"), (index,)).fetchone()
        if row is None:
            return
        self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.Identifier(row[0], row[1])))
        self.dropped.append(f"{row[0]}.{row[1]}")

    def _run_each(self, sql_file: SqlFile) -> None:
        """Autocommit, statement by statement (`-- transactional: false` files).

        CONCURRENTLY statements wait for locks without blocking readers or writers, so
        they run under the long statement bound; any other statement gets the short
        per-attempt lock_timeout and is retried on its own (one statement is atomic).
        A CONCURRENTLY index build that failed or was killed before leaves an INVALID
        index, which `IF NOT EXISTS` would keep: it is dropped and built again."""
        import psycopg

        note = (" (non-transactional: statements before this one stay applied; fix it and "
                f"run `{self.command}` again)")
        policy = self.policy
        self._set("statement_timeout", policy.statement_timeout)
        try:
            for stmt in sql_file.statements:
                concurrent = bool(_CONCURRENTLY.search(_SQL_COMMENTS.sub("", stmt.sql)))
                index = concurrent_index_name(stmt.sql)
                self._set("lock_timeout",
                          policy.statement_timeout if concurrent else policy.lock_timeout)

                def attempt(stmt=stmt, index=index) -> None:
                    if index:
                        self._drop_invalid(index)
                    self.conn.execute(stmt.sql)
                    if index:
                        self._check_valid(sql_file, stmt, index)

                try:
                    attempt_with_retries(attempt, file_id=sql_file.id, policy=policy,
                                         watch=self.watch, on_wait=self.on_wait,
                                         waits=self.waits)
                except (psycopg.Error, RetriesExhausted) as exc:
                    failure = self._fail(sql_file, stmt, exc, transactional=False, note=note)
                    if index and not self.conn.closed:
                        try:  # leave no INVALID index behind when we can help it
                            self._drop_invalid(index)
                        except psycopg.Error:
                            pass
                    raise failure from exc
        finally:
            if not self.conn.closed:
                try:
                    self._set("statement_timeout", "0")
                    self._set("lock_timeout", policy.lock_timeout)
                except psycopg.Error:
                    pass

    def _check_valid(self, sql_file: SqlFile, stmt: Statement, index: str) -> None:
        row = self.conn.execute(resources.query("ledger_invalid_index"), (index,)).fetchone()
        if row is not None:
            raise MigrationError(
                f"{sql_file.path}:{stmt.line}: index {row[0]}.{row[1]} is INVALID after the "
                "build; drop it (DROP INDEX CONCURRENTLY) and run the command again")
