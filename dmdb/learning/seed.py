"""Sample data: DriveMaster's reference catalogue and simulated learners.

The catalogue (concepts, prerequisites, question items with IRT parameters and a few A/B
variants) ships as CSV under dmdb/data. Learners are simulated: each has a latent
ability θ; each answer is drawn from the 3PL probability of θ (growing a little with
practice on the concept) against the item, and the answers go through the batch
`record_answers`, so knowledge states, review schedules and gamification are exactly
what the platform would have produced. The rollup runs at the end.

Planning (the simulated answers) is pure and deterministic for a random seed; writing is
separate. With more than one job, learners are split between connections by user; every
row is the same as with one job except the order in which event ids were drawn.
"""

from __future__ import annotations

import csv
import json
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from dmdb import resources
from dmdb.errors import DmdbError

BATCH_ANSWERS = 1000
SEED_EMAIL_DOMAIN = "learners.drivemaster.test"
DATA_TABLES = (
    "learning_events", "knowledge_states", "review_schedule", "learning_sessions",
    "bandit_arms", "concept_prerequisites", "content", "concepts", "users",
)
# What `reset` empties of dmdb's own schema: the data tables, the fitted parameters of
# their concepts (0007) and the rollup's watermark (0006). A table of the project's own
# migrations (say `badges`, referencing users) is emptied only when named (--also-empty):
# reset refuses, naming it, when one references a table it empties.
RESET_TABLES = (*DATA_TABLES, "bkt_concept_parameters", "rollup_watermarks")


class Interrupted(DmdbError):
    """Ctrl-C during a reset, with what the database holds now."""

    exit_code = 130


@dataclass(frozen=True)
class Concept:
    code: str
    name: str
    category: str
    parent_code: str | None
    difficulty: float
    estimated_minutes: int
    prerequisites: tuple[str, ...]


@dataclass(frozen=True)
class Item:
    ref: str
    concept_code: str
    question: str
    metadata: dict
    difficulty: float
    discrimination: float
    guess_parameter: float
    version: int
    variant_of: str | None
    media: dict


@dataclass(frozen=True)
class Catalogue:
    concepts: tuple[Concept, ...]
    items: tuple[Item, ...]


class Answer(NamedTuple):
    # A tuple, not a frozen dataclass: a million of them are made per seed, and a frozen
    # dataclass's __init__ costs four times as much.
    user_index: int
    item_index: int
    is_correct: bool
    response_time_ms: int
    hints_used: int
    answered_at: datetime


@dataclass
class SeedResult:
    users: int
    concepts: int
    items: int
    events: int
    answers: int
    partitions_touched: list[str] = field(default_factory=list)
    seconds: float = 0.0
    events_per_second: float = 0.0
    random_seed: int = 0
    dry_run: bool = False
    partitions_to_create: list[str] = field(default_factory=list)
    tables_to_clear: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# -- the catalogue ---------------------------------------------------------------


def load_catalogue() -> Catalogue:
    folder = resources.data_dir()
    concepts = []
    with open(folder / "concepts.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            concepts.append(Concept(
                code=row["code"], name=row["name"], category=row["category"],
                parent_code=row["parent_code"] or None, difficulty=float(row["difficulty"]),
                estimated_minutes=int(row["estimated_minutes"]),
                prerequisites=tuple(p for p in row["prerequisites"].split(";") if p),
            ))
    items = []
    with open(folder / "content.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            items.append(Item(
                ref=row["ref"], concept_code=row["concept_code"], question=row["question"],
                metadata={"ref": row["ref"], "options": json.loads(row["options"]),
                          "answer_index": int(row["answer_index"])},
                difficulty=float(row["difficulty"]),
                discrimination=float(row["discrimination"]),
                guess_parameter=float(row["guess_parameter"]),
                version=int(row["version"]), variant_of=row["variant_of"] or None,
                media=json.loads(row["media"]),
            ))
    return Catalogue(tuple(concepts), tuple(items))


def learning_order(catalogue: Catalogue) -> list[str]:
    """Concept codes in an order that respects prerequisites and the hierarchy (Kahn)."""
    codes = [c.code for c in catalogue.concepts]
    needs = {c.code: set(c.prerequisites) | ({c.parent_code} if c.parent_code else set())
             for c in catalogue.concepts}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(codes):
        ready = [c for c in codes if c not in done and needs[c] <= done]
        if not ready:
            raise DmdbError("the seed catalogue's prerequisites form a cycle; fix concepts.csv")
        order.append(ready[0])
        done.add(ready[0])
    return order


# -- the simulation (pure) ---------------------------------------------------------


def p_correct(theta: float, item: Item) -> float:
    """3PL: c + (1 − c) / (1 + exp(−1.7·a·(θ − b)))."""
    z = -1.7 * item.discrimination * (theta - item.difficulty)
    return item.guess_parameter + (1 - item.guess_parameter) / (1 + math.exp(z))


def simulate_learner(
    rng: random.Random, user_index: int, ability: float, catalogue: Catalogue,
    order: list[str], items_by_concept: dict[str, list[int]], answers: int, days: int,
    now: datetime,
) -> list[Answer]:
    """One learner's history: concepts in learning order, sessions spread over `days`."""
    out: list[Answer] = []
    sessions = max(1, math.ceil(answers / rng.randint(8, 15)))
    span = days * 86400.0
    start = now.timestamp() - span * rng.uniform(0.6, 1.0)
    step = (now.timestamp() - 3600 - start) / sessions
    position = 0
    practice: dict[str, int] = {}
    seen: list[int] = []
    per_session = math.ceil(answers / sessions)
    clock = start
    # The same draws in the same order as the plain version (p_correct inlined, names
    # bound locally): the seed's CPU is shared with the server it feeds.
    items = catalogue.items
    random_, randrange, randint, uniform = rng.random, rng.randrange, rng.randint, rng.uniform
    lognormvariate, exp, fromtimestamp, utc = rng.lognormvariate, math.exp, \
        datetime.fromtimestamp, timezone.utc
    mu = 9.0 - 0.15 * ability
    last = len(order) - 1
    append = out.append
    for session in range(sessions):
        clock = start + session * step + uniform(0, step * 0.5)
        for _ in range(per_session):
            if len(out) == answers:
                break
            if seen and random_() < 0.2:
                item_index = seen[randrange(len(seen))]  # a review of an earlier item
            else:
                code = order[position if position < last else last]
                choices = items_by_concept[code]
                item_index = choices[randrange(len(choices))]
                practice[code] = practice.get(code, 0) + 1
                if practice[code] >= randint(4, 8):
                    position += 1
                seen.append(item_index)
            item = items[item_index]
            theta = ability + 0.08 * practice.get(item.concept_code, 0)
            guess = item.guess_parameter
            p = guess + (1 - guess) / (1 + exp(-1.7 * item.discrimination * (theta - item.difficulty)))
            correct = random_() < p
            hints = 1 if (not correct and random_() < 0.3) else 0
            response = int(lognormvariate(mu, 0.35))
            clock += response / 1000.0 + uniform(5, 40)
            append(Answer(user_index, item_index, correct, response, hints,
                          fromtimestamp(clock, tz=utc)))
    return out


def plan_learners(random_seed: int, users: int) -> list[float]:
    """Latent abilities θ ~ N(0, 1), one per learner, from the seed."""
    rng = random.Random(random_seed)
    return [rng.gauss(0.0, 1.0) for _ in range(users)]


def learner_rng(random_seed: int, user_index: int) -> random.Random:
    # One stream per learner: the same learner gets the same history whatever the jobs.
    return random.Random(random_seed * 1_000_003 + user_index)


# -- writing ---------------------------------------------------------------------------


def check_schema(conn, project) -> None:
    from dmdb.migrate import engine

    state = engine.status(conn, project)
    if not any(m.state == "applied" for m in state.migrations):
        from dmdb.errors import schema_missing

        raise schema_missing(conn.info.dbname, "dmdb seed / reset")
    pending = [m.id for m in state.migrations if m.state != "applied"]
    functions = [f.id for f in state.functions if f.state != "applied"]
    if pending or functions or state.problems:
        what = pending[0] if pending else (functions[0] if functions else state.problems[0])
        raise DmdbError(
            f"the database schema is not up to date ({what}); run `dmdb up` first, then seed"
        )


def existing_users(conn) -> int:
    return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def data_tables(conn, names: tuple[str, ...] = DATA_TABLES) -> list[str]:
    """The tables of `names` this database has (in public), in that order."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)",
        (list(names),)).fetchall()
    present = {r[0] for r in rows}
    return [t for t in names if t in present]


def tables_to_empty(conn, also_empty: tuple[str, ...] = ()) -> list[str]:
    """Everything a reset empties: dmdb's RESET_TABLES and the tables named in
    `also_empty` (as the search path resolves them). A table outside that list whose
    foreign key references one of them would have to be emptied too (TRUNCATE ...
    CASCADE did so silently): refused, naming it and --also-empty."""
    from dmdb.errors import ConfigError

    ours = data_tables(conn, RESET_TABLES)
    named: list[str] = []
    for name in also_empty:
        row = conn.execute("SELECT to_regclass(%s)::text, "
                           "(SELECT relkind FROM pg_class WHERE oid = to_regclass(%s))",
                           (name, name)).fetchone()
        if row[0] is None or row[1] not in ("r", "p"):
            raise ConfigError(f"--also-empty {name}: no such table in this database; name an "
                              "existing table (schema-qualified if it is not on the search path)")
        if row[0] not in ours and row[0] not in named:
            named.append(row[0])
    chosen = [*ours, *named]
    missing = conn.execute(resources.query("seed_referencing"), (chosen,)).fetchall()
    if missing:
        table, referenced = missing[0]
        more = f" (and {len(missing) - 1} more: " + ", ".join(r[0] for r in missing[1:]) + ")" \
            if len(missing) > 1 else ""
        raise ConfigError(
            f"reset would also have to empty {table}, whose foreign key references "
            f"{referenced}{more}: it is not one of dmdb's tables, so it is emptied only when "
            f"named: pass --also-empty {table} to empty it too; nothing was changed")
    return chosen


def clear(conn, tables: list[str]) -> None:
    """Empty `tables` (tables_to_empty's list) and restart their ids, so a reseed is
    identical; never CASCADE: a table not listed keeps its rows or the TRUNCATE fails.
    Runs in the caller's transaction when there is one."""
    from psycopg import sql

    names = [conn.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                          "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                          (t,)).fetchone() for t in tables]
    with conn.transaction():
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(*n) for n in names)))


def load_reference(conn, catalogue: Catalogue) -> tuple[dict[str, int], list[int]]:
    """Insert concepts, prerequisites and items; return concept ids and item ids."""
    concept_ids: dict[str, int] = {}
    with conn.transaction():
        for c in catalogue.concepts:
            row = conn.execute(
                "INSERT INTO concepts (code, name, category, parent_id, difficulty, estimated_minutes) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING concept_id",
                (c.code, c.name, c.category, concept_ids.get(c.parent_code) if c.parent_code else None,
                 c.difficulty, c.estimated_minutes),
            ).fetchone()
            concept_ids[c.code] = row[0]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO concept_prerequisites (concept_id, prerequisite_id) VALUES (%s, %s)",
                [(concept_ids[c.code], concept_ids[p]) for c in catalogue.concepts
                 for p in c.prerequisites],
            )
        item_ids: list[int] = []
        by_ref: dict[str, int] = {}
        category = {c.code: c.category for c in catalogue.concepts}
        from psycopg.types.json import Jsonb

        for item in catalogue.items:
            row = conn.execute(
                "INSERT INTO content (concept_id, category, question, difficulty, discrimination, "
                "guess_parameter, version, parent_content_id, media, metadata) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING content_id",
                (concept_ids[item.concept_code], category[item.concept_code], item.question,
                 item.difficulty, item.discrimination, item.guess_parameter, item.version,
                 by_ref.get(item.variant_of) if item.variant_of else None,
                 Jsonb(item.media), Jsonb(item.metadata)),
            ).fetchone()
            by_ref[item.ref] = row[0]
            item_ids.append(row[0])
    return concept_ids, item_ids


def create_users(conn, random_seed: int, abilities: list[float]) -> list[int]:
    """COPY the learners in; returns their user ids in learner order."""
    rng = random.Random(random_seed ^ 0x5EED)
    styles = ("visual", "verbal", "practice")
    with conn.transaction():
        with conn.cursor() as cur:
            with cur.copy(
                "COPY users (email, display_name, ability_hint, cognitive_patterns, "
                "learning_preferences) FROM STDIN"
            ) as copy:
                for i, theta in enumerate(abilities):
                    copy.write_row((
                        f"learner{i + 1:06d}@{SEED_EMAIL_DOMAIN}", f"Learner {i + 1}",
                        round(theta, 6),
                        json.dumps({"style": styles[rng.randrange(3)],
                                    "attention_span_min": rng.randint(5, 40)}),
                        json.dumps({"daily_goal": rng.choice((10, 20, 30)),
                                    "reminders": rng.random() < 0.5}),
                    ))
        rows = conn.execute(
            "SELECT user_id FROM users WHERE email LIKE %s ORDER BY email",
            (f"%@{SEED_EMAIL_DOMAIN}",),
        ).fetchall()
    return [r[0] for r in rows]


def ensure_partitions(conn, since: datetime, now: datetime, *, dry_run: bool = False):
    """Monthly learning_events partitions for the history's months (idempotent); with
    dry_run only the plan. Returns the partitions run's result."""
    from dmdb import partitions

    first = partitions.month_of(since)
    span = (now.year - first.year) * 12 + now.month - first.month
    request = partitions.PlanRequest(action="create", start=first, ahead=max(span, 0))
    result = partitions.run(conn, request, lock_wait=30.0, dry_run=dry_run)
    if result.skipped:
        raise DmdbError("another dmdb partitions run holds its lock; seed again when it is done")
    if result.errors:
        raise DmdbError(f"creating the history's partitions failed: {result.errors[0]['error']}")
    return result


def finish(settings, jobs: int, *, rollup: bool = True) -> list[str]:
    """After the answers: the rollup, VACUUM (ANALYZE) of the data tables, and the
    learning_events partitions that hold rows. On two connections when jobs > 1: the
    rollup and the small tables on one, learning_events (most of the work) on the other.

    The VACUUM sets the visibility map and hint bits (index-only scans of a fresh seed)
    and clears the users rows the batches updated; ANALYZE gives the planner the data."""
    from psycopg import sql

    from dmdb.db import connect
    from dmdb.maintenance import run_rollup
    from dmdb.partitions.catalog import read_bounds, read_table

    def vacuum(conn, tables: list[str]) -> None:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))

    with connect(settings, autocommit=True) as conn:
        tables = data_tables(conn, RESET_TABLES)
        big = [t for t in tables if t == "learning_events"]
        rest = [t for t in tables if t != "learning_events"]
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with connect(settings, autocommit=True) as conn2:
                    vacuum(conn2, big)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        helper = threading.Thread(target=other, daemon=True) if jobs > 1 else None
        if helper:
            helper.start()
        if rollup:
            run_rollup(conn)
        vacuum(conn, rest if helper else rest + big)
        # A partition holds rows when a scan finds one (each stops at its first row).
        holding = [part.oid for part in read_bounds(conn, read_table(conn))
                   if conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM ONLY {})").format(
                       sql.Identifier(part.schema, part.name))).fetchone()[0]]
        touched = conn.execute("SELECT coalesce(array_agg(p::regclass::text ORDER BY "
                               "p::regclass::text), '{}') FROM unnest(%s::oid[]) AS p",
                               (holding,)).fetchone()[0]
        if helper:
            helper.join()
        if errors:
            raise errors[0]
    return touched


def ahead(items: Iterator, depth: int = 2) -> Iterator:
    """The items of `items`, made by a thread of their own up to `depth` ahead: the next
    batch is simulated while the server writes the last one (the connection's thread only
    waits on the server, which releases the GIL)."""
    done = object()
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer is gone

    def make() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer
            put((done, exc))

    maker = threading.Thread(target=make, daemon=True)
    maker.start()
    try:
        while True:
            item, exc = box.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        maker.join()


def _batches(catalogue: Catalogue, order: list[str], abilities: list[float],
             user_ids: list[int], item_ids: list[int], *, random_seed: int,
             answers_per_user: int, days: int, now: datetime, worker: int = 0,
             jobs: int = 1) -> Iterator[tuple[int, str]]:
    """(answers, JSON array) of about BATCH_ANSWERS answers, whole learners each, of the
    learners of `worker` (every `jobs`-th). The JSON is written directly: a dict per
    answer and json.dumps cost more."""
    items_by_concept: dict[str, list[int]] = {}
    for index, item in enumerate(catalogue.items):
        items_by_concept.setdefault(item.concept_code, []).append(index)
    parts: list[str] = []
    for u in range(worker, len(abilities), jobs):
        history = simulate_learner(learner_rng(random_seed, u), u, abilities[u], catalogue,
                                   order, items_by_concept, answers_per_user, days, now)
        user_id = user_ids[u]
        parts.extend(
            f'{{"user_id":{user_id},"content_id":{item_ids[a.item_index]},'
            f'"is_correct":{"true" if a.is_correct else "false"},'
            f'"response_time_ms":{a.response_time_ms},"hints_used":{a.hints_used},'
            f'"answered_at":"{a.answered_at.isoformat()}"}}'
            for a in history)
        if len(parts) >= BATCH_ANSWERS:
            yield len(parts), "[" + ",".join(parts) + "]"
            parts = []
    if parts:
        yield len(parts), "[" + ",".join(parts) + "]"


_RECORD = "SELECT count(*) FILTER (WHERE newly_mastered) FROM record_answers(%s::jsonb)"


def seed(
    settings,
    project,
    *,
    users: int = 200,
    answers_per_user: int = 100,
    days: int = 120,
    random_seed: int = 42,
    jobs: int | None = None,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
    reset: bool = False,
    also_empty: tuple[str, ...] = (),
    on_target: Callable | None = None,
) -> SeedResult:
    """Seed an empty, up-to-date database. `progress(done, total)` reports answers written.

    `reset` first empties the data (the schema stays): dmdb's tables and those named in
    `also_empty`, and writes the new data in the same transaction, on one connection, so
    an interrupted reset leaves the old data (and a finished one the whole new data). A
    plain seed writes with `jobs` connections (default 2). With dry_run: check the
    database and say what would be emptied and written; change nothing."""
    from dmdb.db import connect
    from dmdb.errors import ConfigError

    if jobs is not None and reset and jobs > 1:
        raise ConfigError(
            "reset writes the new data in one transaction on one connection, so that an "
            "interrupted reset leaves the old data; --jobs is for `dmdb seed` into an empty "
            "database: drop --jobs")
    jobs = jobs if jobs is not None else (1 if reset else 2)
    if users < 1 or answers_per_user < 1 or days < 1 or jobs < 1:
        raise ConfigError("--users, --answers, --days and --jobs must be 1 or more")
    started = time.monotonic()
    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    catalogue = load_catalogue()
    order = learning_order(catalogue)
    abilities = plan_learners(random_seed, users)
    simulation = dict(random_seed=random_seed, answers_per_user=answers_per_user, days=days,
                      now=now)
    total = users * answers_per_user

    # The seed's writers take the per-learner batches on several sessions at once, with
    # session settings: through a transaction pooler it goes to DMDB_DIRECT_URL or refuses
    # here, before writing anything.
    named = settings
    settings = settings.session()
    with connect(settings, autocommit=True,
                 session=None if dry_run else ("dmdb reset" if reset else "dmdb seed")) as conn:
        if on_target is not None:
            from dmdb.db import target

            on_target(target(conn, named))
        check_schema(conn, project)
        if not reset and existing_users(conn):
            raise DmdbError(
                "the database already holds users; `dmdb reset --yes` (or `dmdb seed --reset "
                "--yes`) clears the data and seeds again"
            )
        emptied = tables_to_empty(conn, also_empty) if reset else []
        if dry_run:
            plan = ensure_partitions(conn, now - timedelta(days=days), now, dry_run=True)
            return SeedResult(
                users=users, concepts=len(catalogue.concepts), items=len(catalogue.items),
                events=0, answers=total, random_seed=random_seed,
                dry_run=True, partitions_to_create=[s.partition for s in plan.steps],
                tables_to_clear=emptied)
        if reset:
            events = _reset(conn, emptied, catalogue, order, abilities, simulation, total,
                            progress)
            touched = _finish_reset(settings)
        else:
            _, item_ids = load_reference(conn, catalogue)
            user_ids = create_users(conn, random_seed, abilities)
            ensure_partitions(conn, now - timedelta(days=days), now)
    if not reset:
        events = _write(settings, jobs, catalogue, order, abilities, user_ids, item_ids,
                        simulation, total, progress)
        touched = finish(settings, jobs)
    seconds = time.monotonic() - started
    return SeedResult(
        users=users, concepts=len(catalogue.concepts), items=len(catalogue.items), events=events,
        answers=total, partitions_touched=touched, seconds=round(seconds, 2),
        events_per_second=round(events / seconds, 1) if seconds else 0.0, random_seed=random_seed,
        tables_to_clear=emptied,
    )


def _reset(conn, emptied: list[str], catalogue: Catalogue, order: list[str],
           abilities: list[float], simulation: dict, total: int, progress) -> int:
    """Empty `emptied` and write the new data in ONE transaction on `conn`: interrupted
    (Ctrl-C, a killed client, a lost connection), the database keeps its old data. The
    history's partitions are made first (schema, not data: they stay either way); the
    rollup runs inside the transaction (it waits for other writers, not for its own)."""
    from dmdb.db import die_with_client
    from dmdb.maintenance import run_rollup

    now, days = simulation["now"], simulation["days"]
    ensure_partitions(conn, now - timedelta(days=days), now)
    die_with_client(conn)  # a killed reset's statement stops on the server within a second
    written = events = 0
    try:
        with conn.transaction():
            # sample data: speed over durability (only this transaction's commit)
            conn.execute("SET LOCAL synchronous_commit = off")
            clear(conn, emptied)
            _, item_ids = load_reference(conn, catalogue)
            user_ids = create_users(conn, simulation["random_seed"], abilities)
            stream = ahead(_batches(catalogue, order, abilities, user_ids, item_ids,
                                    **simulation))
            try:
                for n, batch in stream:
                    mastered = conn.execute(_RECORD, (batch,), prepare=True).fetchone()[0]
                    written += n
                    events += n + mastered
                    if progress:
                        progress(written, total)
            finally:
                stream.close()
            run_rollup(conn)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: the reset was rolled back ({written:,} of {total:,} answers had "
            "been written, uncommitted); the database holds its data as before") from None
    return events


def _finish_reset(settings) -> list[str]:
    """After a reset's commit: VACUUM (ANALYZE) as after a seed. Interrupted here, the
    new data is complete; only the VACUUM was cut short, and the message says so."""
    try:
        return finish(settings, 2, rollup=False)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted after the reset was committed: the new data is complete; only its "
            "VACUUM (ANALYZE) was cut short: run `dmdb maintenance vacuum --analyze`") from None


def _write(settings, jobs: int, catalogue: Catalogue, order: list[str],
           abilities: list[float], user_ids: list[int], item_ids: list[int],
           simulation: dict, total: int, progress) -> int:
    """The answers of a plain seed on `jobs` connections (learners split by user)."""
    from dmdb.db import connect

    written = [0]
    events = [0]  # rows written to learning_events: one per answer, one per mastery
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        stream = ahead(_batches(catalogue, order, abilities, user_ids, item_ids,
                                worker=worker, jobs=jobs, **simulation))
        try:
            with connect(settings, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")  # sample data: speed over durability
                for n, batch in stream:
                    if errors:
                        return
                    mastered = conn.execute(_RECORD, (batch,), prepare=True).fetchone()[0]
                    with lock:
                        written[0] += n
                        events[0] += n + mastered
                        if progress:
                            progress(written[0], total)
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
        finally:
            stream.close()  # stops the simulating thread now, not when the error is freed

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return events[0]


def reset(settings, project, **options) -> SeedResult:
    """Clear the data (the schema stays) and seed again."""
    return seed(settings, project, reset=True, **options)
