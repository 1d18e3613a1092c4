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


def test_an_unknown_rule_in_an_ignore_comment_is_a_warning(cli, schema_url, tmp_path):
    """A typo in an ignore comment silences nothing; lint says so instead of keeping quiet.
    squawk's rule names are known (squawk itself tells which names it has)."""
    body = ("-- dmdb-lint: ignore non-concurent-index, require-concurrent-index-creation, "
            "no-such-rule -- learning_events is empty until launch\n" + INDEX)
    result, data = _lint(cli, schema_url, tmp_path, body)
    assert result.exit_code == 1
    unknown = [f for f in data["findings"] if f["rule"] == "unknown-ignore-rule"]
    assert [(f["line"], f["severity"], f["source"]) for f in unknown] == [
        (1, "warning", "dmdb-lint")] * 2
    assert "ignore non-concurent-index` names no rule" in unknown[0]["message"]
    assert "did you mean non-concurrent-index?" in unknown[0]["message"]
    assert "ignore no-such-rule` names no rule" in unknown[1]["message"]
    rules = {f["rule"]: f for f in data["findings"]}
    assert rules["non-concurrent-index"]["ignored"] is False  # the typo silenced nothing
    assert rules["require-concurrent-index-creation"]["ignored"] is True


def test_alter_system_and_drop_role_are_labelled_as_what_they_are(cli, schema_url, tmp_path):
    """Not replayed, and not "SHARE UPDATE EXCLUSIVE (CONCURRENTLY: not traced)" as the
    trace used to label every statement it did not run."""
    body = ("ALTER SYSTEM SET work_mem = '7MB';\n"
            "DROP ROLE IF EXISTS lint_nobody_at_all;\n"
            "ALTER TABLE users ADD COLUMN nick text;\n")
    result, data = _lint(cli, schema_url, tmp_path, body)
    statements = data["files"][0]["statements"]
    assert [(st["line"], st["traced"], st["not_traced"]) for st in statements] == [
        (1, False, "cluster-wide"), (2, False, "cluster-wide"), (3, True, None)]
    messages = {f["line"]: f["message"] for f in data["findings"] if f["rule"] == "cluster-wide"}
    assert messages[1].startswith("changes a server setting (ALTER SYSTEM")
    assert messages[2].startswith("drops a role,")
    assert run_sql(schema_url, "SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' "
                               "AND setting = '7MB'")[0][0] == 0
    text = cli(["lint", tmp_path / "0007_change.sql"], url=schema_url).stdout
    rows = [ln for ln in text.splitlines() if ln.startswith("0007_change:")]
    assert "cluster-wide: not replayed" in rows[0] and "cluster-wide: not replayed" in rows[1]
    assert "CONCURRENTLY" not in text


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


def test_cluster_wide_statements_are_not_replayed(cli, schema_url, tmp_path):
    """The scratch database lives in the live cluster, whose roles, tablespaces, databases
    and settings it shares: replaying `CREATE ROLE` or `ALTER ROLE ... PASSWORD` there
    would change the live server. Lint names such statements and does not run them."""
    suffix = tmp_path.name.replace("-", "_").lower()[-20:]
    role = f"lint_leak_{suffix}"
    body = (f"CREATE ROLE {role} NOLOGIN;\n"
            f"ALTER ROLE {role} PASSWORD 'x';\n"
            f"GRANT dm_app TO {role};\n"
            "ALTER TABLE users ADD COLUMN nick text;\n")
    for name, text in (("0007_tx.sql", body),
                       ("0008_nt.sql", "-- transactional: false\n" + body.replace("nick", "nick2"))):
        result, data = _lint(cli, schema_url, tmp_path, text, name=name)
        rules = [(f["line"], f["rule"], f["severity"]) for f in data["findings"]
                 if f["source"] == "trace"]
        first = 2 if name == "0008_nt.sql" else 1
        assert [(ln, r) for ln, r, _ in rules if r == "cluster-wide"] == [
            (first, "cluster-wide"), (first + 1, "cluster-wide"), (first + 2, "cluster-wide")]
        assert "replay-failed" not in {r for _, r, _ in rules}
        assert result.exit_code == 1  # a warning: at or above the default threshold
        assert run_sql(schema_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                       (role,))[0][0] == 0


def test_an_earlier_pending_file_does_not_change_the_live_server_either(cli, schema_url, tmp_path):
    """Linting one file replays the pending migrations before it, unreported: their
    cluster-wide statements are skipped too."""
    import shutil

    from conftest import REPO

    root = tmp_path / "sql"
    shutil.copytree(REPO / "sql", root)
    role = f"lint_early_{tmp_path.name.replace('-', '_').lower()[-20:]}"
    (root / "migrations" / "9001_role.sql").write_text(f"CREATE ROLE {role} NOLOGIN;\n")
    (root / "rollbacks" / "9001_role.sql").write_text(f"DROP ROLE {role};\n")
    later = root / "migrations" / "9002_nick.sql"
    later.write_text("ALTER TABLE users ADD COLUMN nick text;\n")
    (root / "rollbacks" / "9002_nick.sql").write_text("ALTER TABLE users DROP COLUMN nick;\n")
    result = cli(["--sql-dir", root, "lint", "--json", later], url=schema_url)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert [f["id"] for f in json.loads(result.stdout)["files"]] == ["9002_nick"]
    assert run_sql(schema_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                   (role,))[0][0] == 0
