"""Migrations on a busy database: short lock waits, whole-transaction retries, named
blockers, and failures reported for what they are.

A DDL statement waiting for its lock makes every later query on that table queue behind
it. So each attempt waits at most a short `lock_timeout` (default 1 s), gives up, lets
the queue drain, and the whole transaction is tried again after a jittered backoff,
within a bounded number of attempts and total time. While an attempt waits, a second
connection watches `pg_blocking_pids()` so that dmdb can say who is in the way.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from dmdb import config, resources
from dmdb.errors import ConfigError, MigrationError

if TYPE_CHECKING:
    import psycopg

# SQLSTATEs after which the whole transaction is simply tried again.
RETRYABLE = {
    "55P03": "lock not obtained within lock_timeout",
    "40P01": "deadlock detected",
    "40001": "serialization failure",
}
# The server went away or is going away: not the file's fault.
CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


_LOCK_WAIT_WHY = ("0 means wait forever, and every query on the table queues behind a "
                  "waiting DDL")


def duration_ms(value: str, name: str) -> float:
    """Milliseconds of a duration (2s, 500ms, 1min; a bare number is seconds)."""
    return config.duration_ms(value, name, example="1s")


def bounded_duration(value: str, name: str, *, why: str = _LOCK_WAIT_WHY,
                     example: str = "1s", lock: bool = True) -> str:
    """A duration that must be a real limit: 0 means `no limit` to PostgreSQL, refused.
    Returned with its unit (a bare number is seconds)."""
    checked = config.check_duration(value, name)
    if duration_ms(checked, name) < 1:
        raise ConfigError(f"{name} {value!r} would remove the limit ({why}); set a bounded "
                          f"value such as {example}")
    if lock:
        config.bare_too_long(value, name)
    return checked


@dataclass(frozen=True)
class RetryPolicy:
    """How a migration waits for locks. Flags of `up`/`rollback` override the environment:
    DMDB_MIGRATE_LOCK_TIMEOUT, DMDB_MIGRATE_ATTEMPTS, DMDB_MIGRATE_RETRY_FOR,
    DMDB_MIGRATE_BACKOFF, DMDB_MIGRATE_BACKOFF_MAX, DMDB_MIGRATE_STATEMENT_TIMEOUT."""

    lock_timeout: str = "1s"  # per attempt, per statement
    attempts: int = 40
    retry_for: float = 300.0  # seconds, all attempts and pauses of one migration
    backoff: float = 0.5  # first pause, seconds; doubles up to backoff_max, jittered
    backoff_max: float = 10.0
    # Statements of `-- transactional: false` files. Waiting on a CONCURRENTLY build
    # blocks no reader or writer, so those run under this bound for locks and run time.
    statement_timeout: str = "2h"

    # The command-line spelling of each field (`up --lock-timeout` is another knob: the
    # wait for another run's advisory lock).
    FLAGS = {"lock_timeout": "--attempt-timeout"}

    ENV = {
        "lock_timeout": "DMDB_MIGRATE_LOCK_TIMEOUT",
        "attempts": "DMDB_MIGRATE_ATTEMPTS",
        "retry_for": "DMDB_MIGRATE_RETRY_FOR",
        "backoff": "DMDB_MIGRATE_BACKOFF",
        "backoff_max": "DMDB_MIGRATE_BACKOFF_MAX",
        "statement_timeout": "DMDB_MIGRATE_STATEMENT_TIMEOUT",
    }

    @classmethod
    def build(cls, env: dict | None = None, *, session_lock_timeout: str | None = None,
              **flags) -> RetryPolicy:
        """Flags (non-None) > environment > defaults; every value checked.

        `session_lock_timeout` (DMDB_LOCK_TIMEOUT) caps the per-attempt default, so a
        setting below 1 s is honoured by migrations too."""
        env = os.environ if env is None else env
        values: dict = {}
        for attr, key in cls.ENV.items():
            raw = flags.get(attr)
            source = cls.FLAGS.get(attr, f"--{attr.replace('_', '-')}")
            if raw is None and env.get(key) not in (None, ""):
                raw, source = env[key], key
            if raw is None:
                continue
            if attr == "lock_timeout":
                values[attr] = bounded_duration(str(raw), source)
            elif attr == "statement_timeout":
                values[attr] = bounded_duration(
                    str(raw), source, example="2h", lock=False,
                    why="0 means a non-transactional statement may run and wait forever")
            else:
                if attr == "attempts":
                    try:
                        number = int(raw)
                    except ValueError:
                        raise ConfigError(f"{source} {raw!r} is not a whole number") from None
                else:  # retry_for, backoff, backoff_max: durations (bare = seconds)
                    number = config.duration_seconds(raw, source)
                if number <= 0:
                    raise ConfigError(f"{source} must be more than 0 (got {raw})")
                values[attr] = number
        policy = cls(**values)
        if "lock_timeout" not in values and session_lock_timeout:
            session = bounded_duration(session_lock_timeout, "DMDB_LOCK_TIMEOUT")
            if duration_ms(session, "DMDB_LOCK_TIMEOUT") < duration_ms(policy.lock_timeout, ""):
                policy = replace(policy, lock_timeout=session)
        return policy

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt `attempt` (1-based): exponential, jittered 50-100 %."""
        base = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
        return base * (0.5 + random.random() / 2)


@dataclass(frozen=True)
class Blocker:
    pid: int
    application_name: str
    state: str
    seconds: float  # in its current transaction (or state when idle)
    query: str  # first line of its current or last query

    def describe(self) -> str:
        app = self.application_name or "no application_name"
        return (f"pid {self.pid} ({app}, {self.state or 'unknown state'} for {self.seconds:.0f}s"
                f"{': ' + self.query if self.query else ''})")


def describe_blockers(blockers: list[Blocker]) -> str:
    if not blockers:
        return "blocker not seen (it ended, or the lock was taken by a short query)"
    return "blocked by " + "; ".join(b.describe() for b in blockers)


class BlockerWatch:
    """A second connection that, while an attempt runs, polls pg_blocking_pids() of the
    migrating backend and remembers the last blockers it saw."""

    POLL = 0.15

    def __init__(self, conn: psycopg.Connection):
        self._pid = conn.info.backend_pid
        self._dsn = conn.info.dsn
        self._password = conn.info.password
        self._conn: psycopg.Connection | None = None
        self._active = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen: list[Blocker] = []
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BlockerWatch:
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a watcher must never mask the run's error
                pass

    def begin(self) -> None:
        with self._lock:
            self._seen = []
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dmdb-blocker-watch",
                                            daemon=True)
            self._thread.start()
        self._active.set()

    def end(self) -> list[Blocker]:
        self._active.clear()
        with self._lock:
            return list(self._seen)

    def _connect(self):
        import psycopg

        kwargs = {"autocommit": True, "application_name": "dmdb-watch"}
        if self._password:
            kwargs["password"] = self._password
        return psycopg.connect(self._dsn, **kwargs)

    def _run(self) -> None:
        import psycopg

        query = resources.query("ledger_blockers")
        while not self._stop.is_set():
            self._active.wait()
            if self._stop.is_set():
                return
            if self._conn is None:
                # Most attempts never wait: open the watching connection only for one
                # that is still running a moment later.
                time.sleep(self.POLL / 3)
                if not self._active.is_set() or self._stop.is_set():
                    continue
            try:
                if self._conn is None:
                    self._conn = self._connect()
                rows = self._conn.execute(query, (self._pid,)).fetchall()
            except psycopg.Error:
                return  # watching is a courtesy: never fail the run for it
            if rows:
                found = [Blocker(r[0], r[1] or "", r[2] or "", float(r[3] or 0), r[4] or "")
                         for r in rows]
                with self._lock:
                    self._seen = found
            time.sleep(self.POLL)


@dataclass
class Wait:
    """One failed attempt, as reported while retrying."""

    file_id: str
    attempt: int
    attempts: int
    reason: str
    pause: float
    blockers: list[Blocker] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.file_id}: {self.reason} (attempt {self.attempt}/{self.attempts}), "
                f"{describe_blockers(self.blockers)}; retrying in {self.pause:.1f}s")

    def to_dict(self) -> dict:
        return asdict(self)


OnWait = Callable[[Wait], None]


def sqlstate(exc: BaseException) -> str | None:
    diag = getattr(exc, "diag", None)
    return getattr(diag, "sqlstate", None) if diag is not None else None


def connection_lost(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    import psycopg

    code = sqlstate(exc) or ""
    if code.startswith(CONNECTION_LOST):
        return True
    if isinstance(exc, psycopg.OperationalError) and not code:
        return True
    return conn is not None and conn.closed


def attempt_with_retries(run: Callable[[], None], *, file_id: str, policy: RetryPolicy,
                         watch: BlockerWatch | None, on_wait: OnWait | None,
                         waits: list[Wait]) -> None:
    """Run `run()` (one whole transaction or one autocommit statement) until it succeeds,
    retrying lock timeouts, deadlocks and serialization failures within the policy."""
    import psycopg

    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        if watch is not None:
            watch.begin()
        try:
            run()
            if watch is not None:
                watch.end()
            return
        except psycopg.Error as exc:
            blockers = watch.end() if watch is not None else []
            code = sqlstate(exc)
            if code not in RETRYABLE:
                raise
            pause = policy.delay(attempt)
            spent = time.monotonic() - started
            if attempt >= policy.attempts or spent + pause > policy.retry_for:
                raise RetriesExhausted(file_id, code, attempt, spent, blockers, policy) from exc
            wait = Wait(file_id, attempt, policy.attempts, RETRYABLE[code], round(pause, 2),
                        blockers)
            waits.append(wait)
            if on_wait is not None:
                on_wait(wait)
            time.sleep(pause)


class RetriesExhausted(MigrationError):
    def __init__(self, file_id: str, code: str, attempts: int, spent: float,
                 blockers: list[Blocker], policy: RetryPolicy):
        self.file_id = file_id
        self.code = code
        self.blockers = blockers
        if code == "55P03":
            what = (f"could not take the locks it needs in {attempts} attempt(s) over {spent:.0f}s "
                    f"(each waiting at most lock_timeout {policy.lock_timeout}), "
                    f"{describe_blockers(blockers)}")
            fix = ("end or wait out that session, then run the command again; or allow more "
                   "with --attempts / --retry-for")
        else:
            what = f"{RETRYABLE[code]} [{code}] in each of {attempts} attempt(s) over {spent:.0f}s"
            fix = "concurrent work keeps conflicting with it; run the command again when it is quieter"
        super().__init__(f"{file_id}: {what} — not the file's fault; {fix}")


def describe_sql_error(path, stmt, exc: BaseException) -> str:
    """`file:line: message [SQLSTATE]` with PostgreSQL's DETAIL and HINT, on one line."""
    diag = getattr(exc, "diag", None)
    line = stmt.line
    position = getattr(diag, "statement_position", None) if diag else None
    if position:
        try:
            line = stmt.text_line + stmt.sql.count("\n", 0, int(position) - 1)
        except ValueError:
            pass
    primary = (getattr(diag, "message_primary", None) if diag else None) or str(exc).strip()
    primary = primary.splitlines()[0] if primary else type(exc).__name__
    code = sqlstate(exc)
    text = f"{path}:{line}: {primary}{f' [{code}]' if code else ''}"
    return text + extra_detail(exc)


def extra_detail(exc: BaseException) -> str:
    """PostgreSQL's DETAIL and HINT, flattened to one line."""
    diag = getattr(exc, "diag", None)
    if diag is None:
        return ""
    out = ""
    for label, value in (("detail", diag.message_detail), ("hint", diag.message_hint)):
        if value:
            out += f" ({label}: {' '.join(value.split())})"
    return out


def describe_lost_connection(file_id: str, exc: BaseException, *, transactional: bool,
                             command: str) -> str:
    code = sqlstate(exc)
    reason = " ".join((str(exc).strip().splitlines() or ["connection closed"])[0].split())
    fate = (f"its transaction was rolled back by the server, so {file_id} is not applied"
            if transactional else
            f"{file_id} is not recorded; statements before the one running may stay applied "
            "(the file is re-runnable and is run again whole)")
    return (f"{file_id}: lost the connection to the server ({reason}"
            f"{f' [{code}]' if code else ''}) — not the file's fault; {fate}; check that the "
            f"server is up (`dmdb server status`, its log) and run `{command}` again")


def describe_cancel(file_id: str, where: str, exc: BaseException, policy: RetryPolicy | None) -> str:
    message = (str(exc).strip().splitlines() or [""])[0]
    if "statement timeout" in message and policy is not None:
        return (f"{where}: statement ran longer than statement_timeout {policy.statement_timeout} "
                f"[57014] — raise --statement-timeout (DMDB_MIGRATE_STATEMENT_TIMEOUT) and run "
                "it again")
    return (f"{where}: {message} [57014] — another session cancelled it (pg_cancel_backend); "
            f"{file_id} is not applied; run the command again")
