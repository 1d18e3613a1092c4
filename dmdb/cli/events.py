"""dmdb events tail / consume / lag / list / reset / drop / thresholds / prune / notify: a
thin layer over dmdb.events."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import typer

from dmdb.errors import ConfigError
from dmdb.render import console, human_bytes, print_json, table

app = typer.Typer(
    help=(
        "The learning events out of the database: one feed in commit order per learner, "
        "at-least-once, each consumer resuming from its own position (docs/events.md). "
        "Works through PgBouncer in transaction mode; only --wake (LISTEN) needs a "
        "session of its own (DMDB_DIRECT_URL)."
    ),
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in docs/events.md).")
CONSUMER = typer.Option(..., "--consumer", "-c", metavar="NAME",
                        help="The consumer: 1 to 63 of letters, digits and _ . : @ -.")
BATCH = typer.Option(1000, "--batch-size", metavar="N", min=1, max=100_000,
                     help="Events per batch (per read).")
POLL = typer.Option(1.0, "--poll", metavar="SECONDS", min=0.01, max=3600.0,
                    help="When caught up, read again after this long (or at a wake-up).")
WAKE = typer.Option(
    False, "--wake",
    help="Also LISTEN for the writers' wake-up (`dmdb events notify on`), to react within "
    "milliseconds without polling hard; needs a session of its own: refused through a "
    "transaction pooler unless DMDB_DIRECT_URL is set. Polling stays the authority.")


def _connect(ctx: typer.Context, *, wake: bool = False, what: str = "dmdb events"):
    from dmdb.db import connect

    settings = ctx.obj.settings()
    return connect(settings, autocommit=True,
                   session=f"{what} --wake (LISTEN for the writers' wake-up)" if wake else None)


def _target(text: str):
    from dmdb.events import parse_target

    return parse_target(text)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, `2w`; a bare number is days."""
    m = _DURATION.match(text or "")
    if not m:
        raise ConfigError(f"{text!r} is not a duration: e.g. 30d, 12h, 90m")
    unit = (m[2] or "d").lower()
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return timedelta(seconds=float(m[1]) * seconds)


def _ago(ts) -> str:
    if ts is None:
        return "-"
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _write_page(page) -> None:
    out = sys.stdout
    out.write("".join(e.line + "\n" for e in page.events))
    out.flush()


@app.command("tail")
def tail_cmd(
    ctx: typer.Context,
    start: str = typer.Option("now", "--from", metavar="WHERE",
                              help="now (default), beginning, a position TX:ID, or an event id."),
    follow: bool = typer.Option(True, "--follow/--no-follow",
                                help="Keep following (default), or stop once caught up."),
    batch_size: int = BATCH,
    poll: float = POLL,
    wake: bool = WAKE,
):
    """Print the feed as JSON lines, one event per line, in feed order, from --from on.
    Stores no position (for that, `consume`). Ctrl-C stops it.

    Example: dmdb events tail --from beginning --no-follow | jq -c 'select(.type == "concept_mastered")'
    """
    from dmdb.events import follow as follow_feed
    from dmdb.events import listen, require_feed, resolve

    target = _target(start)
    conn = _connect(ctx, wake=wake, what="dmdb events tail")
    try:
        require_feed(conn)
        if wake:
            listen(conn)
        position = resolve(conn, target)
        for page in follow_feed(conn, position, limit=batch_size, poll=poll, forever=follow,
                                listening=wake):
            _write_page(page)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        conn.close()


@app.command("consume")
def consume_cmd(
    ctx: typer.Context,
    name: str = CONSUMER,
    command: str | None = typer.Option(
        None, "--command", metavar="CMD",
        help="Hand each batch to CMD (run by /bin/sh) on its stdin, one JSON object per line; "
        "the position advances only when CMD exits 0. Default: print the batches to stdout "
        "(the position advances once a batch is written)."),
    start: str | None = typer.Option(
        None, "--from", metavar="WHERE",
        help="Create the consumer when it does not exist, at now, beginning, a position TX:ID "
        "or an event id (ignored when it exists)."),
    batch_size: int = BATCH,
    follow: bool = typer.Option(False, "--follow", help="Keep going when caught up (default: stop)."),
    poll: float = POLL,
    max_batches: int | None = typer.Option(None, "--max-batches", metavar="N", min=1,
                                           help="Stop after N batches."),
    timeout: float | None = typer.Option(None, "--timeout", metavar="SECONDS", min=0.001,
                                         help="A command still running after this long fails."),
    wake: bool = WAKE,
    as_json: bool = typer.Option(False, "--json",
                                 help="With --command: print the run's summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line."),
):
    """Hand the feed after the consumer's position to stdout or to --command, batch by
    batch, advancing the position after each batch handled: at-least-once (a run killed
    between handling a batch and advancing hands that batch again next time).

    Example: dmdb events consume --consumer ml --from beginning --follow --command 'python load.py'
    """
    from dmdb.events import CommandFailed, consume, listen, run_command

    if as_json and command is None:
        raise ConfigError("--json needs --command: without it stdout carries the events")
    target = _target(start) if start is not None else None

    if command is None:
        handle = _write_page
    else:
        def handle(page):
            run_command(command, page.events, consumer=name, timeout=timeout)

    conn = _connect(ctx, wake=wake, what="dmdb events consume")
    result = None
    try:
        if wake:
            listen(conn)
        result = consume(conn, name, handle, start=target, batch_size=batch_size,
                         follow=follow, poll=poll, max_batches=max_batches, listening=wake)
    except CommandFailed as exc:
        raise CommandFailed(f"{exc}; consumer {name} stays at its position: the batch is "
                            "handed again next run") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        conn.close()
    if as_json:
        print_json(result.to_dict())
    elif not quiet:
        line = (f"consumer {name}{' (created)' if result.created else ''}: {result.events:,} "
                f"event(s) in {result.batches} batch(es), position {result.position}"
                + (", caught up" if result.caught_up else ""))
        stream = sys.stdout if command is not None else sys.stderr
        stream.write(line + "\n")


@app.command("lag")
def lag_cmd(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--consumer", "-c", metavar="NAME",
                                    help="Only this consumer."),
    as_json: bool = JSON,
):
    """How far each consumer is behind: events below the horizon after its position, and
    since when the first of them waits; judged against its thresholds (`thresholds`).

    Example: dmdb events lag --json
    """
    from dmdb.events import lag, oldest_writer, require_feed

    conn = _connect(ctx)
    try:
        require_feed(conn)
        rows = lag(conn, name)
        writer = oldest_writer(conn)
    finally:
        conn.close()
    if as_json:
        print_json({"consumers": [r.to_dict() for r in rows], "oldest_writer": writer})
        return
    if not rows:
        typer.echo("no consumers; `dmdb events consume --consumer NAME --from now` creates one")
    else:
        console().print(table(None, ("consumer", "position", "behind", "waiting", "last advanced",
                                     "status"),
              [(r.consumer.name, str(r.consumer.position),
                f"{r.behind:,}{'+' if r.behind_capped else ''}", _seconds(r.seconds),
                _ago(r.consumer.advanced_at),
                r.status + (": " + "; ".join(r.problems) if r.problems else ""))
               for r in rows]))
    if writer and (writer["seconds"] or 0) >= 5:
        who = (f"pid {writer['pid']}" if writer["pid"] is not None else "a prepared transaction"
               ) + (f" ({writer['application_name']})" if writer.get("application_name") else "")
        typer.echo(f"the horizon is held back by {who}, open for {_seconds(writer['seconds'])}: "
                   "no consumer gets events committed after it began until it ends")


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = JSON):
    """The consumers: position, events handled, last advance, thresholds, lost marks."""
    from dmdb.events import list_consumers, require_feed

    conn = _connect(ctx)
    try:
        require_feed(conn)
        consumers = list_consumers(conn)
    finally:
        conn.close()
    if as_json:
        print_json({"consumers": [c.to_dict() for c in consumers]})
        return
    if not consumers:
        typer.echo("no consumers")
        return
    console().print(table(None, ("consumer", "position", "handled", "last advanced",
                                 "warn/critical", "lost"),
          [(c.name, str(c.position), f"{c.events_handled:,}", _ago(c.advanced_at),
            f"{c.warn_events:,}/{c.critical_events:,} ev, "
            f"{c.warn_seconds:g}/{c.critical_seconds:g} s",
            f"{_ago(c.lost_at)}: {c.lost_reason}" if c.lost_at else "-")
           for c in consumers]))


@app.command("reset")
def reset_cmd(
    ctx: typer.Context,
    name: str = CONSUMER,
    to: str = typer.Option(..., "--to", metavar="WHERE",
                           help="now, beginning, a position TX:ID, or an event id (the "
                           "consumer gets that event next)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say where it would go; change nothing."),
    as_json: bool = JSON,
):
    """Move a consumer's position (and clear a lost mark): back to read again, or on to
    skip. Stop its `consume` first: a running one is refused at its next advance.

    Example: dmdb events reset --consumer ml --to 120455
    """
    from dmdb.events import require_feed, reset_consumer

    target = _target(to)
    conn = _connect(ctx)
    try:
        require_feed(conn)
        before, position = reset_consumer(conn, name, target, dry_run=dry_run)
    finally:
        conn.close()
    if as_json:
        print_json({"consumer": name, "dry_run": dry_run, "from": str(before.position),
                    "to": str(position)})
        return
    verb = "would move" if dry_run else "moved"
    typer.echo(f"consumer {name} {verb} from {before.position} to {position} ({target})")


@app.command("drop")
def drop_cmd(ctx: typer.Context, name: str = CONSUMER, as_json: bool = JSON):
    """Forget a consumer (its position and thresholds): it no longer holds tombstones back
    nor shows in the monitor."""
    from dmdb.events import drop_consumer, require_feed

    conn = _connect(ctx)
    try:
        require_feed(conn)
        consumer = drop_consumer(conn, name)
    finally:
        conn.close()
    if as_json:
        print_json({"dropped": consumer.to_dict()})
    else:
        typer.echo(f"consumer {name} dropped (it was at {consumer.position})")


@app.command("thresholds")
def thresholds_cmd(
    ctx: typer.Context,
    name: str = CONSUMER,
    warn_events: int | None = typer.Option(None, "--warn-events", metavar="N", min=1),
    critical_events: int | None = typer.Option(None, "--critical-events", metavar="N", min=1),
    warn_seconds: float | None = typer.Option(None, "--warn-seconds", metavar="S", min=0.001),
    critical_seconds: float | None = typer.Option(None, "--critical-seconds", metavar="S",
                                                  min=0.001),
    as_json: bool = JSON,
):
    """A consumer's lag thresholds, read by `lag` and `dmdb monitor`'s event_consumers
    check (defaults: warning at 100,000 events or 300 s behind, critical at 1,000,000 or
    3,600 s). Without options: show them."""
    from dmdb.events import require_feed, set_thresholds

    conn = _connect(ctx)
    try:
        require_feed(conn)
        c = set_thresholds(conn, name, warn_events=warn_events, critical_events=critical_events,
                           warn_seconds=warn_seconds, critical_seconds=critical_seconds)
    finally:
        conn.close()
    if as_json:
        print_json(c.to_dict())
    else:
        typer.echo(f"consumer {name}: warning at {c.warn_events:,} events or {c.warn_seconds:g} s "
                   f"behind, critical at {c.critical_events:,} events or {c.critical_seconds:g} s")


@app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    max_age: str = typer.Option("30d", "--max-age", metavar="DURATION",
                                help="The retention limit: tombstones older than this go even "
                                "if a live consumer has not read them (it is marked lost); a "
                                "duration: 30d, 12h; a bare number is seconds."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing."),
    as_json: bool = JSON,
):
    """Delete the erasure tombstones every live consumer has passed, and those past
    --max-age (consumers that had not read them are marked lost, never left to skip
    silently); report the learning_events partitions every consumer has passed.

    Example: dmdb events prune --max-age 30d --dry-run
    """
    from dmdb.events import prune, require_feed

    age = parse_age(max_age)
    conn = _connect(ctx)
    try:
        require_feed(conn)
        result = prune(conn, max_age=age, dry_run=dry_run)
    finally:
        conn.close()
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    n = result.tombstones if dry_run else result.deleted
    typer.echo(f"{verb} {n:,} tombstone(s): {result.passed:,} passed by every live consumer, "
               f"{result.expired_unread:,} past --max-age {max_age} unread; "
               f"{result.tombstones_left:,} kept "
               f"({human_bytes(result.tombstone_bytes)})")
    if result.lost_consumers:
        typer.echo(f"{'would mark' if dry_run else 'marked'} lost: "
                   f"{', '.join(result.lost_consumers)} (they had not read tombstones past the "
                   "limit; `dmdb events reset` moves them on)")
    if result.slowest is None:
        typer.echo("no live consumer: only the retention limit applies")
    passed = [p for p in result.partitions if p.passed]
    if passed:
        typer.echo("learning_events partitions every live consumer has passed: "
                   + ", ".join(p.partition for p in passed))


@app.command("notify")
def notify_cmd(
    ctx: typer.Context,
    state: str = typer.Argument("status", metavar="on|off|status"),
    as_json: bool = JSON,
):
    """The writers' wake-up: with `on`, record_answer(s), start_session and
    emit_learner_erased send one payload-less NOTIFY dmdb_events per transaction, so
    `tail --wake` and `consume --wake` react at once. Off by default: every notifying
    commit takes a cluster-wide lock (a ceiling on commits per second)."""
    from dmdb.events import require_feed, set_notify

    wanted = {"on": True, "off": False, "status": None}.get(state.lower(), "bad")
    if wanted == "bad":
        raise ConfigError(f"{state!r}: say on, off or status")
    conn = _connect(ctx)
    try:
        require_feed(conn)
        now = set_notify(conn, wanted)
    finally:
        conn.close()
    if as_json:
        print_json({"notify": now})
    else:
        typer.echo(f"event wake-up NOTIFY is {'on' if now else 'off'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="events")
