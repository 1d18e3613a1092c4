"""A learner's data exported and erased on request (issue 27): everywhere it lives (monthly
partitions, DEFAULT, archived months, sessions, schedules, views), nothing of anyone else
changed, all or nothing, recorded in the ledger, and not brought back by a restore."""

from __future__ import annotations

import json
import os
import signal
import time

import psycopg
import pytest

from conftest import popen_dmdb, run_dmdb

RELATIONS = ("users", "user_emails", "knowledge_states", "review_schedule",
             "learning_sessions", "learning_events", "archive.learning_events_2020_01")


def _learners(url: str, n: int = 3) -> list[int]:
    """n learners with answers (current month), a session, a DEFAULT row and an archived
    month's row each; the views refreshed so that they show them."""
    with psycopg.connect(url, autocommit=True) as db:
        concept = db.execute("INSERT INTO concepts (code, name, category) VALUES "
                             "('p1', 'P', 'road_rules') RETURNING concept_id").fetchone()[0]
        items = [db.execute("INSERT INTO content (concept_id, category, question) VALUES "
                            "(%s, 'road_rules', 'q') RETURNING content_id",
                            (concept,)).fetchone()[0] for _ in range(3)]
        db.execute("CREATE SCHEMA archive")
        db.execute("CREATE TABLE archive.learning_events_2020_01 (LIKE learning_events INCLUDING DEFAULTS)")
        users = []
        for i in range(n):
            uid = db.execute("INSERT INTO users (email, display_name) VALUES (%s, %s) "
                             "RETURNING user_id", (f"p{i}@example.test", f"P{i}")).fetchone()[0]
            session = db.execute("INSERT INTO learning_sessions (user_id, started_at) VALUES "
                                 "(%s, now()) RETURNING session_id", (uid,)).fetchone()[0]
            for item in items:
                db.execute("SELECT record_answer(%s, %s, true, 3000, p_session_id => %s)",
                           (uid, item, session))
            db.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                       "VALUES (%s, '2035-06-01', 'session_started')", (uid,))  # DEFAULT
            db.execute("INSERT INTO archive.learning_events_2020_01 (event_id, user_id, "
                       "occurred_at, event_type) VALUES (%s, %s, '2020-01-15', "
                       "'session_started')", (10_000 + i, uid))
            users.append(uid)
        for view in ("user_progress", "daily_concept_mastery", "content_performance"):
            db.execute(f"REFRESH MATERIALIZED VIEW {view}")
        return users


def _others(url: str, uid: int) -> dict[str, list[str]]:
    """Every other learner's rows, as text, relation by relation."""
    with psycopg.connect(url) as db:
        return {r: sorted(row[0] for row in db.execute(
            f"SELECT to_jsonb(t)::text FROM {r} t WHERE user_id <> %s", (uid,)).fetchall())
            for r in RELATIONS + ("user_progress",)}


def _mine(url: str, uid: int) -> dict[str, int]:
    with psycopg.connect(url) as db:
        return {r: db.execute(f"SELECT count(*) FROM {r} WHERE user_id = %s",
                              (uid,)).fetchone()[0] for r in RELATIONS + ("user_progress",)}


def test_the_inventory_classifies_every_user_linked_relation(schema_url, tmp_path):
    done = run_dmdb(["privacy", "inventory", "--json"], {"DATABASE_URL": schema_url},
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    actions = {r["relation"]: r["action"] for r in data["relations"]}
    assert data["unclassified"] == []
    for table in ("users", "user_emails", "knowledge_states", "review_schedule",
                  "learning_sessions", "learning_events"):
        assert actions[f"public.{table}"] == "delete"
    assert actions["public.user_progress"] == "refresh"
    assert actions["dmdb_privacy.requests"] == "excluded"


def test_a_new_user_table_fails_lint_and_the_inventory_until_classified(schema_url, tmp_path):
    from conftest import REPO

    project = tmp_path / "proj"
    for sub in ("migrations", "rollbacks", "functions"):
        (project / "sql" / sub).mkdir(parents=True)
        for f in (REPO / "sql" / sub).glob("*.sql"):
            (project / "sql" / sub / f.name).write_text(f.read_text())
    (project / "dmdb.toml").write_text("")
    (project / "sql" / "migrations" / "0099_badges.sql").write_text(
        "CREATE TABLE badges (user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, "
        "badge text NOT NULL, PRIMARY KEY (user_id, badge));\n")
    (project / "sql" / "rollbacks" / "0099_badges.sql").write_text("DROP TABLE badges;\n")
    env = {"DATABASE_URL": schema_url}
    done = run_dmdb(["lint", "--json"], env, cwd=project, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    rules = [(f["rule"], f["file"]) for f in json.loads(done.stdout)["findings"]
             if f["severity"] == "error"]
    assert rules == [("privacy-unclassified", "0099_badges")]
    (project / "sql" / "privacy.toml").write_text(
        '[relations."public.badges"]\naction = "delete"\nkey = "user_id"\n'
        'reason = "badges the learner earned"\n')
    done = run_dmdb(["lint", "--json"], env, cwd=project, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # Applied and unclassified, the inventory itself refuses.
    (project / "sql" / "privacy.toml").unlink()
    assert run_dmdb(["up"], env, cwd=project).returncode == 0
    done = run_dmdb(["privacy", "inventory"], env, cwd=project)
    assert done.returncode == 1 and "public.badges" in done.stderr
    done = run_dmdb(["privacy", "erase", "1", "--dry-run"], env, cwd=project)
    assert done.returncode == 1 and "does not classify public.badges" in done.stderr


def test_erase_removes_the_learner_everywhere_and_nothing_else(schema_url, tmp_path):
    users = _learners(schema_url)
    uid = users[1]
    env = {"DATABASE_URL": schema_url}
    others = _others(schema_url, uid)
    assert all(_mine(schema_url, uid).values())  # the learner is in every relation
    dry = run_dmdb(["privacy", "erase", str(uid), "--dry-run", "--json"], env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["public.learning_events"]["before"] == 5
    assert all(_mine(schema_url, uid).values())  # a dry run changes nothing
    assert run_dmdb(["privacy", "erase", str(uid)], env, cwd=tmp_path).returncode == 2

    done = run_dmdb(["privacy", "erase", str(uid), "--yes", "--json"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert _mine(schema_url, uid) == dict.fromkeys(RELATIONS + ("user_progress",), 0)
    assert _others(schema_url, uid) == others
    assert result["counts"]["archive.learning_events_2020_01"] == {"before": 1, "deleted": 1}
    assert "public.user_progress" in result["refreshed"] and result["vacuumed"]

    requests = json.loads(run_dmdb(["privacy", "requests", "--json"], env,
                                   cwd=tmp_path).stdout)
    assert [r["kind"] for r in requests] == ["erase"]
    entry = requests[0]
    assert entry["counts"] == result["counts"] and entry["backups_clean_after"]
    # A keyed hash: not the id, not its plain hash, no e-mail anywhere in the entry.
    import hashlib

    assert len(entry["subject"]) == 64 and int(entry["subject"], 16) >= 0
    assert entry["subject"] != hashlib.sha256(f"user:{uid}".encode()).hexdigest()
    assert "@" not in json.dumps(entry)
    again = run_dmdb(["privacy", "erase", str(uid), "--yes"], env, cwd=tmp_path)
    assert again.returncode == 1 and "nothing to erase" in again.stderr


def test_export_equals_the_learners_rows_table_by_table(schema_url, tmp_path):
    uid = _learners(schema_url)[0]
    out = tmp_path / "export.jsonl"
    done = run_dmdb(["privacy", "export", str(uid), "--out", out],
                    {"DATABASE_URL": schema_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["subject"] == uid
    exported: dict[str, list] = {}
    for line in lines[1:]:
        exported.setdefault(line["relation"], []).append(line["row"])
    with psycopg.connect(schema_url) as db:
        events = {r[0] for r in db.execute("SELECT event_id FROM learning_events "
                                           "WHERE user_id = %s", (uid,)).fetchall()}
        email = db.execute("SELECT email FROM users WHERE user_id = %s", (uid,)).fetchone()[0]
        concepts = {r[0] for r in db.execute("SELECT concept_id FROM knowledge_states "
                                             "WHERE user_id = %s", (uid,)).fetchall()}
    assert {r["event_id"] for r in exported["public.learning_events"]} == events
    assert [r["email"] for r in exported["public.users"]] == [email]
    assert exported["public.user_emails"] == [{"email": email, "user_id": uid}]
    assert {r["concept_id"] for r in exported["public.knowledge_states"]} == concepts
    assert len(exported["archive.learning_events_2020_01"]) == 1
    assert all(r["user_id"] == uid for rows in exported.values() for r in rows)
    kinds = [r["kind"] for r in json.loads(run_dmdb(
        ["privacy", "requests", "--json"], {"DATABASE_URL": schema_url}, cwd=tmp_path).stdout)]
    assert kinds == ["export"]


def test_a_killed_erase_leaves_everything(schema_url, tmp_path):
    uid = _learners(schema_url, 2)[0]
    before = _mine(schema_url, uid)
    with psycopg.connect(schema_url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE dmdb_privacy.requests IN ACCESS EXCLUSIVE MODE")
        proc = popen_dmdb(["privacy", "erase", str(uid), "--yes"],
                          {"DATABASE_URL": schema_url}, cwd=tmp_path)
        try:
            with psycopg.connect(schema_url, autocommit=True) as watch:
                for _ in range(300):  # until the erase waits for the ledger: rows deleted
                    if watch.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE 'INSERT INTO dmdb_privacy.requests%%'"
                    ).fetchone()[0]:
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail("the erase never reached the ledger")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            blocker.execute("COMMIT")
    for _ in range(100):  # the orphaned backend rolls back once it sees the client gone
        with psycopg.connect(schema_url, autocommit=True) as watch:
            if not watch.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                 "'INSERT INTO dmdb_privacy.requests%%'").fetchone()[0]:
                break
        time.sleep(0.1)
    assert _mine(schema_url, uid) == before
    with psycopg.connect(schema_url) as db:
        assert db.execute("SELECT count(*) FROM dmdb_privacy.requests").fetchone()[0] == 0


def test_a_dump_taken_before_an_erasure_is_restored_without_the_learner(schema_db, tmp_path):
    name, url = schema_db
    uid = _learners(url, 2)[0]
    env = {"DATABASE_URL": url}
    dump = tmp_path / "before.dump"
    assert run_dmdb(["backup", "--out", dump], env, cwd=tmp_path).returncode == 0
    time.sleep(1.1)  # the dump's header has whole seconds
    assert run_dmdb(["privacy", "erase", str(uid), "--yes"], env,
                    cwd=tmp_path).returncode == 0
    target = f"{name}_restored"
    done = run_dmdb(["restore", dump, "--into", target, "--json"], env, cwd=tmp_path,
                    timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["erasures_reapplied"] == [uid]
    restored = url.replace(f"/{name}", f"/{target}")
    try:
        assert _mine(restored, uid) == dict.fromkeys(RELATIONS + ("user_progress",), 0)
        with psycopg.connect(restored) as db:
            assert db.execute("SELECT count(*) FROM dmdb_privacy.requests WHERE "
                              "reapplied_from IS NOT NULL").fetchone()[0] == 1
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
