"""`dmdb drift` and `dmdb baseline`: does the live schema match what the migrations make?

The applied migrations (per the ledger) are replayed in a scratch database on the same
server, then both schemas are dumped with pg_dump and compared object by object (pg_dump's
`-- Name: …; Type: …; Schema: …` headers), ownership aside. Runtime objects that no
migration makes are left out, on both sides:

- the monthly partitions `dmdb partitions` creates, archives and drops: any object named
  after a RANGE-partitioned table followed by `_YYYY_MM` (learning_events_2026_11,
  its indexes, constraints and attachments), in any schema;
- a schema that holds nothing but such partitions (`--archive-schema`);
- objects made by `sql/functions/*.sql` files that the ledger does not record as applied
  at their current content (`dmdb up` applies them; they are compared once applied).

`baseline --to ID` records migrations through ID as applied without running them, on a
database that already has that schema (made by hand or by another tool), after the same
comparison against those migrations; any difference refuses it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from dmdb.config import Settings
from dmdb.db import connect, extensions_refused, resolve
from dmdb.errors import DmdbError, MigrationError
from dmdb.migrate.engine import (
    Migration,
    Project,
    Runner,
    Status,
    acquire_lock,
    apply_migration,
    mark_applied,
    release_lock,
    status,
)
from dmdb.migrate.files import for_scratch_replay
from dmdb.migrate.verify import dump_objects, scratch_database

if TYPE_CHECKING:
    import psycopg

@dataclass
class Difference:
    object: str  # "TABLE public.users"
    kind: str  # only_in_live | only_in_migrations | differs
    diff: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = {"only_in_live": "in the live database only (made by hand?)",
                 "only_in_migrations": "made by the migrations but missing from the live database",
                 "differs": "differs from what the migrations make"}[self.kind]
        return f"{self.object}: {where}"


@dataclass
class DriftResult:
    database: str
    through: str | None  # the last migration compared against
    compared: list[str]  # migration ids replayed
    differences: list[Difference] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # runtime objects left out
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"ok": self.ok, "database": self.database, "through": self.through,
                "compared": self.compared, "differences": [asdict(d) for d in self.differences],
                "ignored": self.ignored, "notes": self.notes}


def _range_parents(*dumps: dict[str, list[str]]) -> set[str]:
    parents = set()
    for objects in dumps:
        for key, lines in objects.items():
            if key.startswith("TABLE ") and any("PARTITION BY RANGE" in line for line in lines):
                parents.add(key.rsplit(".", 1)[-1])
    return parents


def _runtime_keys(live: dict[str, list[str]], replay: dict[str, list[str]]) -> set[str]:
    parents = _range_parents(live, replay)
    if not parents:
        return set()
    monthly = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(parents))) + r")_\d{4}_\d{2}")
    out = {k for k in (*live, *replay) if monthly.search(k)}
    # A schema that holds nothing but archived partitions.
    for key in live:
        if key.startswith("SCHEMA ") and key not in replay:
            schema = key.split(" ", 1)[1]
            inside = [k for k in live if f" {schema}." in k]
            if inside and all(k in out for k in inside):
                out.add(key)
    return out


def _compare(live: dict[str, list[str]], replay: dict[str, list[str]],
             skip: set[str]) -> list[Difference]:
    out = []
    for key in sorted(set(live) | set(replay)):
        if key in skip:
            continue
        if key not in replay:
            out.append(Difference(key, "only_in_live", live[key][:20]))
        elif key not in live:
            out.append(Difference(key, "only_in_migrations", replay[key][:20]))
        elif live[key] != replay[key]:
            diff = list(difflib.unified_diff(replay[key], live[key], "migrations", "live",
                                             lineterm="", n=0))
            out.append(Difference(key, "differs", diff[2:40]))
    return out


def _replay(settings: Settings, scratch: str, migrations: list[Migration], project: Project,
            state: Status | None, progress=None,
            hidden: tuple[str, ...] = ()) -> tuple[dict, dict, list[str], list[str]]:
    """Replay migrations in `scratch`; dump; apply the function files; dump again.

    Returns (after migrations, after functions, function files that did not apply,
    cluster-wide statements left out of the replay)."""
    notes: list[str] = []
    left_out: list[str] = []
    with connect(settings, autocommit=True, dbname=scratch) as conn:
        conn.execute("SET client_min_messages = warning")
        runner = Runner(conn, command="dmdb drift")
        for m in migrations:
            if progress is not None:
                progress(f"replaying {m.id} in a scratch database")
            m, skipped = for_scratch_replay(m)
            left_out += [f"not replayed (cluster-wide: the replay keeps the live server's "
                         f"roles and settings): {where}" for where in skipped
                         if where.startswith("migrations/")]
            try:
                apply_migration(conn, m, record=False, runner=runner)
            except MigrationError as exc:
                raise DmdbError(f"replaying the migrations in a scratch database failed: {exc}; "
                                "fix the migration (`dmdb verify` checks them)") from None
        base = dump_objects(settings, scratch, exclude_schemas=hidden)
        for f in project.functions():
            try:
                runner.run_file(f)
            except MigrationError as exc:
                notes.append(f"function file {f.id} does not apply on these migrations ({exc}); "
                             "its objects are not compared")
    return base, dump_objects(settings, scratch, exclude_schemas=hidden), notes, left_out


def _extensions_not_creatable(settings: Settings, scratch: str, keys: list[str]) -> list[str]:
    """The "EXTENSION name" keys of the live database this role may not create (tried in
    the scratch database: a managed service's admin role may create some, a plain owner
    none): an administrator made them, not a migration, so they are no drift."""
    with connect(settings, autocommit=True, dbname=scratch) as conn:
        refused = extensions_refused(conn, {k.split()[-1] for k in keys}, keep=False)
    return [k for k in keys if k.split()[-1] in refused]


def _server_major(settings: Settings) -> int:
    with connect(settings, autocommit=True) as conn:
        return conn.execute("SELECT current_setting('server_version_num')::int / 10000"
                            ).fetchone()[0]


def drift(settings: Settings, project: Project, *, to: str | None = None,
          functions_applied: bool | None = None,
          scratch: Settings | None = None, progress=None) -> DriftResult:
    """Compare the live schema with the applied migrations (or those through `to`).

    `functions_applied=False` leaves every function file's objects out (baseline: `up`
    applies them afterwards); by default they are compared when the ledger records each
    function file as applied at its current content."""
    settings = resolve(settings.session())
    with connect(settings, autocommit=True, session="dmdb drift") as conn:
        state = status(conn, project)
        # A monitoring login may not use every schema (dmdb_privacy is the owner's):
        # those are left out of both sides, and said, rather than failing the dump.
        hidden = tuple(r[0] for r in conn.execute(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema' AND NOT has_schema_privilege(oid, 'USAGE') "
            "ORDER BY 1").fetchall())
    if to is None and not any(m.state == "applied" for m in state.migrations):
        from dmdb.errors import schema_missing

        raise schema_missing(settings.dbname, "dmdb drift (it compares the live schema with "
                             "the applied migrations)")
    # The replay runs on the live server, or on `scratch` (a monitoring login may read the
    # live schema but not create databases there): of the same major, since pg_dump prints
    # what the server's catalog functions return, and those change between majors.
    replay_on = resolve(scratch.session()) if scratch is not None else settings
    if scratch is not None and _server_major(replay_on) != _server_major(settings):
        raise DmdbError(f"--scratch-url is PostgreSQL {_server_major(replay_on)} and the live "
                        f"server {_server_major(settings)}: their schemas print differently; "
                        "give a scratch server of the live server's major version")
    missing = [m.id for m in state.migrations if m.missing_file]
    if missing and to is None:
        raise DmdbError(f"{missing[0]}: applied but its file is missing, so it cannot be replayed; "
                        "restore the file")
    if to is not None:
        chosen = [m for m in project.migrations() if m.id <= project.migration(to, "--to").id]
    else:
        applied = {m.id for m in state.migrations if m.state == "applied"}
        chosen = [m for m in project.migrations() if m.id in applied]
    result = DriftResult(settings.dbname, chosen[-1].id if chosen else None, [m.id for m in chosen])
    result.notes.extend(f"schema {name}: role {settings.user or 'of this login'} may not use "
                        "it; not compared" for name in hidden)
    # A half-applied file explains its drift; re-running it is the fix.
    result.notes.extend(state.interrupted)
    with scratch_database(replay_on, "drift", cluster=scratch is None) as where:
        base, with_functions, notes, left_out = _replay(where.settings, where.name, chosen,
                                                        project, state, progress, hidden)
        result.notes.extend(left_out + notes + ([where.note] if where.note else []))
        if progress is not None:
            progress(f"dumping the live schema of {settings.dbname}")
        live = dump_objects(settings, settings.dbname, exclude_schemas=hidden)
        not_ours = _extensions_not_creatable(where.settings, where.name,
                                             [k for k in live if k.startswith("EXTENSION ")
                                              and k not in with_functions])
    function_keys = {k for k in with_functions if base.get(k) != with_functions[k]}
    if functions_applied is None:
        stale = [f.id for f in state.functions if f.state != "applied"]
        functions_applied = not stale and not notes
        if stale:
            result.notes.append("function files not applied at their current content ("
                                + ", ".join(stale) + "): their objects are not compared; "
                                "run `dmdb up`")
    replay = with_functions if functions_applied else base
    skip = _runtime_keys(live, replay)
    for key in not_ours:
        skip |= {k for k in live if k == key or k.endswith(f" {key.split()[-1]}")
                 and k.startswith("COMMENT EXTENSION")}
        result.notes.append(f"{key}: installed by an administrator; this role may not create "
                            "it, so the migrations could not have: not compared")
    result.ignored = sorted(skip)
    if not functions_applied:
        skip |= function_keys
    result.differences = _compare(live, replay, skip)
    return result


@dataclass
class BaselineResult:
    to: str
    marked: list[str]
    dry_run: bool
    drift: DriftResult | None  # None: nothing to record, so no schema was compared

    def to_dict(self) -> dict:
        return {"to": self.to, "marked": self.marked, "dry_run": self.dry_run,
                "drift": self.drift.to_dict() if self.drift is not None else None}


def baseline(settings: Settings, project: Project, to: str, *, dry_run: bool = False,
             lock_wait: float = 60.0) -> BaselineResult:
    """Record the migrations through `to` as applied, if the live schema is exactly theirs."""
    target = project.migration(to, "--to")
    # Already recorded: the ledger says so at once, without the scratch replay and dumps
    # of the comparison (seconds).
    with connect(resolve(settings), autocommit=True) as conn:
        if not _unrecorded(conn, project, target):
            return BaselineResult(target.id, [], dry_run, None)
    result = drift(settings, project, to=target.id, functions_applied=False)
    if not result.ok:
        first = result.differences[0]
        raise MigrationError(
            f"baseline refused: the live schema differs from migrations through {target.id} in "
            f"{len(result.differences)} object(s), first {first.describe()}; `dmdb drift --to "
            f"{target.id}` lists them — make the schema match, or baseline to another migration"
        )
    settings = resolve(settings.session())
    with connect(settings, autocommit=True, session=None if dry_run else "dmdb baseline") as conn:
        todo = _unrecorded(conn, project, target)
        if dry_run:
            return BaselineResult(target.id, [m.id for m in todo], True, result)
        acquire_lock(conn, lock_wait)
        try:
            todo = _unrecorded(conn, project, target)  # re-read under the lock
            mark_applied(conn, todo)
        finally:
            release_lock(conn)
    return BaselineResult(target.id, [m.id for m in todo], False, result)


def _unrecorded(conn: psycopg.Connection, project: Project, target: Migration) -> list[Migration]:
    applied = {m.id for m in status(conn, project).migrations if m.state == "applied"}
    later = sorted(i for i in applied if i > target.id)
    if later:
        raise MigrationError(f"baseline --to {target.id}: {later[0]} is already applied after it; "
                             "baseline only records migrations up to the newest applied one")
    return [m for m in project.migrations() if m.id <= target.id and m.id not in applied]
