"""Errors a user can cause. Each carries its exit code and one line naming the fix."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (PostgreSQL adds DETAIL/HINT lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else (default if default is not None else type(exc).__name__)


class DmdbError(Exception):
    """An error to report as one line on stderr, with `exit_code`."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(DmdbError):
    """Bad configuration or usage: exit 2."""

    exit_code = EXIT_USAGE


class ConnectError(DmdbError):
    """The server could not be reached or refused us."""


class MigrationError(DmdbError):
    """A migration failed, or the ledger disagrees with the files."""


class LockNotAvailable(DmdbError):
    """Another dmdb run holds the lock and did not finish within --lock-timeout."""


class SchemaMissing(DmdbError):
    """The database has no dmdb schema (no migration applied): every command that needs it
    says so the same way, exit 1 (the operation cannot run; `dmdb up` is the fix)."""


def schema_missing(database: str, what: str) -> SchemaMissing:
    return SchemaMissing(
        f"database {database} has no dmdb schema (no migration applied), which {what} needs; "
        "run `dmdb up` first, or check DB_NAME / DATABASE_URL")
