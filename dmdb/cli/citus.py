"""dmdb citus plan: the DDL that would distribute the schema on a Citus cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from dmdb.render import console, print_json

app = typer.Typer(help="Citus readiness: the plan to shard every learner's rows by user_id "
                       "(`dmdb lint --citus` audits the schema against Citus's rules).",
                  no_args_is_help=True)


@app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", metavar="FILE",
                                       help="Write the plan here (default: print it)."),
    allow_blockers: bool = typer.Option(False, "--allow-blockers",
                                        help="Write it even while `dmdb lint --citus` "
                                             "reports blockers (they are listed on top)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
):
    """Write the ordered DDL a team runs on a Citus coordinator: reference tables, then
    users and its co-located tables by user_id, then record_answer and next_questions
    delegated by p_user_id. Nothing is run here.

    Example: dmdb citus plan --out citus_plan.sql
    """
    from dmdb.citus.plan import plan
    from dmdb.db import connect_read
    from dmdb.files import write_private
    from dmdb.render import warning_line

    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        result = plan(conn, allow_blockers=allow_blockers)
    if out is not None:
        write_private(out, result.text, mode=0o644)
    if as_json:
        print_json({**result.to_dict(), "file": str(out) if out else None})
    elif out is not None:
        console().print(f"Wrote {out}: review it, then run it on the Citus coordinator")
    else:
        typer.echo(result.text, nl=False)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="citus")
