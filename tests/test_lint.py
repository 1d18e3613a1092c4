"""dmdb lint: squawk's rules and the lock trace, against a real PostgreSQL (issue 14)."""

from __future__ import annotations

import json

from conftest import run_sql

INDEX = "CREATE INDEX learning_events_concept_idx ON learning_events (concept_id);\n"
REWRITE = "ALTER TABLE users ADD COLUMN seen_at timestamptz DEFAULT clock_timestamp();\n"


def _lint(cli, url, tmp_path, body: str, *args, name: str = "0007_change.sql"):
    path = tmp_path / name
    path.write_text(body)
    result = cli(["lint", "--json", *args, path], url=url)
    return result, json.loads(result.stdout)


def _rules(data, source: str = "trace") -> dict[str, dict]:
    return {f["rule"]: f for f in data["findings"] if f["source"] == source}


def test_flags_non_concurrent_index_and_table_rewrite(cli, schema_url, tmp_path):
    run_sql(schema_url, "INSERT INTO users (email, display_name) VALUES ('a@x.org', 'a'), ('b@x.org', 'b')")
    result, data = _lint(cli, schema_url, tmp_path, "-- two bad ideas\n" + INDEX + "\n" + REWRITE)
    assert result.exit_code == 1
    rules = _rules(data)
    assert rules["non-concurrent-index"]["line"] == 2
    assert "learning_events" in rules["non-concurrent-index"]["message"]
    assert rules["table-rewrite"]["line"] == 4 and "users" in rules["table-rewrite"]["message"]
    assert {"non-concurrent-index", "table-rewrite"} <= {
        f["rule"] for f in data["findings"] if f["severity"] == "error"}
    assert "require-concurrent-index-creation" in _rules(data, "squawk")
    # The trace names the locks: SHARE on the partitioned table, ACCESS EXCLUSIVE on users.
    first, second = data["files"][0]["statements"]
    assert {"table": "learning_events", "mode": "SHARE"} in first["locks"]
    assert {"table": "users", "mode": "ACCESS EXCLUSIVE"} in second["locks"]
    assert second["rewrites"] == ["users"]
    # Only a scratch copy was changed.
    assert run_sql(schema_url, "SELECT to_regclass('learning_events_concept_idx')")[0][0] is None
    assert run_sql(schema_url, "SELECT count(*) FROM information_schema.columns "
                               "WHERE table_name = 'users' AND column_name = 'seen_at'")[0][0] == 0
    assert run_sql(schema_url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dmdb_lint_%'")[0][0] == 0


def test_validation_scan_and_lock_held_across_work(cli, schema_url, tmp_path):
    body = ("ALTER TABLE users ADD COLUMN nick text;\n"
            "ALTER TABLE content ADD CONSTRAINT content_id_positive CHECK (content_id > 0);\n")
    result, data = _lint(cli, schema_url, tmp_path, body)
    assert result.exit_code == 1
    rules = _rules(data)
    assert rules["validation-scan"]["line"] == 2 and "content" in rules["validation-scan"]["message"]
    assert rules["lock-held-across-work"]["line"] == 2
    assert "users (taken at line 1)" in rules["lock-held-across-work"]["message"]

    safe = body.replace("CHECK (content_id > 0)", "CHECK (content_id > 0) NOT VALID")
    _, data = _lint(cli, schema_url, tmp_path, safe, name="0007_safe.sql")
    assert "validation-scan" not in _rules(data)


def test_severity_threshold(cli, schema_url, tmp_path):
    body = "ALTER TABLE users ADD COLUMN nick text;\n"  # a brief ACCESS EXCLUSIVE: info
    result, data = _lint(cli, schema_url, tmp_path, body)
    assert result.exit_code == 0, data
    assert [f["severity"] for f in data["findings"]] == ["info"]
    assert _lint(cli, schema_url, tmp_path, body, "--severity", "info")[0].exit_code == 1
    assert cli(["lint", "--severity", "loud"], url=schema_url).exit_code == 2


def test_ignore_comment_needs_a_reason(cli, schema_url, tmp_path):
    reasoned = ("-- dmdb-lint: ignore non-concurrent-index, require-concurrent-index-creation "
                "-- learning_events is empty until launch\n" + INDEX)
    result, data = _lint(cli, schema_url, tmp_path, reasoned)
    assert result.exit_code == 0, data["findings"]
    silenced = [f for f in data["findings"] if f["ignored"]]
    assert {f["rule"] for f in silenced} == {"non-concurrent-index", "require-concurrent-index-creation"}
    assert all(f["reason"] == "learning_events is empty until launch" for f in silenced)

    bare = "-- dmdb-lint: ignore non-concurrent-index\n" + INDEX
    result, data = _lint(cli, schema_url, tmp_path, bare)
    assert result.exit_code == 1
    rules = {f["rule"]: f for f in data["findings"]}
    assert rules["ignore-without-reason"]["line"] == 1
    assert rules["non-concurrent-index"]["ignored"] is False


def test_replay_failure_is_a_finding(cli, schema_url, tmp_path):
    result, data = _lint(cli, schema_url, tmp_path, "ALTER TABLE no_such_table ADD COLUMN x int;\n")
    assert result.exit_code == 1
    assert "no_such_table" in _rules(data)["replay-failed"]["message"]


def test_shipped_migrations_pass(cli, empty_url):
    result = cli(["lint", "--json"], url=empty_url)
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert len(data["files"]) >= 6
    assert data["findings"] == []
    assert cli(["up"], url=empty_url).exit_code == 0
    nothing = json.loads(cli(["lint", "--json"], url=empty_url).stdout)
    assert nothing["files"] == [] and "no pending migrations" in nothing["notes"][0]
