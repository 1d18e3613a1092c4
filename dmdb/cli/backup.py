"""dmdb backup [base|list|mark|verify|expire|wal|barman-config] / restore.

`dmdb backup --out FILE` (no subcommand) is the logical dump it always was; the
subcommands are the physical side: base backups, WAL archiving, point-in-time restore.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from dmdb.render import console, print_json, show_progress

JSON = typer.Option(False, "--json", help="JSON output.")
REPO = typer.Option(None, "--repo", metavar="DIR",
                    help="Backup repository (default: DMDB_BACKUP_REPO / backup_repo, else "
                    "<home>/backups).")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan; change nothing.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")

backup_app = typer.Typer(
    name="backup", invoke_without_command=True,
    help="Backups: `dmdb backup --out FILE` writes a logical dump (pg_dump -Fc); the "
    "subcommands keep physical base backups and archived WAL in a repository, for "
    "point-in-time restores (`dmdb restore --to`). docs/backup.md.")
wal_app = typer.Typer(name="wal", no_args_is_help=True,
                      help="Continuous WAL archiving into the backup repository.")


@contextmanager
def _bar(enabled: bool, what: str):
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=console(), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(*args) -> None:
            if len(args) == 3:  # (stage, done, total)
                stage, done, total = args
                bar.update(task, description=stage, completed=done, total=total)
            else:  # (done kB, total kB)
                done, total = args
                bar.update(task, completed=done * 1024, total=total * 1024)

        yield update


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


# --------------------------------------------------------------------------- logical


@backup_app.callback()
def backup_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                       help="Dump file (default dmdb-<db>-<UTC time>.dump)."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing --out file (once the new dump is "
                               "complete); refused without it."),
    as_json: bool = JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Print nothing on success (cron); errors still go to "
                               "stderr."),
):
    """Write a pg_dump custom-format backup of the database (bytes written so far shown on
    a terminal), or (subcommands) keep physical backups and archived WAL for
    point-in-time restores.

    Example: dmdb backup --out nightly.dump --quiet
    """
    if ctx.invoked_subcommand is not None:
        if out is not None or as_json or force or quiet:
            from dmdb.errors import ConfigError

            raise ConfigError(f"--out/--json/--force/--quiet before `{ctx.invoked_subcommand}` "
                              "belong to the logical dump; put the subcommand's options after it")
        return
    from dmdb.backup.logical import backup
    from dmdb.render import activity, human_bytes

    shown = show_progress(quiet or as_json)
    with activity("pg_dump …", shown) as status:
        result = backup(ctx.obj.settings(), out, force=force, progress=(
            (lambda size: status.update(f"pg_dump: {human_bytes(size)} written"))
            if shown else None))
    if quiet and not as_json:
        return
    if as_json:
        print_json(result.to_dict())
    else:
        console().print(f"Wrote {result.file} ({result.bytes:,} bytes, {result.seconds:.1f}s, "
                        f"server {result.server_version}, pg_dump {result.pg_dump_version})")


# -------------------------------------------------------------------------- physical


@backup_app.command("base")
def base_cmd(
    ctx: typer.Context,
    repo: Path | None = REPO,
    incremental: bool = typer.Option(
        False, "--incremental",
        help="Only what changed since the newest backup of the repository (PostgreSQL "
        "17+, summarize_wal = on)."),
    label: str | None = typer.Option(None, "--label", help="Backup label (default: its name)."),
    compress: str = typer.Option("gzip:1", "--compress", metavar="METHOD",
                                 help="gzip:1 .. gzip:9, gzip (level 6) or none [gzip:1]."),
    as_json: bool = JSON, dry_run: bool = DRY_RUN, quiet: bool = QUIET,
):
    """Take a base backup (pg_basebackup: tar, gzip, manifest, its WAL streamed in) into
    the repository; it enters the catalog only once complete.

    Example: dmdb backup base --incremental
    """
    from dmdb.backup.base import take
    from dmdb.render import human_bytes

    with _bar(show_progress(quiet or as_json or dry_run), "base backup") as progress:
        result = take(ctx.obj.settings(), repo, incremental=incremental, label=label,
                      dry_run=dry_run, compression=compress, progress=progress)
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    if dry_run:
        out.print(f"-- dry run: would take a {result.kind} backup into {result.repo}"
                  + (f" (on {result.parent})" if result.parent else "") + "; nothing was changed")
        out.print(" ".join(result.command))
        return
    for name in result.cleared:
        out.print(f"removed {name}, left by a backup that did not finish")
    b = result.backup
    out.print(f"Backup {b.name} ({b.kind}{', on ' + b.parent if b.parent else ''}): "
              f"{human_bytes(b.bytes)} in {b.seconds:.1f}s, WAL {b.start_lsn} .. {b.stop_lsn} "
              f"(timeline {b.timeline}), consistent from {_when(b.stop_time)}; in {result.repo}")


@backup_app.command("list")
def list_cmd(ctx: typer.Context, repo: Path | None = REPO, as_json: bool = JSON):
    """The repository's base backups, restore points, WAL and last checks; reaches no server.

    Example: dmdb backup list --json
    """
    from dmdb.backup.listing import listing
    from dmdb.backup.repository import Repository
    from dmdb.render import human_bytes, plain_table

    found = listing(Repository.for_settings(ctx.obj.settings(), repo))
    if as_json:
        print_json(found.to_dict())
        return
    if not found.exists:
        console().print(f"no backup repository at {found.repo} (`dmdb backup base` makes one)")
        return
    rows = [(b.name, b.kind, b.parent or "", b.start_lsn, b.stop_lsn, _when(b.stop_time),
             human_bytes(b.bytes), f"{b.seconds:.1f}s") for b in found.backups]
    text = plain_table(f"Base backups in {found.repo}",
                       ("name", "kind", "on", "start LSN", "stop LSN", "consistent from",
                        "size", "took"), rows)
    if found.marks:
        text += "\n" + plain_table("Restore points", ("name", "LSN", "time"),
                                   [(m.name, m.lsn, _when(m.time)) for m in found.marks])
    text += (f"\nWAL: {found.wal_segments} segments ({human_bytes(found.wal_bytes)})"
             + (f", {found.wal_first} .. {found.wal_last}" if found.wal_first else "") + "\n")
    v, c = found.last_verification, found.last_check
    text += ("verify: " + (f"{'OK' if v['ok'] else 'FAILED'} at {_when(v['time'])}" if v
                           else "never") + "\n")
    text += ("restore --check: " + (f"{'OK' if c['ok'] else 'FAILED'} at {_when(c['time'])} "
                                    f"({c['seconds']:.0f}s)" if c else "never") + "\n")
    typer.echo(text, nl=False)


@backup_app.command("mark")
def mark_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Restore point name (for `restore --to NAME`)."),
    repo: Path | None = REPO,
    switch: bool = typer.Option(False, "--switch",
                                help="Also switch the WAL segment, so the point is archived now."),
    as_json: bool = JSON, dry_run: bool = DRY_RUN,
):
    """Create a named restore point (pg_create_restore_point) and record it in the catalog.

    Example: dmdb backup mark before-migration-0012 --switch
    """
    from dmdb.backup.wal import mark

    result = mark(ctx.obj.settings(), name, repo, switch=switch, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
    elif dry_run:
        console().print(f"-- dry run: would create restore point {name!r} and record it in "
                        f"{result.repo}; nothing was changed")
    else:
        m = result.mark
        console().print(f"Restore point {m.name} at {m.lsn} ({_when(m.time)})"
                        + (f"; switched out {result.switched}" if result.switched else ""))


@backup_app.command("verify")
def verify_cmd(ctx: typer.Context, repo: Path | None = REPO, as_json: bool = JSON):
    """Check every kept backup (pg_verifybackup) and the WAL from each backup's start to the
    newest archived segment (gaps, and pg_waldump over every record); exit 1 naming any
    missing or corrupt file.

    Example: dmdb backup verify
    """
    from dmdb.backup.repository import Repository
    from dmdb.backup.verify import verify

    result = verify(Repository.for_settings(ctx.obj.settings(), repo))
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        for line in result.problems:
            out.print(f"PROBLEM: {line}")
        w = result.wal
        out.print(f"{'OK' if result.ok else 'FAILED'}: {len(result.backups)} backups, "
                  f"{w.segments} WAL segments"
                  + (f" ({w.first} .. {w.last})" if w.first else "")
                  + f" checked in {result.seconds:.1f}s")
    if not result.ok:
        raise typer.Exit(1)


@backup_app.command("expire")
def expire_cmd(
    ctx: typer.Context,
    keep: int | None = typer.Option(None, "--keep", metavar="N",
                                    help="Keep the N newest full backups (and their incrementals)."),
    window: float | None = typer.Option(None, "--window", metavar="DAYS",
                                        help="Keep what restores any moment of the last DAYS days."),
    repo: Path | None = REPO, as_json: bool = JSON, dry_run: bool = DRY_RUN,
):
    """Delete base backups and WAL no kept backup needs; say what went and the oldest
    moment still restorable.

    Example: dmdb backup expire --keep 2 --window 7 --dry-run
    """
    from dmdb.backup.expire import expire
    from dmdb.backup.repository import Repository
    from dmdb.render import human_bytes

    result = expire(Repository.for_settings(ctx.obj.settings(), repo), keep=keep,
                    window_days=window, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
        return
    p, out = result.plan, console()
    verb = "would remove" if dry_run else "removed"
    if dry_run:
        out.print("-- dry run: nothing was changed")
    out.print(f"{verb} {len(p.remove)} backups" + (f" ({', '.join(p.remove)})" if p.remove else "")
              + f", {len(p.wal_remove)} WAL files"
              + (f" (before {p.wal_before})" if p.wal_remove else "")
              + (f", {len(p.marks_remove)} restore points" if p.marks_remove else "")
              + f": {human_bytes(result.bytes_freed)}")
    out.print(f"kept {len(p.keep)} backups: {', '.join(p.keep) or 'none'}")
    if p.oldest_restorable:
        o = p.oldest_restorable
        out.print(f"oldest restorable point: {_when(o['time'])} (LSN {o['lsn']}, backup "
                  f"{o['backup']})")


@backup_app.command("barman-config")
def barman_cmd(
    ctx: typer.Context,
    name: str = typer.Option("dmdb", "--name", help="Barman's server name."),
    retention: str = typer.Option("RECOVERY WINDOW OF 7 DAYS", "--retention",
                                  help="Barman retention_policy."),
    streaming_user: str | None = typer.Option(
        None, "--streaming-user",
        help="The replication role Barman streams with (default: the configured user)."),
    out_file: Path | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                            help="Write here (0600) instead of stdout."),
    as_json: bool = JSON,
):
    """Render a Barman server configuration for the primary (backup_method = postgres,
    streaming WAL through a slot): the step up from the built-in repository.

    Example: dmdb backup barman-config --out /etc/barman.d/dmdb.conf
    """
    from dmdb.backup.barman import render
    from dmdb.files import write_private

    result = render(ctx.obj.settings(), name=name, retention=retention,
                    streaming_user=streaming_user)
    if out_file is not None:
        write_private(out_file, result.text)
    if as_json:
        print_json(result.to_dict())
    elif out_file is not None:
        console().print(f"Wrote {out_file}; then: barman check {result.name}")
    else:
        typer.echo(result.text, nl=False)


# ------------------------------------------------------------------------------- WAL


@wal_app.command("on")
def wal_on_cmd(
    ctx: typer.Context,
    archive_timeout: str = typer.Option(
        "60s", "--archive-timeout", metavar="DURATION",
        help="Longest a committed change waits to be archived (a segment is switched out "
        "after this much time with activity): what a lost disk can take with it; "
        "a duration: 30s, 2min; a bare number is seconds."),
    repo: Path | None = REPO, as_json: bool = JSON, dry_run: bool = DRY_RUN,
):
    """Archive the embedded server's WAL into the repository (basic_archive); restarts the
    server when archive_mode changes, and proves a segment arrives.

    Example: dmdb backup wal on --archive-timeout 30s
    """
    from dmdb.backup.wal import wal_on

    result = wal_on(ctx.obj.settings(), repo, archive_timeout=archive_timeout, dry_run=dry_run)
    _wal_change(result, as_json)
    if result.archiving and result.archiving.startswith("FAILING"):
        raise typer.Exit(1)


@wal_app.command("off")
def wal_off_cmd(ctx: typer.Context, repo: Path | None = REPO, as_json: bool = JSON,
                dry_run: bool = DRY_RUN):
    """Stop archiving the embedded server's WAL (restarts it when archive_mode changes).

    Example: dmdb backup wal off
    """
    from dmdb.backup.wal import wal_off

    _wal_change(wal_off(ctx.obj.settings(), repo, dry_run=dry_run), as_json)


def _wal_change(result, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    if result.dry_run:
        out.print("-- dry run: nothing was changed")
        for statement in result.statements:
            out.print(statement + ";")
        if result.restart:
            out.print("-- then a restart of the embedded server (archive_mode needs one)")
        return
    for statement in result.statements:
        out.print(statement + ";")
    if result.restarted:
        out.print("restarted the embedded server: archive_mode changes only with a restart")
    for name in result.cleared:
        out.print(f"removed {name}, a temporary file of an archive copy cut short")
    if result.archiving:
        out.print(result.archiving)
    out.print(f"WAL archiving {result.action} (repository {result.repo})")


@wal_app.command("status")
def wal_status_cmd(ctx: typer.Context, repo: Path | None = REPO, as_json: bool = JSON):
    """Archive settings, the archiver's counters, the newest segment in the repository and
    how far behind the server's current one it is.

    Example: dmdb backup wal status --json
    """
    from dmdb.backup.wal import status

    s = status(ctx.obj.settings(), repo)
    if as_json:
        print_json(s.to_dict())
        return
    out = console()
    out.print(f"archive_mode {s.archive_mode}, library {s.archive_library or '-'}, directory "
              f"{s.archive_directory or '-'}, archive_timeout {s.archive_timeout_seconds}s, "
              f"summarize_wal {s.summarize_wal}")
    out.print(f"archived {s.archived_count or 0:,}, failed {s.failed_count or 0:,}"
              + (f", last {s.last_archived_wal} at {_when(str(s.last_archived_time))}"
                 if s.last_archived_wal else "")
              + (f"; FAILING since {s.last_failed_wal} at {_when(str(s.last_failed_time))}"
                 if s.failing else ""))
    out.print(f"repository {s.repo}: newest {s.newest_in_repository or 'none'}"
              + (f", server writes {s.current_wal}" if s.current_wal else "")
              + (f" ({s.segments_behind} complete segments not archived yet)"
                 if s.segments_behind else ""))
    for note in s.notes:
        out.print(f"note: {note}")
    if s.failing:
        raise typer.Exit(1)


@wal_app.command("service")
def wal_service_cmd(
    ctx: typer.Context,
    repo: Path | None = REPO,
    user: str | None = typer.Option(None, "--user", help="User= of the unit."),
    env_file: str | None = typer.Option(None, "--env-file", metavar="PATH",
                                        help="EnvironmentFile= (PGPASSWORD=...)."),
    pg_receivewal: str | None = typer.Option(None, "--pg-receivewal", metavar="PATH",
                                             help="pg_receivewal to run (default: found)."),
    out_dir: Path | None = typer.Option(None, "--out-dir", metavar="DIR",
                                           help="Write the unit here instead of stdout."),
    as_json: bool = JSON,
):
    """Render the systemd unit that streams a remote server's WAL into the repository
    (pg_receivewal through replication slot dmdb_wal).

    Example: dmdb backup wal service --user postgres --env-file /etc/dmdb/wal.env
    """
    from dmdb.backup.wal import render_service

    files = render_service(ctx.obj.settings(), repo, user=user, env_file=env_file,
                           pg_receivewal=pg_receivewal)
    if out_dir is not None:
        from dmdb.files import private_dir, write_private

        private_dir(out_dir)
        write_private(out_dir / files.service_name, files.service, mode=0o644)
    if as_json:
        print_json(files.to_dict())
    elif out_dir is not None:
        console().print(f"Wrote {out_dir / files.service_name}")
    else:
        typer.echo(files.service, nl=False)


backup_app.add_typer(wal_app, name="wal")


# ---------------------------------------------------------------------------- restore


def restore_cmd(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="A file written by `dmdb backup --out`."),
    into: str | None = typer.Option(None, "--into", metavar="DB",
                                       help="Target database (created if missing; must be "
                                       "empty). Default: the configured database."),
    to: str | None = typer.Option(
        None, "--to", metavar="TIME|LSN|NAME|latest",
        help="Point-in-time restore from the repository: an ISO time (no offset: this "
        "machine's zone), an LSN, a restore point of `backup mark`, or latest."),
    into_dir: Path | None = typer.Option(None, "--into-dir", metavar="DIR",
                                            help="With --to: a new directory for the restored "
                                            "cluster (laid out as a dmdb home)."),
    no_start: bool = typer.Option(False, "--no-start",
                                  help="With --to: prepare the cluster, do not start it."),
    check: bool = typer.Option(
        False, "--check",
        help="Restore the newest backup to a fresh restore point in a scratch directory, run "
        "amcheck and compare row counts with the live server, record the result."),
    keep: bool = typer.Option(False, "--keep", help="With --check: leave the copy running."),
    archive_wait: float = typer.Option(120.0, "--archive-wait", metavar="SECONDS",
                                       help="With --check: how long to wait for the restore "
                                       "point's segment to be archived."),
    repo: Path | None = REPO,
    as_json: bool = JSON,
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Check the archive and the target; change nothing."),
    no_owner: bool = typer.Option(False, "--no-owner",
                                  help="Own every restored object as the connected role "
                                  "(a dump from another server, or another owner)."),
    quiet: bool = QUIET,
):
    """Restore a logical backup into an empty (or new) database, in one transaction; or
    (--to) a point in time from the backup repository into a new cluster; or (--check)
    prove the newest backup restores.

    Extensions of the dump this role may not create (pg_stat_statements without
    superuser) are left out and named. The running server is never touched by --to.

    Examples: dmdb restore nightly.dump --into dmdb_copy;
    dmdb restore --to 2026-12-07T16:59:00+00:00 --into-dir /srv/restore
    """
    from dmdb.errors import ConfigError

    if check:
        if file is not None or to is not None or into_dir is not None:
            raise ConfigError("--check restores into its own scratch directory; it takes no "
                              "FILE, --to or --into-dir")
        _restore_check(ctx, repo, keep, archive_wait, as_json, quiet, dry_run)
        return
    if to is not None or into_dir is not None:
        if file is not None or into is not None:
            raise ConfigError("--to restores the backup repository into a new cluster; FILE "
                              "and --into belong to a logical dump")
        if to is None or into_dir is None:
            raise ConfigError("a point-in-time restore needs --to TIME|LSN|NAME|latest and "
                              "--into-dir DIR")
        _restore_pitr(ctx, to, into_dir, repo, no_start, dry_run, as_json, quiet)
        return
    if file is None:
        raise ConfigError("give a dump FILE (logical restore), --to with --into-dir "
                          "(point in time), or --check")
    from dmdb.backup.logical import restore
    from dmdb.cli.common import target_callback
    from dmdb.render import warning_line

    result = restore(ctx.obj.settings(), file, into, dry_run=dry_run, no_owner=no_owner,
                     on_target=target_callback())
    for note in result.left_out:
        warning_line(f"left out: {note}")
    if result.erasures_reapplied:
        warning_line(f"{len(result.erasures_reapplied)} learner(s) erased since the dump was "
                     "taken were erased again in the restored copy (privacy ledger)")
    if as_json:
        print_json(result.to_dict())
    elif dry_run:
        console().print(f"-- dry run: would restore {result.entries} archive entries from "
                        f"{result.file} into {result.database}"
                        f"{' (to be created)' if result.created else ' (empty)'}; "
                        "nothing was changed")
    else:
        console().print(f"Restored {result.file} into {result.database}"
                        f"{' (created)' if result.created else ''} in {result.seconds:.1f}s")


def _restore_pitr(ctx, to, into_dir, repo, no_start, dry_run, as_json, quiet) -> None:
    from dmdb.backup.repository import Repository
    from dmdb.backup.restore import restore_to

    settings = ctx.obj.settings()
    with _bar(show_progress(quiet or as_json or dry_run), "restore") as progress:
        result = restore_to(Repository.for_settings(settings, repo), to, into_dir,
                            start=not no_start, dry_run=dry_run, live_home=settings.home,
                            progress=progress, dbname=settings.dbname)
    erased = None
    if result.started and result.url and result.last_transaction_time:
        from datetime import datetime

        from dmdb.backup.erasures import reapply_to
        from dmdb.render import warning_line

        erased = reapply_to(settings, result.url,
                            datetime.fromisoformat(result.last_transaction_time))
        if erased.note:
            warning_line(erased.note)
        elif erased.learners:
            warning_line(f"{len(erased.learners)} learner(s) erased after the copy's last "
                         "transaction were erased again in it (privacy ledger)")
    if as_json:
        data = result.to_dict()
        data["erasures_reapplied"] = erased.learners if erased else []
        print_json(data)
        return
    p, out = result.plan, console()
    where = (f"{_when(p.oldest['time'])} .. "
             + (_when(p.newest['time']) if p.newest.get("time") else f"LSN {p.newest['lsn']}"))
    if dry_run:
        out.print(f"-- dry run: would restore {' + '.join(p.chain)} into {result.into_dir} and "
                  f"replay WAL {p.wal_from} .. {p.wal_to or p.wal_from} to {p.target.text} "
                  f"(archive: {where}); nothing was changed")
        for key, value in p.recovery_settings.items():
            out.print(f"{key} = {value}")
        return
    out.print(f"Restored {' + '.join(p.chain)} into {result.into_dir} (target {p.target.text}; "
              f"archive: {where}) in {result.seconds:.1f}s")
    if result.started:
        out.print(f"replayed to {result.replayed_to_lsn}, last transaction at "
                  f"{_when(result.last_transaction_time)}; promoted and running at {result.url}")
        out.print(f"stop it with: {result.stop_with}")
    else:
        out.print(f"not started; start it with: DMDB_HOME={result.into_dir} dmdb server start")


def _restore_check(ctx, repo, keep, archive_wait, as_json, quiet, dry_run) -> None:
    from dmdb.backup.check import restore_check

    with _bar(show_progress(quiet or as_json or dry_run), "restore check") as progress:
        result = restore_check(ctx.obj.settings(), repo, archive_wait=archive_wait, keep=keep,
                               dry_run=dry_run, progress=progress)
    if as_json:
        print_json(result.to_dict())
    elif dry_run:
        console().print(f"-- dry run: would create a restore point on {result.database}, "
                        f"restore {' + '.join(result.chain)} to it in {result.scratch}, run "
                        f"amcheck and count {len(result.tables)} tables; nothing was changed")
        return
    else:
        out = console()
        for line in result.problems:
            out.print(f"PROBLEM: {line}")
        rows = sum(t.restored or 0 for t in result.tables)
        out.print(f"{'OK' if result.ok else 'FAILED'}: {' + '.join(result.chain)} restored to "
                  f"{result.restore_point} ({result.lsn}) in {result.restore_seconds:.1f}s; "
                  f"{len(result.tables)} tables ({rows:,} rows) within the live counts, "
                  f"amcheck on {result.indexes_checked} indexes and {result.tables_checked} "
                  f"tables; {result.seconds:.1f}s in all")
        if result.kept:
            out.print(f"the copy still runs in {result.kept}")
        for note in result.notes:
            out.print(f"note: {note}")
    if not dry_run and not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.command("restore")(restore_cmd)
