"""dmdb privacy: a learner's data found, exported and erased on request."""

from __future__ import annotations

from pathlib import Path

import typer

from dmdb.render import console, print_json

app = typer.Typer(help="A learner's data on request (GDPR/CCPA): the inventory of every "
                       "relation holding it, export, erasure, and the request ledger "
                       "(docs/privacy.md).", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="JSON output.")


@app.command("inventory")
def inventory_cmd(ctx: typer.Context, as_json: bool = JSON):
    """Every relation of the live database that holds a learner's data, how it was found,
    and what sql/privacy.toml says to do with it. Exit 1 while one is unclassified.

    Example: dmdb privacy inventory --json
    """
    from dmdb.db import connect_read
    from dmdb.privacy.inventory import inventory
    from dmdb.render import plain_table, warning_line

    state = ctx.obj
    with connect_read(state.settings(), warn=warning_line, autocommit=True) as conn:
        inv = inventory(conn, state.settings().sql_dir)
    if as_json:
        print_json(inv.to_dict())
    else:
        typer.echo(plain_table("Privacy inventory", ("relation", "kind", "found by", "action",
                                                     "why"),
                               [(r.qualified, r.kind, r.why, r.action or "UNCLASSIFIED",
                                 r.reason) for r in inv.relations]), nl=False)
    if inv.unclassified:
        from dmdb.render import error_line

        error_line(f"{len(inv.unclassified)} relation(s) hold user data and are not "
                   f"classified: {', '.join(r.qualified for r in inv.unclassified)}; add "
                   "them to sql/privacy.toml (delete with a key, or excluded with a reason)")
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    user_id: int = typer.Argument(..., metavar="USER_ID", help="The learner (users.user_id)."),
    out: Path = typer.Option(..., "--out", metavar="FILE",
                             help="JSON lines, one row a line, created 0600."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = JSON,
):
    """Write every row the inventory covers for one learner, streamed, and record the
    request in the ledger.

    Example: dmdb privacy export 42 --out learner-42.jsonl
    """
    from dmdb.db import connect
    from dmdb.privacy.erase import export
    from dmdb.privacy.inventory import inventory

    settings = ctx.obj.settings()
    with connect(settings, autocommit=True) as conn:
        result = export(conn, user_id, inventory(conn, settings.sql_dir), out, force=force)
    if as_json:
        print_json(result.to_dict())
    else:
        console().print(f"Wrote {result.file}: {sum(result.rows.values())} row(s) of learner "
                        f"{user_id} from {len([n for n in result.rows.values() if n])} "
                        f"relation(s); request {result.request_id}")


@app.command("erase")
def erase_cmd(
    ctx: typer.Context,
    user_id: int = typer.Argument(..., metavar="USER_ID", help="The learner (users.user_id)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change "
                                                          "nothing."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: the erasure cannot be undone."),
    backup_days: int = typer.Option(35, "--backup-days", min=0, metavar="DAYS",
                                    help="How long the oldest kept backup is: the ledger "
                                         "records when no backup holds the data any more."),
    as_json: bool = JSON,
):
    """Erase one learner everywhere the inventory says they live, in one transaction:
    rows deleted (archived months included), views refreshed, a tombstone for event
    consumers, a ledger row; then the touched tables vacuumed.

    Example: dmdb privacy erase 42 --dry-run
    """
    from dmdb.db import connect
    from dmdb.errors import ConfigError
    from dmdb.privacy.erase import erase
    from dmdb.privacy.inventory import inventory

    if not dry_run and not yes:
        raise ConfigError("erase deletes the learner's data for good; pass --yes to confirm "
                          "(or --dry-run to see what it would delete)")
    settings = ctx.obj.settings()
    with connect(settings, autocommit=True) as conn:
        result = erase(conn, user_id, inventory(conn, settings.sql_dir), dry_run=dry_run,
                       backup_days=backup_days)
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    for relation, c in result.counts.items():
        if c["before"]:
            console().print(f"{relation}: {verb} {c['before'] if dry_run else c['deleted']}")
    if dry_run:
        console().print("-- dry run: nothing was changed")
    else:
        console().print(f"Erased learner {user_id} (request {result.request_id}); refreshed "
                        f"{len(result.refreshed)} view(s), vacuumed {len(result.vacuumed)} "
                        f"table(s); backups hold the data until {result.backups_clean_after:%Y-%m-%d}")


@app.command("requests")
def requests_cmd(ctx: typer.Context, as_json: bool = JSON):
    """The ledger: every export and erasure, by request id (the learner as a keyed hash).

    Example: dmdb privacy requests --json
    """
    from dmdb.db import connect_read
    from dmdb.privacy.ledger import requests
    from dmdb.render import plain_table, warning_line

    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        found = requests(conn)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    typer.echo(plain_table("Privacy requests", ("id", "kind", "subject", "completed (UTC)",
                                                "rows", "backups clean after"),
                           [(r.request_id, r.kind, r.subject[:16] + "…",
                             f"{r.completed_at:%Y-%m-%d %H:%M:%S}",
                             sum(v.get("deleted", v.get("exported", 0))
                                 for v in r.counts.values()),
                             f"{r.backups_clean_after:%Y-%m-%d}" if r.backups_clean_after
                             else "") for r in found]), nl=False)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="privacy")
