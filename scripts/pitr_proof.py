"""Prove point-in-time recovery end to end through the `dmdb` command line (#25).

On a throw-away embedded server: WAL archiving on, a base backup, three batches of
answers through record_answer, each followed by its time, pg_current_wal_lsn() and a
named restore point (`dmdb backup mark`); then a restore to each of the nine targets must
hold exactly the answers committed before it; `restore --check` must pass; a corrupted
WAL segment and a corrupted data file in the repository must each make `backup verify`
fail naming it; and after a SIGKILL of the server, `restore --to latest` must hold every
answer committed more than archive_timeout (plus as much for the archiver) before it.
Prints one line per claim, PASS or FAIL; exits 1 on any FAIL. (tests/test_pitr.py holds
the same claims as pytest tests.)

    python scripts/pitr_proof.py [--archive-timeout 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAILED: list[str] = []


def claim(ok: bool, text: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {text}", flush=True)
    if not ok:
        FAILED.append(text)


def dmdb(env: dict, *args, check: bool = True) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL",
                                                                      "DMDB_"))}
    full.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "dmdb", *map(str, args)], env=full,
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    if check and done.returncode != 0:
        raise SystemExit(f"dmdb {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return done


def events(url: str) -> set[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT event_id FROM learning_events WHERE event_type = 'question_answered'")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive-timeout", type=int, default=3, metavar="SECONDS")
    args = parser.parse_args()

    import psycopg

    root = Path(tempfile.mkdtemp(prefix="dmdb-pitr-proof-"))
    env = {"DMDB_HOME": str(root / "home")}
    try:
        dmdb(env, "up", "--quiet")
        on = json.loads(dmdb(env, "backup", "wal", "on", "--archive-timeout",
                             f"{args.archive_timeout}s", "--json").stdout)
        claim(on["restarted"] and on["archiving"].startswith("archived"),
              f"wal on: restarted the server, {on['archiving']}")
        full = json.loads(dmdb(env, "backup", "base", "--json").stdout)["backup"]
        url = dmdb(env, "server", "url").stdout.strip()
        repo = Path(os.path.realpath(root / "home" / "backups"))
        batches, notes = [], []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            user = conn.execute("INSERT INTO users (email, display_name) VALUES "
                                "('proof@example.invalid', 'proof') RETURNING user_id").fetchone()[0]
            concept = conn.execute("INSERT INTO concepts (code, name, category) VALUES "
                                   "('proof', 'proof', 'road_rules') RETURNING concept_id").fetchone()[0]
            item = conn.execute("INSERT INTO content (concept_id, category, question) VALUES "
                                "(%s, 'road_rules', 'q') RETURNING content_id", (concept,)).fetchone()[0]

            def batch() -> set[int]:
                return {conn.execute("SELECT event_id FROM record_answer(%s, %s, %s, 4000)",
                                     (user, item, i % 2 == 0)).fetchone()[0] for i in range(5)}

            for n in (1, 2, 3):
                batches.append(batch())
                when, lsn = conn.execute("SELECT now(), pg_current_wal_lsn()::text").fetchone()
                dmdb(env, "backup", "mark", f"after-batch-{n}")
                notes.append({"time": when.isoformat(), "lsn": lsn, "name": f"after-batch-{n}"})
            batches.append(batch())  # after every target
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        while not (repo / "wal" / segment).exists():
            time.sleep(0.1)
        print(f"base backup {full['name']}; 3 batches of 5 answers noted, a 4th after them")

        for n, note in enumerate(notes, 1):
            want = set().union(*batches[:n])
            for kind in ("time", "lsn", "name"):
                into = root / f"restore-{n}-{kind}"
                done = json.loads(dmdb(env, "restore", "--to", note[kind], "--into-dir", into,
                                       "--json").stdout)
                got = events(done["url"])
                dmdb({"DMDB_HOME": str(into)}, "server", "stop")
                claim(got == want, f"restore --to {kind} after batch {n} ({note[kind]}): "
                      f"{len(got)} answers, exactly the {len(want)} committed before it")
                shutil.rmtree(into, ignore_errors=True)
        outside = dmdb(env, "restore", "--to", "2001-01-01T00:00:00Z", "--into-dir",
                       root / "never", check=False)
        claim(outside.returncode == 2 and "archive restores from" in outside.stderr,
              "a target outside the archive is refused, naming the range")

        check = dmdb(env, "restore", "--check", "--json", check=False)
        result = json.loads(check.stdout) if check.stdout else {}
        claim(check.returncode == 0 and result.get("ok"),
              f"restore --check: {result.get('restore_seconds')} s restore, "
              f"{len(result.get('tables', []))} tables within the live counts, amcheck on "
              f"{result.get('indexes_checked')} indexes")

        from dmdb.backup.walnames import parse_lsn, segment_of

        lsn = parse_lsn(notes[1]["lsn"])  # batch 2's last records are just before it
        victim = repo / "wal" / segment_of(1, lsn)
        lsn %= 16 * 1024 * 1024
        original = victim.read_bytes()
        data = bytearray(original)
        for i in range(lsn - 64, lsn - 32):
            data[i] ^= 0xFF
        victim.write_bytes(bytes(data))
        bad = dmdb(env, "backup", "verify", check=False)
        victim.write_bytes(original)
        claim(bad.returncode == 1 and f"WAL segment {victim.name} is corrupt" in bad.stdout,
              f"verify names the corrupted WAL segment {victim.name}")
        tar = repo / "base" / full["name"] / "base.tar.gz"
        original = tar.read_bytes()
        data = bytearray(original)
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
        tar.write_bytes(bytes(data))
        bad = dmdb(env, "backup", "verify", check=False)
        tar.write_bytes(original)
        claim(bad.returncode == 1 and f"backup {full['name']}:" in bad.stdout
              and "base.tar.gz" in bad.stdout, f"verify names the corrupted {tar.name} of "
              f"backup {full['name']}")
        claim(dmdb(env, "backup", "verify", check=False).returncode == 0,
              "verify passes again once the files are restored")

        committed: list[tuple[int, float]] = []
        stop = threading.Event()

        def writer() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = on")
                while not stop.is_set():
                    try:
                        committed.append((conn.execute(
                            "SELECT event_id FROM record_answer(%s, %s, true, 4000)",
                            (user, item)).fetchone()[0], time.monotonic()))
                    except psycopg.Error:
                        return
                    time.sleep(0.02)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(3 * args.archive_timeout)
        pid = json.loads(dmdb(env, "server", "status", "--json").stdout)["pid"]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        stop.set()
        thread.join(30)
        into = root / "after-kill"
        done = json.loads(dmdb(env, "restore", "--to", "latest", "--into-dir", into,
                               "--json").stdout)
        present = events(done["url"])
        dmdb({"DMDB_HOME": str(into)}, "server", "stop")
        order = [e for e, _ in committed]
        kept = [e for e in order if e in present]
        lost = [at for e, at in committed if e not in present]
        window = killed - min(lost) if lost else 0.0
        claim(kept == order[:len(kept)] and all(at >= killed - 2 * args.archive_timeout
                                                for at in lost),
              f"SIGKILL of the server: {len(order) - len(kept)} of {len(order)} answers lost, "
              f"all from the last {window:.1f} s (archive_timeout {args.archive_timeout} s)")
    finally:
        from dmdb.server.embedded import EmbeddedServer

        repo_real = Path(os.path.realpath(root / "home" / "backups"))
        server = EmbeddedServer(root / "home")
        server_dir = server.server_dir
        try:
            server.destroy()
        except Exception:  # noqa: BLE001 - the SIGKILLed postmaster may linger as a zombie
            shutil.rmtree(server_dir, ignore_errors=True)
        shutil.rmtree(repo_real, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    print("all claims hold" if not FAILED else f"{len(FAILED)} claims FAILED")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
