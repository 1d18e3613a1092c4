"""dmdb backup / restore."""

from __future__ import annotations

from pathlib import Path

import typer

from dmdb.render import console, print_json

JSON = typer.Option(False, "--json", help="JSON output.")


def register(app: typer.Typer) -> None:
    @app.command("backup")
    def backup_cmd(
        ctx: typer.Context,
        out: Path | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                           help="Dump file (default dmdb-<db>-<UTC time>.dump)."),
        force: bool = typer.Option(False, "--force",
                                   help="Replace an existing --out file (once the new dump is "
                                   "complete); refused without it."),
        as_json: bool = JSON,
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="Print nothing on success (cron); errors still go "
                                   "to stderr."),
    ):
        """Write a pg_dump custom-format backup of the database (bytes written so far shown
        on a terminal).

        Example: dmdb backup --out nightly.dump --quiet
        """
        from dmdb.backup.logical import backup
        from dmdb.render import activity, human_bytes, show_progress

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

    @app.command("restore")
    def restore_cmd(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="A file written by `dmdb backup`."),
        into: str | None = typer.Option(None, "--into", metavar="DB",
                                           help="Target database (created if missing; must be "
                                           "empty). Default: the configured database."),
        as_json: bool = JSON,
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="Check the archive and the target; change nothing."),
        no_owner: bool = typer.Option(False, "--no-owner",
                                      help="Own every restored object as the connected role "
                                      "(a dump from another server, or another owner)."),
    ):
        """Restore a backup into an empty (or new) database, in one transaction.

        Extensions of the dump this role may not create (pg_stat_statements without
        superuser) are left out and named.

        Example: dmdb restore nightly.dump --into dmdb_copy
        """
        from dmdb.backup.logical import restore
        from dmdb.cli.common import target_callback
        from dmdb.render import warning_line

        result = restore(ctx.obj.settings(), file, into, dry_run=dry_run, no_owner=no_owner,
                         on_target=target_callback())
        for note in result.left_out:
            warning_line(f"left out: {note}")
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
