"""dmdb seed [--reset] / dmdb reset: realistic sample data."""

from __future__ import annotations

from contextlib import contextmanager

import typer

from dmdb.render import console, print_json, show_progress

USERS = typer.Option(200, "--users", min=1, help="Learners to simulate.")
ANSWERS = typer.Option(100, "--answers", min=1, help="Answers per learner.")
DAYS = typer.Option(120, "--days", min=1, help="Days of history, ending now.")
RANDOM_SEED = typer.Option(42, "--random-seed", help="Same seed, same data.")
JOBS = typer.Option(None, "--jobs", min=1, max=16,
                    help="Connections writing in parallel (learners split by user; default 2). "
                    "Not with a reset, which writes in one transaction on one connection.")
ALSO_EMPTY = typer.Option(
    None, "--also-empty", metavar="TABLE",
    help="Reset: also empty this table of your own (repeatable). Reset empties dmdb's tables "
    "only, and refuses when another table's foreign key references one of them, naming it.")
JSON = typer.Option(False, "--json", help="Print the summary as JSON.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar, no summary.")
DRY_RUN = typer.Option(False, "--dry-run", help="Check the database and print the plan; "
                       "change nothing.")
NOW = typer.Option(None, "--now", metavar="ISO-TIME",
                   help="End of the simulated history (default: now); fix it for byte-identical "
                   "reseeds, e.g. 2026-11-25T00:00:00Z.")


@contextmanager
def _bar(enabled: bool):
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console()) as bar:
        task = bar.add_task("answers", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _summary(result, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(result.to_dict())
    elif result.dry_run:
        out = console()
        out.print("-- dry run: nothing was changed")
        if result.tables_to_clear:
            out.print("would empty, in the same transaction as the new data: "
                      + ", ".join(result.tables_to_clear), markup=False)
        out.print(f"would load {result.concepts} concepts and {result.items} items, simulate "
                  f"{result.users} learners and record {result.answers} answers "
                  f"(random seed {result.random_seed})")
        out.print("would create partitions: " + (", ".join(result.partitions_to_create) or "none"))
    elif not quiet:
        console().print(
            f"Seeded {result.users} learners, {result.concepts} concepts, {result.items} items: "
            f"{result.events} events in {len(result.partitions_touched)} partitions, "
            f"{result.seconds:.1f}s ({result.events_per_second:,.0f} events/s)"
        )


def _parse_now(raw):
    if raw is None:
        return None
    from datetime import datetime, timezone

    from dmdb.errors import ConfigError

    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now {raw!r} is not an ISO time; use e.g. 2026-11-25T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _run(ctx: typer.Context, fn, users, answers, days, random_seed, jobs, as_json, quiet, now,
         dry_run=False, **extra):
    state = ctx.obj
    when = _parse_now(now)
    project = state.project()
    from dmdb.cli.common import target_callback

    with _bar(show_progress(quiet or as_json or dry_run)) as progress:
        result = fn(state.settings(), project, users=users, answers_per_user=answers,
                    days=days, random_seed=random_seed, jobs=jobs, progress=progress, now=when,
                    dry_run=dry_run, on_target=target_callback(quiet), **extra)
    _summary(result, as_json, quiet)


YES = typer.Option(False, "--yes", help="With --reset: do not ask for confirmation.")


def _reset(ctx, users, answers, days, random_seed, jobs, as_json, quiet, now, dry_run, yes,
           also_empty=None):
    from dmdb.learning.seed import reset

    if not yes and not dry_run:
        import sys

        from dmdb.errors import ConfigError, DmdbError

        if not sys.stdin.isatty():
            raise ConfigError("reset deletes every row; pass --yes to confirm")
        settings = ctx.obj.settings()
        where = (f"the embedded server at {settings.home}" if settings.embedded
                 else f"{settings.host}:{settings.port}")
        try:
            confirmed = typer.confirm(f"Empty dmdb's tables in database {settings.dbname} on "
                                      f"{where} and seed again?")
        except (typer.Abort, EOFError, KeyboardInterrupt):
            confirmed = False
        if not confirmed:
            raise DmdbError("reset not confirmed; nothing was changed (pass --yes to skip "
                            "the question)")
    _run(ctx, reset, users, answers, days, random_seed, jobs, as_json, quiet, now, dry_run,
         also_empty=tuple(also_empty or ()))


def seed_cmd(ctx: typer.Context,
             users: int = USERS, answers: int = ANSWERS, days: int = DAYS,
             random_seed: int = RANDOM_SEED, jobs: int | None = JOBS, as_json: bool = JSON,
             quiet: bool = QUIET, now: str = NOW, dry_run: bool = DRY_RUN,
             reset: bool = typer.Option(False, "--reset",
                                        help="Delete all data first (the schema stays), then "
                                        "seed; asks unless --yes."),
             yes: bool = YES, also_empty: list[str] | None = ALSO_EMPTY):
    """Load the catalogue and simulate learners into an empty, up-to-date database
    (--reset: delete the data first; same as `dmdb reset`).

    Example: dmdb seed --users 10000 --answers 100 --random-seed 7
    """
    # `dmdb seed seed` / `dmdb seed reset`: the former shape, still accepted.
    legacy = ctx.args[0] if len(ctx.args) == 1 else " ".join(ctx.args) or None
    if legacy not in (None, "seed", "reset"):
        from dmdb.errors import ConfigError

        raise ConfigError(f"unexpected argument {legacy!r}; options go after the command, "
                          "e.g. dmdb seed --users 200 (see `dmdb seed --help`)")
    if reset or legacy == "reset":
        _reset(ctx, users, answers, days, random_seed, jobs, as_json, quiet, now, dry_run, yes,
               also_empty)
        return
    if also_empty:
        from dmdb.errors import ConfigError

        raise ConfigError("--also-empty goes with a reset (`dmdb reset`, `dmdb seed --reset`); "
                          "a plain seed empties nothing")
    from dmdb.learning.seed import seed

    _run(ctx, seed, users, answers, days, random_seed, jobs, as_json, quiet, now, dry_run)


def reset_cmd(ctx: typer.Context, users: int = USERS, answers: int = ANSWERS, days: int = DAYS,
              random_seed: int = RANDOM_SEED, jobs: int | None = JOBS, as_json: bool = JSON,
              quiet: bool = QUIET, now: str = NOW, dry_run: bool = DRY_RUN, yes: bool = YES,
              also_empty: list[str] | None = ALSO_EMPTY):
    """Empty dmdb's tables (the schema stays) and seed again, in one transaction: an
    interrupted reset leaves the old data. Asks unless --yes. A table of your own that
    references users (say badges) is emptied only when named with --also-empty; reset
    refuses until then. --dry-run lists every table it would empty.

    Example: dmdb reset --yes --users 500 --also-empty badges
    """
    _reset(ctx, users, answers, days, random_seed, jobs, as_json, quiet, now, dry_run, yes,
           also_empty)


def register(main: typer.Typer) -> None:
    main.command("seed", context_settings={"allow_extra_args": True})(seed_cmd)
    main.command("reset")(reset_cmd)
