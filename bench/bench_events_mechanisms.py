"""How to get the learning events out of PostgreSQL: the three mechanisms, measured.

    python bench/bench_events_mechanisms.py [--seconds 5] [--runs 2] [--events 200000]

The quick measurement behind docs/events.md's choice (#26), kept so that it can be run
again. It starts two throw-away embedded servers (fsync off: CPU cost only) and compares,
in alternating pgbench runs (-c 2 -j 2, one answer per transaction) and record_answers
batches (1,000 answers per call, 1 connection), the server CPU per answer of:

  off      the schema as it was before the feed (the baseline)
  cursor   commit-safe cursor over learning_events: a feed_tx xid8 column (the
           transaction id, or a learner's previous one when higher) and a btree
           (feed_tx, event_id); the users row keeps the learner's last feed_tx
  outbox   a Debezium-shaped outbox row per event (id uuid, aggregatetype, aggregateid,
           type, payload jsonb) written by the same transaction, keyed (tx, seq) for the
           commit-safe read
  logical  the schema as off, on a server with wal_level = logical, a publication of
           learning_events (publish_via_partition_root) and a pgoutput slot

then how fast each is read: the cursor by keyset pages of 10,000 (psycopg, rows to the
client), the outbox the same way, the slot by pg_logical_slot_get_binary_changes (the
server's decoding alone, nothing parsed on the client).

The variants are edits of the function files of the tree before the feed (git archive of
the commit before the one adding sql/migrations/*_event_feed.sql, as bench_events.py
takes its baseline), so this script is a measurement, not a schema.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_record_answer import (  # noqa: E402
    SINGLE_SCRIPT,
    contiguous,
    make_batch,
    pgbench,
    seed,
    server_cpu,
)

CURSOR_DDL = """
ALTER TABLE learning_events ADD COLUMN feed_tx xid8, ADD COLUMN next_review_at timestamptz,
    ADD COLUMN scheduler text;
ALTER TABLE learning_events ALTER COLUMN feed_tx SET DEFAULT pg_current_xact_id();
ALTER TABLE users ADD COLUMN feed_tx xid8;
"""
CURSOR_INDEX = "CREATE INDEX learning_events_feed_idx ON learning_events (feed_tx, event_id)"


OUTBOX_DDL = """
CREATE TABLE event_outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    aggregatetype text NOT NULL,
    aggregateid text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (tx, seq)
);
"""

OUTBOX_ROW = """jsonb_build_object('event_id', {id}, 'user_id', {uid}, 'occurred_at', {at},
    'concept_id', {cid}, 'content_id', {iid}, 'is_correct', {ok}, 'quality', {q},
    'mastery_before', {before}, 'mastery_after', {after}, 'next_review_at', {nxt},
    'scheduler', {sched})"""


def edit(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"bench: the function text changed, cannot find {old[:60]!r}")
    return text.replace(old, new, 1)


def cursor_single(text: str) -> str:
    text = edit(text, "    v_clock timestamptz;\nBEGIN", "    v_clock timestamptz;\n    v_tx xid8;\nBEGIN")
    text = edit(text, "           last_active_date = greatest(u.last_active_date, v_day)\n",
                "           last_active_date = greatest(u.last_active_date, v_day),\n"
                "           feed_tx = greatest(u.feed_tx, pg_current_xact_id())\n")
    text = edit(text, "RETURNING u.xp, u.current_streak INTO xp, current_streak;",
                "RETURNING u.xp, u.current_streak, u.feed_tx INTO xp, current_streak, v_tx;")
    text = edit(text, "mastery_before, mastery_after, response_data, context_data)\n"
                "    VALUES (p_user_id, p_answered_at, 'question_answered',",
                "mastery_before, mastery_after, response_data, context_data, feed_tx,"
                " next_review_at, scheduler)\n    VALUES (p_user_id, p_answered_at, 'question_answered',")
    text = edit(text, "jsonb_build_object('predicted_correct', record_answer.predicted_correct), v_context)",
                "jsonb_build_object('predicted_correct', record_answer.predicted_correct), v_context,"
                " v_tx, record_answer.next_review_at, v_scheduler)")
    return text


def cursor_batch(text: str) -> str:
    text = edit(text, "    v_has_sessions boolean;\n", "    v_has_sessions boolean;\n    v_tx xid8;\n")
    text = edit(text, "           array_agg(l.last_active_date ORDER BY l.user_id)\n"
                "      INTO u_id, u_streak, u_longest, u_last\n"
                "      FROM (SELECT us.user_id, us.current_streak, us.longest_streak, us.last_active_date\n",
                "           array_agg(l.last_active_date ORDER BY l.user_id),\n"
                "           greatest(max(l.feed_tx), pg_current_xact_id())\n"
                "      INTO u_id, u_streak, u_longest, u_last, v_tx\n"
                "      FROM (SELECT us.user_id, us.current_streak, us.longest_streak, us.last_active_date,"
                " us.feed_tx\n")
    text = edit(text, "           last_active_date = t.last_day\n      FROM (SELECT unnest(u_id)",
                "           last_active_date = t.last_day, feed_tx = v_tx\n      FROM (SELECT unnest(u_id)")
    select = ("    SELECT t.id, t.uid, t.at, 'question_answered', t.cid, t.iid, t.sid, t.ok, t.rt, "
              "t.hints,\n           t.q, t.before, t.after, jsonb_build_object('predicted_correct', "
              "t.pred), t.ctx")
    text = edit(text, "quality, mastery_before, mastery_after, response_data, context_data)\n"
                + select + "\n",
                "quality, mastery_before, mastery_after, response_data, context_data,"
                " feed_tx, next_review_at, scheduler)\n" + select + ", v_tx, t.nxt, v_settings.scheduler\n")
    pad = "\n" + " " * 19
    text = edit(text, "unnest(o_after) AS after, unnest(o_pred) AS pred," + pad
                + "unnest(a_context) AS ctx) AS t\n     ORDER BY t.uid, t.at;",
                "unnest(o_after) AS after, unnest(o_pred) AS pred," + pad + "unnest(a_context) AS ctx,"
                " unnest(o_next) AS nxt) AS t\n     ORDER BY t.uid, t.at;")
    return text


PAYLOAD_DDL = """
ALTER TABLE learning_events ADD COLUMN next_review_at timestamptz, ADD COLUMN scheduler text;
"""


def payload_only(text: str) -> str:
    """The cursor's function text without the feed_tx parts: the new columns alone."""
    text = text.replace(",\n           feed_tx = greatest(u.feed_tx, pg_current_xact_id())\n", "\n")
    text = text.replace("RETURNING u.xp, u.current_streak, u.feed_tx INTO xp, current_streak, v_tx;",
                        "RETURNING u.xp, u.current_streak INTO xp, current_streak;")
    text = text.replace(" feed_tx, next_review_at, scheduler)", " next_review_at, scheduler)")
    text = text.replace(" v_tx, record_answer.next_review_at", " record_answer.next_review_at")
    text = text.replace(" v_tx, t.nxt,", " t.nxt,")
    text = text.replace(",\n           greatest(max(l.feed_tx), pg_current_xact_id())\n"
                        "      INTO u_id, u_streak, u_longest, u_last, v_tx\n", "\n"
                        "      INTO u_id, u_streak, u_longest, u_last\n")
    text = text.replace(", us.feed_tx\n", "\n")
    text = text.replace(", feed_tx = v_tx\n", "\n")
    return text


def outbox_single(text: str) -> str:
    row = OUTBOX_ROW.format(id="event_id", uid="p_user_id", at="p_answered_at",
                            cid="record_answer.concept_id", iid="p_content_id", ok="p_is_correct",
                            q="record_answer.quality", before="v_p0", after="record_answer.mastery",
                            nxt="record_answer.next_review_at", sched="v_scheduler")
    return edit(text, "    RETURNING e.event_id INTO event_id;\n",
                "    RETURNING e.event_id INTO event_id;\n"
                "    INSERT INTO event_outbox (aggregatetype, aggregateid, type, payload)\n"
                f"    VALUES ('learner', p_user_id::text, 'question_answered', {row});\n")


def outbox_batch(text: str) -> str:
    row = OUTBOX_ROW.format(id="t.id", uid="t.uid", at="t.at", cid="t.cid", iid="t.iid", ok="t.ok",
                            q="t.q", before="t.before", after="t.after", nxt="t.nxt",
                            sched="v_settings.scheduler")
    return edit(text, "    IF true = ANY (o_mastered) THEN\n        INSERT INTO learning_events",
                "    INSERT INTO event_outbox (aggregatetype, aggregateid, type, payload)\n"
                f"    SELECT 'learner', t.uid::text, 'question_answered', {row}\n"
                "      FROM (SELECT unnest(o_id) AS id, unnest(a_user) AS uid, unnest(a_at) AS at,\n"
                "                   unnest(a_concept) AS cid, unnest(a_content) AS iid,\n"
                "                   unnest(a_correct) AS ok, unnest(a_q) AS q, unnest(o_before) AS before,\n"
                "                   unnest(o_after) AS after, unnest(o_next) AS nxt) AS t\n"
                "     ORDER BY t.uid, t.at;\n"
                "    IF true = ANY (o_mastered) THEN\n        INSERT INTO learning_events")


def start_server(fast_home: Path, logical: bool):
    from dmdb.server.embedded import EmbeddedServer

    server = EmbeddedServer(fast_home, fast=True)
    info = server.start(dbname="postgres")
    if logical:
        with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET wal_level = logical")
        server.stop()
        info = server.start(dbname="postgres")
    return server, info


def make_db(info, name: str, tree: Path) -> str:
    from dmdb.migrate import engine

    with psycopg.connect(host=info.socket_dir, port=info.port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@/{name}?host={info.socket_dir}&port={info.port}"
    with psycopg.connect(url, autocommit=True) as conn:
        engine.up(conn, engine.Project(tree), lock_wait=30)
    return url


def apply_variant(url: str, variant: str, tree: Path) -> None:
    single = (tree / "functions" / "record_answer.sql").read_text()
    batch = (tree / "functions" / "record_answers.sql").read_text()
    with psycopg.connect(url, autocommit=True) as conn:
        if variant.startswith("cursor"):
            conn.execute(CURSOR_DDL)
            if variant == "cursor":
                conn.execute(CURSOR_INDEX)
            conn.execute(cursor_single(single))
            conn.execute(cursor_batch(batch))
        elif variant == "payload":
            conn.execute(PAYLOAD_DDL)
            conn.execute(payload_only(cursor_single(single)))
            conn.execute(payload_only(cursor_batch(batch)))
        elif variant == "outbox":
            conn.execute(OUTBOX_DDL)
            conn.execute(outbox_single(single))
            conn.execute(outbox_batch(batch))
        elif variant == "logical":
            conn.execute("CREATE PUBLICATION dmdb_events FOR TABLE learning_events "
                         "WITH (publish = 'insert', publish_via_partition_root = true)")
            conn.execute("SELECT pg_create_logical_replication_slot('bench', 'pgoutput')")


def batch_rate(url, users, items, seconds, seed_offset) -> tuple[float, int]:
    rnd = random.Random(seed_offset)
    batches = [make_batch(rnd, users, items) for _ in range(8)]
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (batches[n % 8],),
                         prepare=True)
            n += 1
        elapsed = time.perf_counter() - started
    return n * 1000 / elapsed, n * 1000


def cpu_per_answer(run, postmaster: int) -> float:
    before = server_cpu(postmaster)
    _, answers = run()
    time.sleep(0.3)
    return (server_cpu(postmaster) - before) / max(answers, 1) * 1e6


def read_cursor(url: str, table: str, key: str, page: int = 10000) -> tuple[int, float]:
    cols = ("event_id, user_id, occurred_at, event_type, concept_id, content_id, is_correct, "
            "quality, mastery_before, mastery_after, next_review_at, scheduler, feed_tx"
            if table == "learning_events" else "seq, id, aggregatetype, aggregateid, type, payload, tx")
    pos = ("0", 0)
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        while True:
            rows = conn.execute(
                f"SELECT {cols} FROM {table} WHERE ({key}) > (%s::xid8, %s) "
                f"AND {key.split(',')[0]} < pg_snapshot_xmin(pg_current_snapshot()) "
                f"ORDER BY {key} LIMIT %s", (pos[0], pos[1], page)).fetchall()
            if not rows:
                break
            n += len(rows)
            last = rows[-1]
            pos = (str(last[-1]), last[0]) if table == "learning_events" else (str(last[-1]), last[0])
            for r in rows:  # what a consumer does at least: one JSON line per event
                json.dumps([str(x) for x in r])
        elapsed = time.perf_counter() - started
    return n, elapsed


def read_slot(url: str) -> tuple[int, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        n = conn.execute(
            "SELECT count(*) FROM pg_logical_slot_get_binary_changes('bench', NULL, NULL, "
            "'proto_version', '1', 'publication_names', 'dmdb_events')").fetchone()[0]
        return n, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200000, help="answers read back")
    parser.add_argument("--variants", default="off,cursor,outbox",
                        help="of off, cursor, cursor_noindex (the columns without the index), outbox")
    parser.add_argument("--no-read", action="store_true", help="only the writers' cost")
    parser.add_argument("--baseline-ref", default=None,
                        help="git ref of the tree without the feed (default: the commit before it)")
    args = parser.parse_args()

    from dmdb.server.embedded import pg_tool

    pgbench_bin = str(pg_tool("pgbench"))
    homes = [Path(tempfile.mkdtemp(prefix="dmdb-bench-mech-")) for _ in range(2)]
    servers = []
    scripts = Path(tempfile.mkdtemp(prefix="dmdb-bench-scripts-"))
    try:
        # The tree before the feed (the variants are edits of its function files).
        from bench_events import baseline_tree

        tree, commit = baseline_tree(args.baseline_ref, scripts)
        print(f"variants applied to the tree of {commit} (before the feed)")
        plain, pinfo = start_server(homes[0], logical=False)
        servers.append(plain)
        logical, linfo = start_server(homes[1], logical=True)
        servers.append(logical)
        pm = {s: int((s.data_dir / "postmaster.pid").read_text().split()[0]) for s in servers}
        dbs = {}
        for variant in args.variants.split(","):
            dbs[variant] = (make_db(pinfo, variant, tree), plain)
        dbs["logical"] = (make_db(linfo, "logical", tree), logical)
        seeds = {}
        for variant, (url, _) in dbs.items():
            apply_variant(url, variant, tree)
            users, items = seed(url, args.users)
            umin, umax = contiguous(users, "user")
            imin, imax = contiguous([i for i, _ in items], "content")
            path = scripts / f"{variant}.sql"
            path.write_text(SINGLE_SCRIPT.format(umin=umin, umax=umax, imin=imin, imax=imax,
                                                 cmin=min(c for _, c in items)))
            seeds[variant] = (users, items, path)
            pgbench(pgbench_bin, url, path, 2)
        print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
              f"{args.runs} alternating runs of {args.seconds:g} s")
        single = {v: [] for v in dbs}
        batch = {v: [] for v in dbs}
        for k in range(args.runs):
            for variant, (url, server) in dbs.items():
                users, items, path = seeds[variant]
                single[variant].append(cpu_per_answer(
                    partial(pgbench, pgbench_bin, url, path, args.seconds), pm[server]))
                batch[variant].append(cpu_per_answer(
                    partial(batch_rate, url, users, items, args.seconds, 100 + k), pm[server]))
        print("| mechanism | record_answer µs CPU/answer | vs off | record_answers µs CPU/answer | vs off |")
        print("|---|---|---|---|---|")
        for variant in dbs:
            s, b = statistics.median(single[variant]), statistics.median(batch[variant])
            s0, b0 = statistics.median(single["off"]), statistics.median(batch["off"])
            print(f"| {variant} | {s:.1f} | {s / s0:.3f} | {b:.1f} | {b / b0:.3f} |")
        if args.no_read:
            return 0
        # Reading back: fill each with at least --events answers, then read them all.
        for variant in ("cursor", "outbox", "logical"):
            url = dbs[variant][0]
            users, items, _ = seeds[variant]
            with psycopg.connect(url) as conn:
                have = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
            if have < args.events:
                rnd = random.Random(7)
                with psycopg.connect(url, autocommit=True) as conn:
                    for _ in range((args.events - have) // 1000 + 1):
                        conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)",
                                     (make_batch(rnd, users, items),))
        for variant, table, key in (("cursor", "learning_events", "feed_tx, event_id"),
                                    ("outbox", "event_outbox", "tx, seq")):
            with psycopg.connect(dbs[variant][0], autocommit=True) as conn:
                conn.execute(f"VACUUM ANALYZE {table}")
            n, elapsed = read_cursor(dbs[variant][0], table, key)
            print(f"{variant}: read {n:,} events in {elapsed:.2f} s = {n / elapsed:,.0f} events/s "
                  "(keyset pages of 10,000, one JSON line each)")
        n, elapsed = read_slot(dbs["logical"][0])
        print(f"logical: decoded {n:,} pgoutput messages in {elapsed:.2f} s = {n / elapsed:,.0f}/s "
              "(server only; each answer's transaction is BEGIN, RELATION?, INSERT(s), COMMIT)")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(scripts, ignore_errors=True)
        for server in servers:
            server.destroy()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
