"""dmdb models report / fit: how well BKT predicts, and its parameters fitted per concept."""

from __future__ import annotations

import sys

import typer

from dmdb.errors import ConfigError

app = typer.Typer(help="The learning models: measure how well they predict, fit BKT's parameters.",
                  no_args_is_help=True)

SINCE = typer.Option(None, "--since", metavar="ISO-TIME",
                     help="Start of the window (inclusive), e.g. 2026-11-01T00:00:00Z.")
UNTIL = typer.Option(None, "--until", metavar="ISO-TIME",
                     help="End of the window (exclusive); default now.")
JSON = typer.Option(False, "--json", help="Print JSON (stable keys, see docs/models.md).")


def _time(raw: str | None, flag: str):
    if raw is None:
        return None
    from datetime import datetime, timezone

    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {raw!r} is not an ISO time; use e.g. 2026-11-25T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _num(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    days: float | None = typer.Option(None, "--days", help="Window: the last N days "
                                      "(default 30 unless --since is given)."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    bins: int = typer.Option(20, "--bins", help="Calibration bins of the prediction for RMSE(bins)."),
    scheduler: str | None = typer.Option(None, "--scheduler", metavar="sm2|fsrs",
                                         help="Scheduler to evaluate (default: the one in use). "
                                         "fsrs replays each learner's answers through FSRS-6."),
    as_json: bool = JSON,
    fmt: str = typer.Option("table", "--format", metavar="FORMAT",
                            help="table, json or prometheus (the headline figures)."),
):
    """BKT's log loss, RMSE(bins) and AUC over the window's answers, overall and per
    concept, beside the constant baseline (the window's mean correctness); and how the
    scheduler's reviews went. Computed in the database; read-only.

    Example: dmdb models report --days 7 --format prometheus > /var/lib/node_exporter/dmdb_models.prom
    """
    from dmdb.db import connect_read
    from dmdb.learning import models
    from dmdb.render import print_json, warning_line

    fmt = "json" if as_json else fmt
    if fmt not in ("table", "json", "prometheus"):
        raise ConfigError(f"--format {fmt!r} is not one of table, json, prometheus")
    start = _time(since, "--since")
    if days is None and start is None:
        days = models.REPORT_DAYS
    win = models.window(days=days, since=start, until=_time(until, "--until"))
    models.check_report_options(bins=bins, scheduler=scheduler)
    with connect_read(ctx.obj.settings(), warn=warning_line, autocommit=True) as conn:
        rep = models.report(conn, win, bins=bins, scheduler=scheduler)
    if fmt == "json":
        print_json(rep.to_dict())
    elif fmt == "prometheus":
        sys.stdout.write(models.to_prometheus(rep))
    else:
        _render_report(rep)


def _render_report(rep) -> None:
    from dmdb.render import console, table

    out = console()
    w = rep.window
    out.print(f"Window {w.since.isoformat() if w.since else 'all'} .. {w.until.isoformat()}: "
              f"{rep.overall.answers if rep.overall else 0} answers")
    if rep.overall is None:
        out.print("No question_answered events in this window.")
    else:
        rows = []
        for m in [rep.overall, *rep.concepts]:
            rows.append([m.concept_code or ("(all)" if m.concept_id is None else m.concept_id),
                         m.answers, f"{m.correct_rate:.1%}", _num(m.log_loss),
                         _num(m.baseline_log_loss), _num(m.rmse_bins), _num(m.baseline_rmse_bins),
                         _num(m.auc, 3)])
        out.print(table("BKT predicted P(correct) vs outcome (baseline: the window's mean "
                        f"correctness {rep.overall.correct_rate:.3f})",
                        ["concept", "answers", "correct", "log loss", "baseline", "RMSE(bins)",
                         "baseline", "AUC"], rows))
    s = rep.scheduler
    out.print(f"Scheduler: {s['scheduler']}{'' if s['in_use'] else ' (not the one in use)'}. "
              f"{s['note']}.")
    f = s.get("fsrs")
    if f:
        out.print(table(None, ["FSRS-6", "reviews", "same-day", "recalled", "log loss", "baseline",
                               "RMSE(bins)", "AUC"],
                        [["retrievability", f["reviews"], f["same_day_reviews"], f["recalled"],
                          _num(f["log_loss"]), _num(f["baseline_log_loss"]), _num(f["rmse_bins"]),
                          _num(f["auc"], 3)]]))
    if s.get("reviews"):
        out.print(table(None, ["gap since last answer", "reviews", "recalled", "recall rate"],
                        [[r["gap"], r["reviews"], r["recalled"], f"{r['recall_rate']:.1%}"]
                         for r in s["reviews"]]))


@app.command("fit")
def fit_cmd(
    ctx: typer.Context,
    days: float | None = typer.Option(None, "--days", help="Window: the last N days "
                                      "(default: every answer)."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    holdout: float = typer.Option(0.2, "--holdout", help="Latest fraction of the window's answers "
                                  "held out (time split) to compare current and fitted parameters."),
    max_iterations: int = typer.Option(25, "--max-iterations", help="EM iterations per concept at most."),
    tolerance: float = typer.Option(1e-6, "--tolerance", help="Stop a concept's EM when its training "
                                    "log-likelihood gains less than this per answer."),
    min_answers: int = typer.Option(200, "--min-answers", help="Training answers a concept needs "
                                    "to be fitted."),
    min_learners: int = typer.Option(20, "--min-learners", help="Learners a concept needs to be fitted."),
    min_holdout: int = typer.Option(50, "--min-holdout", help="Held-out answers a concept needs for "
                                    "its fit to be applied."),
    apply: bool = typer.Option(False, "--apply", help="Write the fits that beat the current "
                               "parameters on held-out data into bkt_concept_parameters."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --apply: say what would be written; "
                                 "change nothing."),
    as_json: bool = JSON,
):
    """Fit BKT's initial knowledge, learning rate, guess and slip per concept by EM over each
    learner's answer sequence, in the database; print held-out log loss before/after.

    Example: dmdb models fit --days 90 --apply --dry-run
    """
    from dmdb.db import connect
    from dmdb.learning import models
    from dmdb.render import print_json

    win = models.window(days=days, since=_time(since, "--since"), until=_time(until, "--until"))
    models.check_fit_options(holdout=holdout, max_iterations=max_iterations, tolerance=tolerance,
                             min_answers=min_answers, min_learners=min_learners,
                             min_holdout=min_holdout)
    from dmdb.render import activity, show_progress

    with connect(ctx.obj.settings(), autocommit=True) as conn, \
            activity("fitting BKT per concept by EM, in the database …",
                     show_progress(as_json)):
        result = models.fit(conn, win, holdout=holdout, max_iterations=max_iterations,
                            tolerance=tolerance, min_answers=min_answers, min_learners=min_learners,
                            min_holdout=min_holdout, apply=apply, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
    else:
        _render_fit(result)
    from dmdb.render import warning_line

    for c in result.concepts:
        for warning in c.warnings:
            verb = ("applied" if c.concept_id in result.applied
                    else "would be applied" if c.apply and apply else "fitted")
            warning_line(f"{c.concept_code or c.concept_id} ({verb}): {warning}")
    if apply and not any(c.apply for c in result.concepts):
        from dmdb.errors import DmdbError

        raise DmdbError("no concept's fit may be applied (see the reasons above); nothing was "
                        "written")


def _render_fit(result) -> None:
    from dmdb.render import console, table

    out = console()
    w = result.window
    out.print(f"Window {w.since.isoformat() if w.since else 'all'} .. {w.until.isoformat()}; "
              f"held out: answers from {result.cutoff.isoformat() if result.cutoff else '—'} "
              f"(latest {result.holdout:.0%}); {result.seconds:.1f}s")
    rows = []
    for c in result.concepts:
        rows.append([c.concept_code or c.concept_id, c.train_answers, c.holdout_answers,
                     _num(c.initial_knowledge, 3), _num(c.learning_rate, 3), _num(c.guess, 3),
                     _num(c.slip, 3), _num(c.holdout_log_loss_before), _num(c.holdout_log_loss_after),
                     "yes" if c.apply else "; ".join(c.reasons)])
    out.print(table("BKT fitted per concept (current parameters: --json); held-out log loss "
                    "before → after",
                    ["concept", "train", "held out", "L0", "T", "guess", "slip", "before", "after",
                     "apply?"], rows))
    if result.apply_requested:
        chosen = [c for c in result.concepts if c.apply]
        if result.dry_run:
            out.print(f"-- dry run: would write {len(chosen)} concepts' parameters into "
                      "bkt_concept_parameters; nothing was changed")
        elif result.applied:  # else the caller reports the refusal, one error line
            out.print(f"Wrote {len(result.applied)} concepts' parameters into bkt_concept_parameters; "
                      "new knowledge states of those concepts start from them.")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="models")
