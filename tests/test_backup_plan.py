"""The pure half of point-in-time recovery (#25): WAL names, targets, the restore plan and
its range, retention, the quoting of what dmdb writes for the server and for systemd and
Barman; and the one-line refusals (a role that may not replicate, a managed service)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dmdb.backup.repository import BackupEntry, Catalog, Mark
from dmdb.backup.walnames import (
    Segment,
    format_lsn,
    parse_lsn,
    parse_segment,
    segment_name,
    segment_of,
)
from dmdb.config import Settings
from dmdb.errors import ConfigError, DmdbError

MB16 = 16 * 1024 * 1024
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_lsns_and_segment_names():
    assert parse_lsn("0/3000028") == 0x3000028
    assert format_lsn(parse_lsn("1A/FF000000")) == "1A/FF000000"
    assert segment_of(1, parse_lsn("0/3000028")) == "000000010000000000000003"
    assert segment_of(2, parse_lsn("1/0")) == "000000020000000100000000"
    seg = parse_segment("000000010000000100000002")
    assert seg == Segment(0x100 + 2, 1, "000000010000000100000002")
    assert segment_name(1, seg.segno) == seg.name
    for other in ("00000002.history", "000000010000000000000003.00000028.backup",
                  "000000010000000000000004.partial", "archtemp.000000010000000000000004.1"):
        assert parse_segment(other) is None
    with pytest.raises(ValueError):
        parse_lsn("0/xyz")


def _backup(name, kind, parent, start, stop, stop_time) -> BackupEntry:
    return BackupEntry(name=name, kind=kind, parent=parent, label=name, timeline=1,
                       start_lsn=format_lsn(start), stop_lsn=format_lsn(stop),
                       start_time=stop_time.isoformat(), stop_time=stop_time.isoformat(),
                       bytes=1, seconds=1.0, server_version="18.6")


@pytest.fixture
def catalog() -> Catalog:
    """A full backup in segment 2, an incremental in segment 5, a mark in segment 6."""
    return Catalog(
        system_identifier="1",
        backups=[_backup("F", "full", None, 2 * MB16 + 40, 2 * MB16 + 300, T0),
                 _backup("I", "incremental", "F", 5 * MB16 + 40, 5 * MB16 + 300,
                         T0 + timedelta(hours=1))],
        marks=[Mark("m", format_lsn(6 * MB16 + 500), (T0 + timedelta(hours=2)).isoformat(), 1)])


def _segments(*numbers) -> list[Segment]:
    return [parse_segment(segment_name(1, n)) for n in numbers]


def test_targets_are_read_as_postgresql_would(catalog):
    from dmdb.backup.restore import parse_target

    assert parse_target("latest", catalog).kind == "latest"
    lsn = parse_target("0/6000100", catalog)
    assert (lsn.kind, lsn.lsn) == ("lsn", 0x6000100)
    when = parse_target("2026-12-07T13:00:00Z", catalog)
    assert when.kind == "time" and when.time == T0 + timedelta(hours=1)
    naive = parse_target("2026-12-07 13:00:00", catalog)
    assert naive.time.tzinfo is not None  # this machine's zone, made explicit
    mark = parse_target("m", catalog)
    assert (mark.kind, mark.lsn) == ("name", 6 * MB16 + 500)
    assert parse_target("name:m", catalog).kind == "name"
    with pytest.raises(ConfigError, match="latest marks: m"):
        parse_target("nope", catalog)
    with pytest.raises(ConfigError, match="not an LSN"):
        parse_target("lsn:soon", catalog)


def test_plan_chooses_the_newest_backup_before_the_target(catalog):
    from dmdb.backup.restore import parse_target, plan

    segments = _segments(*range(2, 8))
    for target, chain in (("0/2000100", None), ("0/3000000", ["F"]), ("0/5000300", ["F", "I"]),
                          ("m", ["F", "I"]), ("latest", ["F", "I"])):
        if chain is None:
            with pytest.raises(ConfigError, match="before the oldest restorable point"):
                plan(catalog, segments, parse_target(target, catalog), repo="r")
            continue
        p = plan(catalog, segments, parse_target(target, catalog), repo="r")
        assert p.chain == chain, target
    p = plan(catalog, segments, parse_target("m", catalog), repo="r")
    assert p.recovery_settings == {"recovery_target_name": "m",
                                   "recovery_target_action": "promote"}
    lsn = plan(catalog, segments, parse_target("0/3000000", catalog), repo="r")
    assert lsn.recovery_settings["recovery_target_inclusive"] == "off"
    assert (lsn.wal_from, lsn.oldest["backup"]) == ("000000010000000000000002", "F")


def test_plan_refuses_past_the_archive_and_across_a_gap(catalog):
    from dmdb.backup.restore import parse_target, plan

    with pytest.raises(ConfigError, match="past the archived WAL: the archive restores from"):
        plan(catalog, _segments(*range(2, 8)), parse_target("0/9000000", catalog), repo="r")
    # Segment 4 lost: the full backup cannot be replayed past it; the incremental (which
    # starts after the gap) still serves what comes later.
    gap = _segments(2, 3, 5, 6, 7)
    with pytest.raises(DmdbError, match="WAL segment 000000010000000000000004 is missing"):
        plan(catalog, gap, parse_target("0/4800000", catalog), repo="r")
    assert plan(catalog, gap, parse_target("m", catalog), repo="r").chain == ["F", "I"]
    # No commit time known (pg_waldump not asked): a time target cannot be placed.
    with pytest.raises(ConfigError, match="not before the newest archived commit"):
        plan(catalog, _segments(*range(2, 8)), parse_target("2026-12-07T12:30:00Z", catalog),
             repo="r")


def test_an_incremental_without_its_full_backup_is_not_restorable(catalog):
    from dmdb.backup.restore import parse_target, plan

    catalog.backups = [b for b in catalog.backups if b.name != "F"]
    with pytest.raises(DmdbError, match="no base backup"):
        plan(catalog, _segments(*range(2, 8)), parse_target("latest", catalog), repo="r")


def test_retention_keeps_whole_chains_and_the_wal_they_need(catalog):
    from dmdb.backup.expire import plan_expire

    catalog.backups.append(_backup("F2", "full", None, 8 * MB16 + 40, 8 * MB16 + 300,
                                   T0 + timedelta(days=3)))
    catalog.backups.append(_backup("I2", "incremental", "F2", 9 * MB16 + 40, 9 * MB16 + 300,
                                   T0 + timedelta(days=4)))
    files = [segment_name(1, n) for n in range(1, 11)] + [
        "00000002.history", "000000010000000000000002.00000028.backup",
        "000000010000000000000007.partial", "archtemp.000000010000000000000003.9.1"]
    now = T0 + timedelta(days=5)
    one = plan_expire(catalog, files, keep=1, window_days=None, now=now)
    assert (one.keep, one.remove) == (["F2", "I2"], ["F", "I"])
    assert one.wal_before == "000000010000000000000008"
    assert one.wal_remove == sorted(
        [segment_name(1, n) for n in range(1, 8)]
        + ["000000010000000000000002.00000028.backup", "000000010000000000000007.partial"])
    assert one.marks_remove == ["m"] and one.oldest_restorable["backup"] == "F2"
    # A 4.5-day window reaches back into I's time: the newest backup before its start
    # (I) stays, and so does the full backup it builds on.
    window = plan_expire(catalog, files, keep=None, window_days=4.5, now=now)
    assert window.keep == ["F", "I", "F2", "I2"] and window.remove == []
    assert plan_expire(catalog, files, keep=2, window_days=None, now=now).remove == []
    with pytest.raises(ConfigError, match="--keep N"):
        plan_expire(catalog, files, keep=None, window_days=None, now=now)
    with pytest.raises(ConfigError, match="--keep must be 1 or more"):
        plan_expire(catalog, files, keep=0, window_days=None, now=now)


def test_restore_command_cannot_be_injected_through_the_repository_path(tmp_path):
    """The command as the server runs it: %f and %p expanded, %% to %, then /bin/sh."""
    from dmdb.backup.restore import conf_literal, restore_command

    wal = tmp_path / "it's a $(touch pwned) `touch pwned2`; 100% \"repo\"" / "wal"
    wal.mkdir(parents=True)
    (wal / "000000010000000000000003").write_bytes(b"segment")
    command = restore_command(wal)
    expanded = (command.replace("%f", "000000010000000000000003").replace("%p", "RECOVERYXLOG")
                .replace("%%", "%"))
    done = subprocess.run(["/bin/sh", "-c", expanded], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "RECOVERYXLOG").read_bytes() == b"segment"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    # In postgresql.auto.conf: quotes doubled, backslashes escaped, no new line possible.
    assert conf_literal("it's \\ here") == "'it''s \\\\ here'"
    with pytest.raises(ConfigError):
        conf_literal("a\nrestore_command = 'rm -rf /'")


def test_the_pg_receivewal_unit_is_quoted_and_holds_no_password():
    from dmdb.backup.wal import render_service

    settings = Settings(host="db.internal", port=5433, user="wal ship", password="s3cret%x",
                        home=Path("/srv/dm db"))
    unit = render_service(settings, user="postgres", env_file="/etc/dmdb/wal.env",
                          pg_receivewal="/usr/lib/postgresql/18/bin/pg_receivewal")
    text = unit.service
    assert "s3cret" not in text and "PGPASSWORD" in text  # the comment says where it goes
    start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert '"/srv/dm db/backups/wal"' in start and "--slot dmdb_wal" in start
    assert "user='wal ship'" in start and "--synchronous" in start
    assert "User=postgres" in text and "EnvironmentFile=/etc/dmdb/wal.env" in text
    pre = next(ln for ln in text.splitlines() if ln.startswith("ExecStartPre="))
    assert "--create-slot --if-not-exists" in pre
    with pytest.raises(ConfigError, match="--user"):
        render_service(settings, user="root\nExecStartPre=/bin/sh",
                       pg_receivewal="/usr/bin/pg_receivewal")
    with pytest.raises(ConfigError, match="wal on"):
        render_service(Settings(home=Path("/srv")))


def test_the_barman_configuration(tmp_path):
    from dmdb.backup.barman import render

    settings = Settings(host="db.internal", port=5432, user="dm_owner", password="pw%",
                        dbname="dmdb", home=tmp_path)
    conf = render(settings, retention="redundancy 2", streaming_user="streaming_barman").text
    assert "[dmdb]" in conf and "backup_method = postgres" in conf
    assert "conninfo = host=db.internal port=5432 dbname=dmdb" in conf
    assert "streaming_conninfo = host=db.internal port=5432" in conf
    assert "user=streaming_barman" in conf and "RETENTION_POLICY" not in conf
    assert "retention_policy = REDUNDANCY 2" in conf and "pw%" not in conf
    with pytest.raises(ConfigError, match="retention"):
        render(settings, retention="forever")
    with pytest.raises(ConfigError, match="--name"):
        render(settings, name="a]b")
    with pytest.raises(ConfigError, match="embedded"):
        render(Settings(home=tmp_path))


def test_a_managed_service_is_named_with_its_own_pitr(tmp_path):
    from dmdb.backup import wal
    from dmdb.backup.barman import render

    rds = Settings(host="prod.abc123.eu-west-1.rds.amazonaws.com", user="app", home=tmp_path)
    for call in (lambda: wal.wal_on(rds), lambda: wal.render_service(rds),
                 lambda: render(rds)):
        with pytest.raises(DmdbError) as err:
            call()
        assert "Amazon RDS" in str(err.value) and "point-in-time" in str(err.value)
        assert len(str(err.value).splitlines()) == 1
    azure = Settings(host="dm.postgres.database.azure.com", user="app", home=tmp_path)
    with pytest.raises(DmdbError, match="az postgres flexible-server restore"):
        wal.wal_on(azure)
    with pytest.raises(ConfigError, match="pg_receivewal"):
        wal.wal_on(Settings(host="db.internal", home=tmp_path))


def test_a_role_that_may_not_replicate_is_refused_in_one_line(pg_settings, tmp_path):
    """Before anything is written; on a server with a provider's admin role, the line
    names the provider's PITR instead."""
    from dmdb.backup.base import take

    role = "dmdb_norepl_test"
    admin = psycopg.connect(**pg_settings.conninfo(), autocommit=True)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        settings = Settings(host=pg_settings.host, port=pg_settings.port, user=role,
                            dbname="postgres", home=tmp_path)
        with pytest.raises(DmdbError) as err:
            take(settings)
        assert f"ALTER ROLE {role} REPLICATION" in str(err.value)
        admin.execute("CREATE ROLE rds_superuser")
        try:
            with pytest.raises(DmdbError, match="Amazon RDS/Aurora, which runs point-in-time"):
                take(settings)
        finally:
            admin.execute("DROP ROLE rds_superuser")
        assert not (tmp_path / "backups").exists()
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.close()


def test_the_logical_dump_keeps_its_command_line(cli, tmp_path):
    done = cli(["backup", "--out", tmp_path / "x.dump", "list"])
    assert done.exit_code == 2 and "belong to the logical dump" in done.stderr
    both = cli(["restore", "x.dump", "--to", "latest", "--into-dir", tmp_path / "r"])
    assert both.exit_code == 2 and "belong to a logical dump" in both.stderr
    half = cli(["restore", "--to", "latest"])
    assert half.exit_code == 2 and "--into-dir" in half.stderr
    none = cli(["restore"])
    assert none.exit_code == 2 and "dump FILE" in none.stderr
    empty = cli(["backup", "list", "--repo", tmp_path / "nothing"])
    assert empty.exit_code == 0 and "no backup repository" in empty.stdout
    assert not os.path.exists(tmp_path / "nothing")


def test_the_monitor_without_a_repository_says_backups_are_not_set_up(pg_settings, tmp_path):
    from dmdb.monitor import run
    from dmdb.monitor.core import Thresholds

    with psycopg.connect(**pg_settings.conninfo(), autocommit=True) as conn:
        report = run.run_checks(conn, Thresholds(),
                                only=["backup_age", "restore_check", "backup_wal"],
                                settings=Settings(home=tmp_path))
    for check in report.checks:
        assert check.status.name == "OK" and "not set up" in check.summary
        assert check.metrics["configured"] is False
    with pytest.raises(ConfigError, match="--backup-age-warn must be <="):
        Thresholds(backup_age_warn_hours=60, backup_age_critical_hours=50).validate()


def test_a_server_reached_by_its_address_is_backed_up_and_restored(pg_settings, tmp_path):
    """Any server dmdb reaches with a role that may replicate (here the suite's own, by
    its socket, as a remote one); as root the repository must be within reach of the
    server's user, who reads the WAL in a restore — named, with the fix, until it is."""
    from dmdb.backup import base, wal
    from dmdb.backup.repository import Repository
    from dmdb.backup.restore import RestoredServer, restore_to
    from dmdb.backup.verify import verify

    repo_dir = tmp_path / "repo"
    settings = Settings(host=pg_settings.host, port=pg_settings.port, user=pg_settings.user,
                        dbname="postgres", home=tmp_path / "home", backup_repo=repo_dir)
    admin = psycopg.connect(**pg_settings.conninfo(), autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS dmdb_marker")
    admin.execute("CREATE DATABASE dmdb_marker")
    with psycopg.connect(**pg_settings.conninfo(dbname="dmdb_marker"), autocommit=True) as c:
        c.execute("CREATE TABLE marker AS SELECT 42 AS answer")
    try:
        if os.geteuid() == 0:
            with pytest.raises(ConfigError, match="out of reach of the server's user"):
                base.take(settings)
            for parent in (tmp_path, *tmp_path.parents):
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o001)
        taken = base.take(settings)
        assert taken.backup.kind == "full"
        assert verify(Repository.for_settings(settings)).ok
        status = wal.status(settings)
        assert not status.embedded and any("dmdb_wal" in n for n in status.notes)
        admin.execute("DROP DATABASE dmdb_marker")
        into = tmp_path / "restored"
        result = restore_to(Repository.for_settings(settings), "latest", into)
        try:
            url = result.url.replace("/dmdb?", "/dmdb_marker?")
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT answer FROM marker").fetchone() == (42,)
        finally:
            RestoredServer(into, 0).destroy()
    finally:
        admin.execute("DROP DATABASE IF EXISTS dmdb_marker")
        admin.close()
        real = Repository.for_settings(settings).real
        import shutil

        shutil.rmtree(real, ignore_errors=True)
