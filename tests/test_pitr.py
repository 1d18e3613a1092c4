"""Continuous archiving and point-in-time recovery (#25) on a real embedded server of
their own (archive_mode needs restarts, and one test SIGKILLs it).

The scenario of the issue: a base backup; three batches of answers through record_answer,
each followed by its time, pg_current_wal_lsn() and a named restore point; an
incremental backup between them; a restore to each of the nine targets holds exactly the
answers committed before it. Then restore --check, verify against a corrupted WAL segment
and a corrupted data file, a SIGKILLed base backup, expire, and the WAL a SIGKILLed
server loses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, _dmdb_env, run_dmdb

ARCHIVE_TIMEOUT = 3  # seconds: short, so that the SIGKILL test waits little


class Lab:
    def __init__(self, root: Path):
        from dmdb.config import Settings
        from dmdb.server.embedded import EmbeddedServer

        self.root = root
        self.home = root / "home"
        self.server = EmbeddedServer(self.home, fast=True)
        self.settings = Settings(home=self.home)
        self.n = 0

    @property
    def url(self) -> str:
        info = self.server.info()
        return f"postgresql://postgres@/dmdb?host={info.socket_dir}&port={info.port}"

    @property
    def repo(self):
        from dmdb.backup.repository import Repository

        return Repository.for_settings(self.settings)

    def env(self) -> dict:
        return {"DMDB_HOME": str(self.home)}

    def new_dir(self) -> Path:
        self.n += 1
        return self.root / f"restore-{self.n}"


@pytest.fixture(scope="module")
def lab(embedded_only):
    from dmdb.backup import wal
    from dmdb.migrate import engine

    root = Path(tempfile.mkdtemp(prefix="dmdb-pitr-"))
    lab = Lab(root)
    lab.server.start()
    with psycopg.connect(lab.url, autocommit=True) as conn:
        engine.up(conn, engine.Project(REPO / "sql"), lock_wait=30)
    change = wal.wal_on(lab.settings, archive_timeout=f"{ARCHIVE_TIMEOUT}s")
    assert change.restarted and change.archiving.startswith("archived"), change
    try:
        yield lab
    finally:
        from dmdb.errors import DmdbError

        real, server_dir = lab.repo.real, lab.server.server_dir
        try:
            lab.server.destroy()
        except DmdbError:  # the SIGKILLed postmaster lingers as a zombie nobody reaps
            shutil.rmtree(server_dir, ignore_errors=True)
        shutil.rmtree(real, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def restored(lab: Lab, target, **kwargs):
    from dmdb.backup.restore import RestoredServer, restore_to

    into = lab.new_dir()
    result = restore_to(lab.repo, target, into, live_home=lab.home, **kwargs)
    try:
        yield result
    finally:
        RestoredServer(into, 0).destroy()


def _catalogue(conn) -> tuple[int, int]:
    user = conn.execute("INSERT INTO users (email, display_name) VALUES "
                        "('pitr@example.invalid', 'pitr') RETURNING user_id").fetchone()[0]
    concept = conn.execute("INSERT INTO concepts (code, name, category) VALUES "
                           "('pitr', 'pitr', 'road_rules') RETURNING concept_id").fetchone()[0]
    item = conn.execute("INSERT INTO content (concept_id, category, question) VALUES "
                        "(%s, 'road_rules', 'q') RETURNING content_id", (concept,)).fetchone()[0]
    return user, item


def _answer(conn, user: int, item: int, correct: bool = True) -> int:
    """One answer through record_answer, committed; its event id."""
    row = conn.execute("SELECT event_id FROM record_answer(%s, %s, %s, 4000)",
                       (user, item, correct)).fetchone()
    return row[0]


def _events(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT event_id FROM learning_events WHERE event_type = 'question_answered'")}


def _wait_archived(lab: Lab, conn) -> str:
    """Switch the segment out and wait until the archive has it."""
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + 60
    while not (lab.repo.wal_dir / segment).exists():
        assert time.monotonic() < deadline, f"{segment} was not archived"
        time.sleep(0.1)
    return segment


@pytest.fixture(scope="module")
def history(lab):
    """A full backup, batch 1, an incremental backup, batches 2 and 3, each batch noted
    (time, LSN, restore point), then batch 4 (after every target) archived."""
    from dmdb.backup import base, wal

    full = base.take(lab.settings)
    batches, notes = [], []
    with psycopg.connect(lab.url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        user, item = _catalogue(conn)
        for n in range(4):
            if n == 1:
                incremental = base.take(lab.settings, incremental=True)
            batches.append({_answer(conn, user, item, correct=i % 2 == 0) for i in range(5)})
            if n == 3:
                break
            when, lsn = conn.execute("SELECT now(), pg_current_wal_lsn()::text").fetchone()
            point = wal.mark(lab.settings, f"after-batch-{n + 1}").mark
            notes.append({"time": when.isoformat(), "lsn": lsn, "name": point.name})
        _wait_archived(lab, conn)
    return {"full": full.backup, "incremental": incremental.backup, "batches": batches,
            "notes": notes}


# ------------------------------------------------------------------------- the scenario


def test_backups_enter_the_catalog_with_their_wal_range(lab, history):
    full, inc = history["full"], history["incremental"]
    assert full.kind == "full" and inc.kind == "incremental" and inc.parent == full.name
    catalog = lab.repo.read()
    assert [b.name for b in catalog.backups] == [full.name, inc.name]
    for b in (full, inc):
        assert (lab.repo.backup_dir(b.name) / "backup_manifest").is_file()
        assert b.start_lsn <= b.stop_lsn and b.start_time <= b.stop_time
    assert [m.name for m in catalog.marks] == ["after-batch-1", "after-batch-2", "after-batch-3"]
    assert catalog.system_identifier
    # 0600/0700 all the way down, like today's dumps.
    for path in [lab.repo.real, *lab.repo.real.rglob("*")]:
        if path.is_symlink() or path.name.startswith("."):
            continue
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize("kind", ["time", "lsn", "name"])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_restore_to_a_target_holds_exactly_what_was_committed_before_it(lab, history, kind,
                                                                        batch):
    note = history["notes"][batch - 1]
    before = set().union(*history["batches"][:batch])
    with restored(lab, note[kind]) as result:
        assert result.started and result.url
        # The running server was not touched: the live database still has every batch.
        assert _events(result.url) == before
    # Batch 1's targets predate the incremental: the full backup alone serves them.
    chain = [history["full"].name] + ([history["incremental"].name] if batch >= 2 else [])
    assert result.plan.chain == chain


def test_restore_to_latest_replays_everything_archived(lab, history):
    with restored(lab, "latest") as result:
        assert _events(result.url) == set().union(*history["batches"])
        with psycopg.connect(result.url) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            # the copy never archives into the live server's repository
            assert conn.execute("SHOW archive_mode").fetchone()[0] == "off"
    assert _events(lab.url) == set().union(*history["batches"])


def test_a_target_outside_the_archive_is_refused_naming_the_range(lab, history):
    from dmdb.backup.restore import restore_to
    from dmdb.errors import ConfigError

    for target in ("2001-01-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00", "FF/0"):
        with pytest.raises(ConfigError) as err:
            restore_to(lab.repo, target, lab.new_dir(), live_home=lab.home)
        assert "the archive restores from" in str(err.value)
        assert history["full"].name in str(err.value)
    # Through the CLI: one line, exit 2, nothing created.
    into = lab.new_dir()
    done = run_dmdb(["restore", "--to", "2001-01-01T00:00:00Z", "--into-dir", into], lab.env())
    assert done.returncode == 2 and "archive restores from" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not into.exists()


def test_no_start_prepares_a_cluster_that_recovers_when_started(lab, history):
    note = history["notes"][1]
    with restored(lab, note["name"], start=False) as result:
        data = Path(result.data_dir)
        assert not result.started and (data / "recovery.signal").exists()
        conf = (data / "postgresql.auto.conf").read_text()
        assert "recovery_target_name = 'after-batch-2'" in conf
        assert "archive_mode = 'off'" in conf
        started = run_dmdb(["server", "start", "--json"], {"DMDB_HOME": result.into_dir})
        assert started.returncode == 0, started.stderr
        url = json.loads(started.stdout)["url"]
        deadline = time.monotonic() + 60
        while True:  # promotion follows the end of recovery
            with psycopg.connect(url) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert _events(url) == set().union(*history["batches"][:2])


def test_a_restored_server_that_dies_in_recovery_is_reported_not_waited_for(lab, history):
    from dmdb.backup.restore import RestoredServer, _start_and_wait, free_port
    from dmdb.errors import DmdbError

    with restored(lab, "latest", start=False) as result:
        with open(Path(result.data_dir) / "postgresql.auto.conf", "a") as conf:
            conf.write("recovery_target_xid = '4000000000'\n")  # never reached
        server = RestoredServer(Path(result.into_dir), free_port())
        with pytest.raises(DmdbError, match="stopped during recovery: .*FATAL:  recovery "
                           "ended before configured recovery target was reached"):
            _start_and_wait(server, result, None, "dmdb")


def test_a_learner_erased_after_the_target_is_erased_again_in_the_copy(lab, history):
    """A point-in-time copy from before an erasure is handed over without the learner
    (issue 27): the live ledger's later erasures are re-applied to it."""
    from datetime import datetime

    from dmdb.backup import wal
    from dmdb.backup.erasures import reapply_to
    from dmdb.privacy.erase import erase
    from dmdb.privacy.inventory import inventory

    with psycopg.connect(lab.url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        learner = conn.execute("INSERT INTO users (email, display_name) VALUES "
                               "('gone@example.invalid', 'gone') RETURNING user_id").fetchone()[0]
        item = conn.execute("SELECT min(content_id) FROM content").fetchone()[0]
        _answer(conn, learner, item)
        point = wal.mark(lab.settings, "before-erasure").mark
        _wait_archived(lab, conn)
        erase(conn, learner, inventory(conn), vacuum=False)
    with restored(lab, point.name) as result:
        with psycopg.connect(result.url) as copy:
            assert copy.execute("SELECT count(*) FROM users WHERE user_id = %s",
                                (learner,)).fetchone()[0] == 1
        done = reapply_to(lab.settings, result.url,
                          datetime.fromisoformat(result.last_transaction_time))
        assert done.learners == [learner] and done.note is None
        with psycopg.connect(result.url) as copy:
            for table in ("users", "learning_events", "knowledge_states", "user_emails"):
                assert copy.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s",
                                    (learner,)).fetchone()[0] == 0
            assert copy.execute("SELECT count(*) FROM users").fetchone()[0] >= 1  # the others


def test_restore_check_passes_and_is_recorded(lab, history):
    before = lab.repo.read().checks
    plan = run_dmdb(["restore", "--check", "--dry-run", "--json"], lab.env())
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["chain"] == [history["full"].name, history["incremental"].name]
    assert "public.learning_events" in json.loads(plan.stdout)["tables"]
    assert lab.repo.read().checks == before  # the dry run changed nothing
    # a copy a killed check left running is stopped and removed by the next check
    from dmdb.backup.restore import RestoredServer, restore_to

    lab.repo.scratch_dir.mkdir(exist_ok=True)
    restore_to(lab.repo, "latest", lab.repo.scratch_dir / "check-killed", live_home=lab.home)
    done = run_dmdb(["restore", "--check", "--json"], lab.env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["problems"] == []
    tables = {t["table"]: t for t in result["tables"]}
    assert tables["public.learning_events"]["restored"] >= 20
    assert all(t["ok"] for t in tables.values())
    assert result["indexes_checked"] > 0 and result["tables_checked"] > 0
    listing = json.loads(run_dmdb(["backup", "list", "--json"], lab.env()).stdout)
    assert listing["last_check"]["ok"] is True and listing["last_check"]["seconds"] > 0
    assert not any(lab.repo.scratch_dir.iterdir())  # the scratch copies are gone
    assert any("check-killed" in n for n in result["notes"])
    assert not RestoredServer(lab.repo.scratch_dir / "check-killed", 0).info().running


def _monitor(lab: Lab, *args) -> dict:
    done = run_dmdb(["monitor", "--json", "--only", "backup_age,restore_check,backup_wal",
                     *args], lab.env())
    assert done.returncode == 0, done.stderr
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_the_monitor_reads_the_repository(lab, history):
    checks = _monitor(lab)
    assert {n: c["status"] for n, c in checks.items()} == {
        "backup_age": "OK", "restore_check": "OK", "backup_wal": "OK"}, checks
    assert checks["backup_age"]["metrics"]["backups"] == 2
    assert checks["backup_wal"]["metrics"]["segments_behind"] == 0
    old = _monitor(lab, "--backup-age-warn", "0", "--backup-age-critical", "0",
                   "--restore-check-warn", "0")
    assert old["backup_age"]["status"] == "CRITICAL"
    assert old["restore_check"]["status"] == "WARNING"
    prom = run_dmdb(["monitor", "--format", "prometheus", "--only", "backup_age,backup_wal"],
                    lab.env()).stdout
    assert "dmdb_backup_newest_age_seconds " in prom
    assert 'dmdb_check_status{check="backup_wal"} 0' in prom
    check = run_dmdb(["monitor", "--check", "--only", "backup_age", "--backup-age-warn", "0"],
                     lab.env())
    assert check.returncode == 1 and check.stdout.startswith("WARNING: backup_age: ")


def test_verify_passes_then_names_a_corrupt_wal_segment(lab, history):
    from dmdb.backup.walnames import parse_lsn, segment_of

    done = run_dmdb(["backup", "verify", "--json"], lab.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    lsn = parse_lsn(history["notes"][1]["lsn"])
    segment = segment_of(1, lsn)
    path = lab.repo.wal_dir / segment
    original = path.read_bytes()
    offset = lsn % (16 * 1024 * 1024) - 64  # inside batch 2's last records
    data = bytearray(original)
    for i in range(offset, offset + 32):
        data[i] ^= 0xFF
    try:
        path.write_bytes(bytes(data))
        bad = run_dmdb(["backup", "verify"], lab.env())
        assert bad.returncode == 1
        assert f"WAL segment {segment} is corrupt" in bad.stdout
    finally:
        path.write_bytes(original)
    assert run_dmdb(["backup", "verify"], lab.env()).returncode == 0


def test_verify_names_a_missing_wal_segment(lab, history):
    from dmdb.backup.walnames import parse_lsn, segment_of

    segment = segment_of(1, parse_lsn(history["notes"][0]["lsn"]))
    path = lab.repo.wal_dir / segment
    aside = lab.root / segment
    shutil.move(path, aside)
    try:
        bad = run_dmdb(["backup", "verify"], lab.env())
        assert bad.returncode == 1 and f"WAL segment {segment} is missing" in bad.stdout
    finally:
        shutil.move(aside, path)


def test_verify_names_a_corrupt_data_file(lab, history):
    name = history["incremental"].name
    path = lab.repo.backup_dir(name) / "base.tar.gz"
    original = path.read_bytes()
    data = bytearray(original)
    middle = len(data) // 2
    for i in range(middle, middle + 64):
        data[i] ^= 0xFF
    try:
        path.write_bytes(bytes(data))
        bad = run_dmdb(["backup", "verify", "--json"], lab.env())
        assert bad.returncode == 1
        result = json.loads(bad.stdout)
        problems = [p for p in result["problems"] if p.startswith(f"backup {name}:")]
        assert problems and any("base.tar.gz" in p for p in problems), result["problems"]
        assert [b["ok"] for b in result["backups"]] == [True, False]
        # The monitor says so until a verify passes again.
        failed = _monitor(lab)["restore_check"]
        assert failed["status"] == "CRITICAL" and "backup verify` FAILED" in failed["summary"]
    finally:
        path.write_bytes(original)
    assert run_dmdb(["backup", "verify"], lab.env()).returncode == 0
    assert _monitor(lab)["restore_check"]["status"] == "OK"


def _pg_basebackups() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"pg_basebackup" in cmd and b".partial-" in cmd:
                found.append(int(pid))
    return found


def test_a_sigkilled_base_backup_leaves_nothing_in_the_catalog(lab, history):
    before = [b.name for b in lab.repo.read().backups]
    with psycopg.connect(lab.url, autocommit=True) as conn:  # something to take a while
        conn.execute("CREATE TABLE ballast AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t "
                     "FROM generate_series(1, 400000) g")
    proc = subprocess.Popen([sys.executable, "-m", "dmdb", "backup", "base"],
                            env=_dmdb_env(lab.env()), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".partial-") and (p / "base.tar.gz").exists()
                      for p in lab.repo.base_dir.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        with psycopg.connect(lab.url, autocommit=True) as conn:
            conn.execute("DROP TABLE ballast")
    assert [b.name for b in lab.repo.read().backups] == before
    deadline = time.monotonic() + 10
    while _pg_basebackups():  # it dies with dmdb (PR_SET_PDEATHSIG)
        assert time.monotonic() < deadline, "pg_basebackup outlived dmdb"
        time.sleep(0.1)
    # The next one works, and clears what the killed one left.
    done = run_dmdb(["backup", "base", "--json"], lab.env(), timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["cleared"] and all(c.startswith(".partial-") for c in result["cleared"])
    after = [b.name for b in lab.repo.read().backups]
    assert after == [*before, result["backup"]["name"]]
    assert not any(p.name.startswith(".partial-") for p in lab.repo.base_dir.iterdir())


def test_expire_keeps_what_kept_backups_need(lab, history):
    from dmdb.backup.walnames import SEGMENT, parse_lsn, segment_of
    from dmdb.server.embedded import pg_tool

    catalog = lab.repo.read()
    newest = max(catalog.backups, key=lambda b: parse_lsn(b.stop_lsn))
    assert newest.kind == "full" and len(catalog.backups) == 3
    plan = json.loads(run_dmdb(["backup", "expire", "--keep", "1", "--dry-run", "--json"],
                               lab.env()).stdout)
    assert plan["dry_run"] and plan["keep"] == [newest.name]
    assert plan["remove"] == [history["full"].name, history["incremental"].name]
    cut = segment_of(newest.timeline, parse_lsn(newest.start_lsn))
    assert plan["wal_before"] == cut
    # pg_archivecleanup (with -b, backup history files too) would remove the same files.
    listed = subprocess.run([str(pg_tool("pg_archivecleanup")), "-n", "-b",
                             str(lab.repo.wal_dir), cut], capture_output=True, text=True)
    assert sorted(Path(p).name for p in listed.stdout.split()) == plan["wal_remove"]
    assert len(lab.repo.read().backups) == 3  # the dry run changed nothing
    # keep 2 fulls: the incremental stays with its full
    two = json.loads(run_dmdb(["backup", "expire", "--keep", "2", "--dry-run", "--json"],
                              lab.env()).stdout)
    assert two["remove"] == []

    done = run_dmdb(["backup", "expire", "--keep", "1"], lab.env())
    assert done.returncode == 0, done.stderr
    assert "removed 2 backups" in done.stdout and "oldest restorable point" in done.stdout
    assert [b.name for b in lab.repo.read().backups] == [newest.name]
    assert lab.repo.read().marks == []  # before the oldest restorable point: unreachable
    left = sorted(p.name for p in lab.repo.wal_dir.iterdir() if SEGMENT.fullmatch(p.name))
    assert left[0] >= cut
    assert run_dmdb(["backup", "verify"], lab.env()).returncode == 0
    with restored(lab, "latest") as result:
        assert _events(result.url) == set().union(*history["batches"])


def test_wal_lost_after_a_sigkilled_server_is_at_most_archive_timeout(lab, history):
    """Answers committed more than archive_timeout (plus the archiver's copy) before the
    server died are in the restore; what is in it is a prefix of what was committed."""
    committed: list[tuple[int, float]] = []
    stop = threading.Event()

    def writer():
        with psycopg.connect(lab.url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            user, item = conn.execute(
                "SELECT u.user_id, c.content_id FROM users u, content c "
                "WHERE u.email = 'pitr@example.invalid' LIMIT 1").fetchone()
            while not stop.is_set():
                try:
                    event = _answer(conn, user, item)
                except psycopg.Error:
                    return
                committed.append((event, time.monotonic()))
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(3 * ARCHIVE_TIMEOUT)
    pid = lab.server.info().pid
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stop.set()
    thread.join(30)
    assert committed
    with restored(lab, "latest") as result:
        present = _events(result.url)
    new = [e for e, _ in committed]
    kept = [e for e in new if e in present]
    assert kept == new[:len(kept)], "the restore is not a prefix of the commits"
    # archive_timeout, and as much again for the checkpointer's wake-up and the copy
    bound = killed_at - 2 * ARCHIVE_TIMEOUT
    old_enough = [e for e, at in committed if at < bound]
    assert old_enough and set(old_enough) <= present
