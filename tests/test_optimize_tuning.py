"""dmdb optimize (issue 30, item 4): the by-hand tuning, each finding with its evidence and
the command that fixes it; --apply runs only ANALYZE and REINDEX CONCURRENTLY.

One database made to need each fix: a table changed past its analyze threshold, a btree
index left mostly empty by a delete, a packed table whose updates find no room on their
page, a row in the DEFAULT partition, a sort that spilled to disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from conftest import run_sql

BASE = ["optimize", "--json", "--no-indexes", "--bloat-min-size-mb", "0", "--hot-min-updates",
        "1000"]


def _wait(url: str, query: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not run_sql(url, query)[0][0]:
        assert time.monotonic() < deadline, f"never true: {query}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tuned(databases):
    name = databases.create(schema=True)
    url = databases.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # statistics gone stale: 10,000 rows since the (never run) analyze
        conn.execute("CREATE TABLE stale (id bigint PRIMARY KEY, v int) "
                     "WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO stale SELECT g, g FROM generate_series(1, 10000) g")
        # a btree left 90 % empty
        conn.execute("CREATE TABLE sparse (id int NOT NULL, pad text) "
                     "WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO sparse SELECT g, 'x' FROM generate_series(1, 100000) g")
        conn.execute("CREATE INDEX sparse_id_idx ON sparse (id)")
        conn.execute("DELETE FROM sparse WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE sparse")
        # a packed table (fillfactor 100): its updates find no room on their page
        conn.execute("CREATE TABLE packed (id int PRIMARY KEY, v int NOT NULL, pad text) "
                     "WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO packed SELECT g, 0, repeat('p', 60) FROM generate_series(1, 5000) g")
        conn.execute("VACUUM ANALYZE packed")
        conn.execute("UPDATE packed SET v = v + 1")
        # a row no monthly partition takes
        user = conn.execute("INSERT INTO users (email, display_name) VALUES "
                            "('late@example.test', 'late') RETURNING user_id").fetchone()[0]
        conn.execute("INSERT INTO learning_events (user_id, occurred_at, event_type) "
                     "VALUES (%s, '2001-02-03 04:05:06+00', 'session_started')", (user,))
        # a sort that did not fit in work_mem
        conn.execute("SET work_mem = '64kB'")
        conn.execute("SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g "
                     "ORDER BY g DESC) s")
        conn.execute("SELECT pg_stat_force_next_flush()")
    _wait(url, "SELECT n_tup_upd >= 5000 FROM pg_stat_user_tables WHERE relname = 'packed'")
    _wait(url, "SELECT temp_files > 0 FROM pg_stat_database WHERE datname = current_database()")
    _wait(url, "SELECT n_mod_since_analyze >= 10000 FROM pg_stat_user_tables "
               "WHERE relname = 'stale'")
    yield url
    databases.drop(name)


def _checks(data: dict) -> dict[str, dict]:
    return {c["name"]: c for c in data["checks"]}


def _one(check: dict, subject: str) -> dict:
    (found,) = [f for f in check["findings"] if f["subject"] == subject]
    return found


def test_each_finding_has_its_evidence_and_fix_and_only_the_safe_ones_are_applied(cli, tuned):
    url = tuned
    result = cli(BASE, url=url)
    assert result.exit_code == 1, result.stdout  # findings: WARNING
    checks = _checks(json.loads(result.stdout))
    assert "indexes" not in checks

    stale = _one(checks["stale_statistics"], "public.stale")
    assert stale["fix"] == 'ANALYZE "public"."stale"' and stale["safe"]
    assert stale["evidence"]["n_mod_since_analyze"] >= 10000

    bloat = _one(checks["index_bloat"], "public.sparse_id_idx")
    assert bloat["fix"] == 'REINDEX INDEX CONCURRENTLY "public"."sparse_id_idx"' and bloat["safe"]
    assert bloat["evidence"]["bloat_ratio"] >= 2
    pages_before = bloat["evidence"]["pages"]

    hot = _one(checks["hot_updates"], "public.packed")
    assert hot["fix"] == 'ALTER TABLE "public"."packed" SET (fillfactor = 90)'
    assert not hot["safe"] and hot["evidence"]["updates"] >= 5000
    assert hot["evidence"]["newpage_updates"] > hot["evidence"]["hot_updates"]

    default = _one(checks["default_rows"], "public.learning_events")
    assert default["fix"] == "dmdb partitions create --fill" and not default["safe"]
    assert default["evidence"] == {"rows": 1, "months": {"2001-02": 1}}

    spill = _one(checks["work_mem"], "work_mem")
    assert spill["evidence"]["temp_files"] >= 1
    assert spill["fix"].startswith("ALTER SYSTEM SET work_mem = '") and not spill["safe"]

    settings = run_sql(url, "SELECT current_setting('work_mem'), current_setting('shared_buffers')")
    applied = cli([*BASE, "--apply"], url=url)
    data = json.loads(applied.stdout)
    assert data["applied"]
    done = {f["subject"]: f for f in data["checks"][0]["findings"] + data["checks"][1]["findings"]}
    assert done["public.stale"]["applied"] and done["public.sparse_id_idx"]["applied"]
    others = [f for c in data["checks"][2:] for f in c["findings"]]
    assert others and not any(f["applied"] for f in others)
    # what it did, and nothing else
    assert run_sql(url, "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                        "WHERE relname = 'stale'")[0][0]
    assert run_sql(url, "SELECT relpages FROM pg_class WHERE relname = 'sparse_id_idx'")[0][0] \
        < pages_before / 2
    assert run_sql(url, "SELECT reloptions FROM pg_class WHERE relname = 'packed'")[0][0] == \
        ["autovacuum_enabled=false"]
    assert run_sql(url, "SELECT count(*) FROM learning_events_default")[0][0] == 1
    assert run_sql(url, "SELECT current_setting('work_mem'), "
                        "current_setting('shared_buffers')") == settings
    again = _checks(json.loads(cli(BASE, url=url).stdout))
    assert again["stale_statistics"]["status"] == "OK"
    assert again["index_bloat"]["status"] == "OK"


def test_plain_output_names_each_fix(cli, tuned):
    result = cli(["optimize", "--no-indexes", "--only", "stale_statistics,default_rows"],
                 url=tuned)
    assert result.exit_code in (0, 1)
    out = result.stdout
    assert "default_rows" in out and "fix: dmdb partitions create --fill" in out
    assert "index_bloat" not in out


def test_settings_against_the_machine_given_and_unknown_when_remote(cli, tuned):
    only = ["optimize", "--json", "--only", "shared_buffers,random_page_cost"]
    data = json.loads(cli([*only, "--ram-gb", "64", "--storage", "ssd"], url=tuned).stdout)
    checks = _checks(data)
    buffers = _one(checks["shared_buffers"], "shared_buffers")
    assert buffers["fix"] == "ALTER SYSTEM SET shared_buffers = '16GB'; -- then restart the server"
    cost = _one(checks["random_page_cost"], "random_page_cost")
    assert cost["fix"] == "ALTER SYSTEM SET random_page_cost = '1.1'; SELECT pg_reload_conf();"
    data = json.loads(cli([*only, "--ram-gb", "0.5", "--storage", "hdd"], url=tuned).stdout)
    assert {c["status"] for c in data["checks"]} == {"OK"}  # 128MB of 512MB; 4 on a disk

    from dmdb.config import Settings
    from dmdb.optimize.tuning import check_random_page_cost, check_shared_buffers, machine

    remote = machine(Settings(host="db.example.test", port=5432, dbname="dmdb"), None)
    assert remote.ram_bytes is None and remote.storage is None
    ctx = {"settings": {"shared_buffers": 128 << 20, "random_page_cost": 4.0}, "machine": remote}
    assert check_shared_buffers(None, ctx).status == "UNKNOWN"
    assert check_random_page_cost(None, ctx).status == "UNKNOWN"


def test_the_index_advice_is_one_of_the_checks(cli, tuned, statements_available):
    result = cli(["optimize", "--json", "--only", "indexes"], url=tuned)
    (check,) = json.loads(result.stdout)["checks"]
    assert check["name"] == "indexes" and check["status"] in ("OK", "WARNING")
    for f in check["findings"]:
        assert f["fix"] in ("dmdb optimize indexes --write-migration",
                            "dmdb optimize indexes --write-drop-migration")


def test_an_unknown_check_is_a_usage_error(cli, tuned):
    result = cli(["optimize", "--only", "vacuum_everything"], url=tuned)
    assert result.exit_code == 2
    assert "no such check" in result.stderr


# -- the rules, pure ------------------------------------------------------------------------


def test_recommendations():
    from dmdb.optimize.tuning import (
        MB,
        max_wal_size_advice,
        pretty,
        shared_buffers_advice,
        work_mem_advice,
    )

    gb = 1024 * MB
    assert shared_buffers_advice(128 * MB, 16 * gb) == 4 * gb
    assert shared_buffers_advice(4 * gb, 16 * gb) is None
    assert shared_buffers_advice(8 * gb, 16 * gb) == 4 * gb  # over 40 %
    assert shared_buffers_advice(128 * MB, 2 * gb) == 512 * MB
    assert shared_buffers_advice(128 * MB, 1 * gb) is None  # half the usual: in line
    assert work_mem_advice(4 * MB, 0, 0, None, 100) is None
    assert work_mem_advice(4 * MB, 10, 10 * 50 * MB, None, 100) == 64 * MB
    assert work_mem_advice(4 * MB, 10, 10 * 50 * MB, 8 * gb, 100) <= int(8 * gb * 0.25 / 100)
    assert max_wal_size_advice(gb, 5, 10) is None  # too few to judge
    assert max_wal_size_advice(gb, 10, 30) == 2 * gb
    assert max_wal_size_advice(gb, 30, 10) is None
    assert [pretty(v) for v in (4 * gb, 6016 * MB, 24 * gb + 5, 8 * MB, 1500)] == \
        ["4GB", "6016MB", "24GB", "8MB", "64kB"]


def test_rotational_from_sys(tmp_path: Path):
    from dmdb.optimize.tuning import rotational

    def disk(name: str, flag: str) -> None:
        queue = tmp_path / "block" / name / "queue"
        queue.mkdir(parents=True)
        (queue / "rotational").write_text(flag + "\n")

    assert rotational(None, tmp_path) is None
    disk("nvme0n1", "0")
    disk("loop0", "1")  # not a disk
    assert rotational(None, tmp_path) is False
    disk("sda", "1")
    assert rotational(None, tmp_path) is None  # disks disagree: not known
