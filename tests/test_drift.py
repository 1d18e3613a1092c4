"""dmdb drift and dmdb baseline against a real PostgreSQL (issue 14)."""

from __future__ import annotations

import json

import psycopg

from conftest import REPO, run_sql

LEDGER_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "_dmdb_checksum")
MIGRATIONS = sorted(p.stem for p in (REPO / "sql" / "migrations").glob("*.sql"))
LAST = MIGRATIONS[-1]


def _applied(url: str) -> list[str]:
    if not run_sql(url, "SELECT to_regclass('_yoyo_migration')")[0][0]:
        return []
    return [r[0] for r in run_sql(url, "SELECT migration_id FROM _yoyo_migration ORDER BY 1")]


def test_drift_reports_a_hand_made_column_until_it_is_dropped(cli, schema_url):
    clean = cli(["drift"], url=schema_url)
    assert clean.exit_code == 0, clean.stdout + clean.stderr
    assert "No drift" in clean.stdout

    run_sql(schema_url, "ALTER TABLE users ADD COLUMN hand_made text")
    drifted = cli(["drift", "--json"], url=schema_url)
    assert drifted.exit_code == 1
    data = json.loads(drifted.stdout)
    assert data["ok"] is False
    assert [(d["object"], d["kind"]) for d in data["differences"]] == [("TABLE public.users", "differs")]
    assert any("hand_made" in line for line in data["differences"][0]["diff"])
    assert "schema drift" in drifted.stderr and len(drifted.stderr.strip().splitlines()) == 1

    run_sql(schema_url, "ALTER TABLE users DROP COLUMN hand_made")
    assert cli(["drift"], url=schema_url).exit_code == 0
    # the comparison ran in a scratch database, dropped afterwards
    left = "SELECT count(*) FROM pg_database WHERE datname LIKE 'dmdb_drift_%'"
    assert run_sql(schema_url, left)[0][0] == 0


def test_drift_names_objects_missing_and_extra(cli, schema_url):
    run_sql(schema_url, "DROP INDEX bandit_arms_concept_idx")
    run_sql(schema_url, "CREATE TABLE scratchpad (id int)")
    data = json.loads(cli(["drift", "--json"], url=schema_url).stdout)
    kinds = {d["object"]: d["kind"] for d in data["differences"]}
    assert kinds == {"INDEX public.bandit_arms_concept_idx": "only_in_migrations",
                     "TABLE public.scratchpad": "only_in_live",
                     # its grants, from 0001's default privileges
                     "ACL public.TABLE scratchpad": "only_in_live"}


def test_drift_ignores_partitions_made_by_dmdb_partitions(cli, schema_url):
    made = cli(["partitions", "create", "--from", "2031-01", "--ahead", "1"], url=schema_url)
    assert made.exit_code == 0, made.stderr
    assert run_sql(schema_url, "SELECT to_regclass('learning_events_2031_02') IS NOT NULL")[0][0]
    result = cli(["drift", "--json"], url=schema_url)
    assert result.exit_code == 0, result.stdout
    assert "TABLE public.learning_events_2031_01" in json.loads(result.stdout)["ignored"]


def test_baseline_records_a_matching_schema_and_refuses_drift(cli, schema_url):
    with psycopg.connect(schema_url, autocommit=True) as conn:
        for table in LEDGER_TABLES:
            conn.execute(f"DROP TABLE {table}")  # a schema made without dmdb's ledger
    assert _applied(schema_url) == []

    early = cli(["baseline", "--to", "0003_learner_state"], url=schema_url)
    assert early.exit_code == 1 and "baseline refused" in early.stderr  # 0004+ objects exist
    run_sql(schema_url, "ALTER TABLE users ADD COLUMN hand_made text")
    refused = cli(["baseline", "--to", LAST], url=schema_url)
    assert refused.exit_code == 1
    assert "baseline refused" in refused.stderr and "TABLE public.users" in refused.stderr
    assert _applied(schema_url) == []

    run_sql(schema_url, "ALTER TABLE users DROP COLUMN hand_made")
    preview = cli(["baseline", "--to", LAST, "--dry-run", "--json"], url=schema_url)
    assert preview.exit_code == 0, preview.stderr
    planned = json.loads(preview.stdout)["marked"]
    assert planned == MIGRATIONS
    assert _applied(schema_url) == []

    done = cli(["baseline", "--to", LAST], url=schema_url)
    assert done.exit_code == 0, done.stderr
    assert _applied(schema_url) == planned
    status = json.loads(cli(["status", "--json"], url=schema_url).stdout)
    assert status["summary"]["pending"] == 0 and status["summary"]["edited"] == 0
    # the function files were not recorded by baseline: `up` re-applies them, and then
    # the whole schema, functions included, is what the files make
    up = cli(["up", "--json"], url=schema_url)
    assert up.exit_code == 0 and json.loads(up.stdout)["migrations"] == []
    assert cli(["drift"], url=schema_url).exit_code == 0


def test_drift_on_a_database_without_migrations_says_so(cli, empty_url):
    # Nothing to compare is the wrong database or one never migrated: exit 1, as every
    # command that needs the schema (#28), not a passing check.
    result = cli(["drift"], url=empty_url)
    assert result.exit_code == 1, result.stderr
    assert "None" not in result.stdout
    assert "has no dmdb schema (no migration applied)" in result.stderr
