"""The learning models, measured and fitted inside PostgreSQL (`dmdb models`).

- `report`: BKT's log loss, RMSE over calibration bins and AUC over the question_answered
  events of a window, overall and per concept, beside the constant baseline (the
  window's mean correctness), and what the scheduler's reviews show. Every figure is
  computed by the SQL functions of sql/functions/models_report.sql; only the aggregated
  rows come back.
- `fit`: per-concept BKT parameters by EM over each learner's answer sequence
  (sql/functions/models_fit.sql), with a time-split hold-out; `apply` writes the
  parameters that beat the current ones on the held-out answers into
  bkt_concept_parameters, which new knowledge states start from.

The decision of what may be applied (`verdict`) is pure and tested without a database.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from dmdb import resources
from dmdb.errors import ConfigError, DmdbError

REPORT_DAYS = 30
BINS = 20
HOLDOUT = 0.2
MAX_ITERATIONS = 25
TOLERANCE = 1e-6
# Below these a concept's four parameters are not identified well enough to replace the
# current ones (measured with the simulator: at 200 answers from 20 learners the guess
# and slip estimates already spread by ~±0.05; fewer gives EM room to wander).
MIN_ANSWERS = 200
MIN_LEARNERS = 20
# A held-out log loss over fewer answers is too noisy to call an improvement.
MIN_HOLDOUT = 50

# The CHECK ranges of knowledge_states / bkt_concept_parameters.
RANGES = {
    "initial_knowledge": (0.0, 1.0),
    "learning_rate": (0.0, 1.0),
    "guess": (0.0, 0.5),
    "slip": (0.0, 0.5),
}
METRICS = ("log_loss", "rmse_bins", "auc")
SCHEDULERS = ("sm2", "fsrs")


@dataclass(frozen=True)
class Window:
    since: datetime | None  # None: from the first event
    until: datetime

    def to_dict(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat()}

    def bounds(self) -> tuple[object, datetime]:
        return (self.since if self.since is not None else "-infinity"), self.until


MAX_DAYS = 36500  # the longest --days window: 100 years


def window(*, days: float | None, since: datetime | None, until: datetime | None,
           now: datetime | None = None) -> Window:
    """[since, until): explicit bounds win over `days` back from `until` (default now)."""
    now = now or datetime.now(timezone.utc)
    end = until or now
    if since is not None and days is not None:
        raise ConfigError("give either --since or --days, not both")
    if days is not None:
        if not (days > 0 and math.isfinite(days)):
            raise ConfigError(f"--days must be a positive number of days, got {days}")
        if days > MAX_DAYS:  # timedelta(days=1e308) raises OverflowError
            raise ConfigError(f"--days must be at most {MAX_DAYS} (100 years), got {days:g}; "
                              "for every answer, give --since with an early date")
        since = end - timedelta(days=days)
    if since is not None and since >= end:
        raise ConfigError(f"the window is empty: --since {since.isoformat()} is not before "
                          f"--until {end.isoformat()}")
    return Window(since, end)


# -------------------------------------------------------------------------- report


@dataclass
class ConceptMetrics:
    concept_id: int | None
    concept_code: str | None
    answers: int
    correct: int
    mean_predicted: float
    log_loss: float
    rmse_bins: float
    auc: float | None
    baseline_log_loss: float
    baseline_rmse_bins: float
    baseline_auc: float | None

    @property
    def correct_rate(self) -> float:
        return self.correct / self.answers if self.answers else 0.0


@dataclass
class ModelReport:
    window: Window
    bins: int
    overall: ConceptMetrics | None
    concepts: list[ConceptMetrics]
    scheduler: dict
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_dict(self) -> dict:
        def metrics(m: ConceptMetrics | None):
            if m is None:
                return None
            d = asdict(m)
            d["bkt"] = {k: d.pop(k) for k in ("mean_predicted", *METRICS)}
            d["baseline"] = {"predicted": (self.overall.correct_rate if self.overall else None),
                             **{k: d.pop(f"baseline_{k}") for k in METRICS}}
            return d

        return {
            "window": self.window.to_dict(),
            "bins": self.bins,
            "answers": self.overall.answers if self.overall else 0,
            "overall": metrics(self.overall),
            "concepts": [metrics(c) for c in self.concepts],
            "scheduler": self.scheduler,
            "generated_at": self.generated_at.isoformat(),
        }


def check_report_options(*, bins: int, scheduler: str | None) -> None:
    if not 2 <= bins <= 1000:
        raise ConfigError(f"--bins must be between 2 and 1000, got {bins}")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")


def report(conn, win: Window, *, bins: int = BINS, scheduler: str | None = None) -> ModelReport:
    """The model report over the question_answered events of `win` (read-only); the
    scheduler section for `scheduler` (default: the one in use)."""
    check_report_options(bins=bins, scheduler=scheduler)
    since, until = win.bounds()
    _require(conn, "models_bkt_report")
    # One snapshot for every section: answers arriving meanwhile change none of them.
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur = conn.execute("SELECT * FROM models_bkt_report(%s, %s, %s)", (since, until, bins))
        cols = [c.name for c in cur.description]
        found = [ConceptMetrics(**dict(zip(cols, r))) for r in cur.fetchall()]
        section = scheduler_section(conn, win, scheduler=scheduler, bins=bins)
    overall = next((m for m in found if m.concept_id is None), None)
    concepts = [m for m in found if m.concept_id is not None]
    return ModelReport(win, bins, overall, concepts, section)


SM2_NOTE = ("SM-2 schedules an interval from quality grades and states no probability of recall, "
            "so it has no log loss, RMSE or AUC; shown instead: how its reviews (repeat answers "
            "of an item) went, by the gap since the previous answer")
FSRS_NOTE = ("FSRS-6's retrievability before each review (replayed from each learner's answers to "
             "the item) against the outcome; reviews less than a whole day after the previous "
             "answer are counted, not scored (FSRS states R = 1 for them)")


def scheduler_in_use(conn) -> str:
    """algorithm_settings.scheduler (migration 0007), else SM-2, the only one before it."""
    if conn.execute("SELECT to_regclass('algorithm_settings') IS NULL").fetchone()[0]:
        return "sm2"
    row = conn.execute("SELECT scheduler FROM algorithm_settings").fetchone()
    return row[0] if row else "sm2"


def scheduler_section(conn, win: Window, *, scheduler: str | None = None, bins: int = BINS) -> dict:
    """How the scheduler's predicted recall matched the reviews: FSRS's retrievability vs
    outcome; for SM-2, which predicts none, what its reviews show."""
    in_use = scheduler_in_use(conn)
    which = scheduler or in_use
    if which not in SCHEDULERS:
        raise ConfigError(f"--scheduler {which!r} is not one of {', '.join(SCHEDULERS)}")
    since, until = win.bounds()
    rows = conn.execute("SELECT * FROM models_review_outcomes(%s, %s)", (since, until)).fetchall()
    section: dict = {"scheduler": which, "in_use": which == in_use,
                     "predicts_recall": which == "fsrs",
                     "note": FSRS_NOTE if which == "fsrs" else SM2_NOTE,
                     "reviews": [{"gap": g, "reviews": n, "recalled": k, "recall_rate": rate}
                                 for g, n, k, rate in rows]}
    if which == "fsrs":
        if conn.execute("SELECT to_regproc('fsrs_step') IS NULL").fetchone()[0]:
            raise DmdbError("this database has no FSRS (fsrs_step); run `dmdb up` (migration 0007)")
        cur = conn.execute("SELECT * FROM models_fsrs_report(%s, %s, %s)", (since, until, bins))
        section["fsrs"] = dict(zip([c.name for c in cur.description], cur.fetchone()))
    return section


def _session(conn) -> None:
    # The fit runs for seconds to a minute in one statement: a killed client is noticed
    # within a second and its statement cancelled, instead of running to the end.
    from dmdb.db import behind_pooler, die_with_client

    if not behind_pooler(conn):  # a pooled server connection is not ours to rename
        conn.execute("SET application_name = 'dmdb'")
    die_with_client(conn)


def _require(conn, function: str) -> None:
    _session(conn)
    found = conn.execute("SELECT to_regproc(%s) IS NOT NULL", (function,)).fetchone()[0]
    if not found:
        if conn.execute("SELECT to_regclass('_yoyo_migration') IS NULL").fetchone()[0]:
            from dmdb.errors import schema_missing

            raise schema_missing(conn.info.dbname, f"dmdb models ({function}())")
        raise DmdbError(f"the database has no {function}(); run `dmdb up` to apply the function "
                        "files")


def to_prometheus(rep: ModelReport) -> str:
    """The headline figures in the text exposition format, for `dmdb monitor`'s textfile
    collector or a scrape: alert when BKT's log loss nears the baseline's."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict, float | None]]) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if not samples:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {float(value)!r}" if text else f"{name} {float(value)!r}")

    o = rep.overall
    window_seconds = (rep.window.until - rep.window.since).total_seconds() if rep.window.since else None
    gauge("dmdb_models_answers", "question_answered events in the report window.",
          [({}, o.answers if o else 0)])
    gauge("dmdb_models_window_seconds", "Length of the report window.", [({}, window_seconds)])
    if o is not None:
        for metric, help_text in (
                ("log_loss", "Log loss of the predicted P(correct) over the window (lower is better)."),
                ("rmse_bins", "RMSE between predicted and observed correctness over calibration bins."),
                ("auc", "AUC of the predicted P(correct) against the outcome (0.5 = no skill).")):
            gauge(f"dmdb_models_{metric}", help_text,
                  [({"model": "bkt"}, getattr(o, metric)),
                   ({"model": "baseline"}, getattr(o, f"baseline_{metric}"))])
        gauge("dmdb_models_correct_ratio", "Share of correct answers in the window.",
              [({}, o.correct_rate)])
    for r in rep.scheduler.get("reviews", []):
        if r["gap"] == "all":
            gauge("dmdb_models_review_recall_ratio",
                  "Share of reviews (repeat answers of an item) answered correctly.",
                  [({"scheduler": rep.scheduler["scheduler"]}, r["recall_rate"])])
    fsrs = rep.scheduler.get("fsrs")
    if fsrs:
        gauge("dmdb_models_scheduler_reviews", "Reviews scored against the scheduler's predicted recall.",
              [({"scheduler": "fsrs"}, fsrs["reviews"])])
        for metric in METRICS:
            gauge(f"dmdb_models_scheduler_{metric}",
                  f"{metric} of the scheduler's predicted recall (retrievability) against review outcomes.",
                  [({"scheduler": "fsrs", "model": "fsrs"}, fsrs[metric]),
                   ({"scheduler": "fsrs", "model": "baseline"}, fsrs[f"baseline_{metric}"])])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ------------------------------------------------------------------------------ fit


@dataclass
class ConceptFit:
    concept_id: int
    concept_code: str | None
    status: str
    train_answers: int
    train_learners: int
    holdout_answers: int
    iterations: int
    converged: bool
    current_initial_knowledge: float
    current_learning_rate: float
    current_guess: float
    current_slip: float
    temporal_decay: float
    initial_knowledge: float | None
    learning_rate: float | None
    guess: float | None
    slip: float | None
    train_log_loss_before: float | None
    train_log_loss_after: float | None
    holdout_log_loss_before: float | None
    holdout_log_loss_after: float | None
    apply: bool = False
    reasons: list[str] = field(default_factory=list)
    # A fitted value pinned at a bound the EM keeps it within: the likelihood wanted it
    # beyond, so the data fit BKT poorly there (an item too easy to guess, mislabelled
    # answers); applied all the same when it beats the current parameters, but said.
    warnings: list[str] = field(default_factory=list)

    @property
    def fitted(self) -> dict[str, float | None]:
        return {"initial_knowledge": self.initial_knowledge, "learning_rate": self.learning_rate,
                "guess": self.guess, "slip": self.slip}


@dataclass
class FitResult:
    window: Window
    cutoff: datetime | None
    holdout: float
    concepts: list[ConceptFit]
    seconds: float = 0.0
    applied: list[int] = field(default_factory=list)
    dry_run: bool = False
    apply_requested: bool = False
    minimums: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "window": self.window.to_dict(),
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "holdout": self.holdout,
            "minimums": self.minimums,
            "seconds": round(self.seconds, 3),
            "apply": self.apply_requested,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "concepts": [asdict(c) for c in self.concepts],
        }


def verdict(c: ConceptFit, *, min_holdout: int = MIN_HOLDOUT) -> list[str]:
    """Why this concept's fit must not be applied ([] = it may)."""
    if c.status != "fitted":
        return [f"too few answers to fit ({c.train_answers} from {c.train_learners} learners)"]
    reasons: list[str] = []
    for name, value in c.fitted.items():
        low, high = RANGES[name]
        if value is None or not math.isfinite(value) or not low <= value <= high:
            reasons.append(f"{name} {value} outside {low}..{high}")
    if c.guess is not None and c.slip is not None and c.guess + c.slip >= 1:
        reasons.append(f"degenerate: guess + slip = {c.guess + c.slip:.3f} >= 1")
    if c.holdout_answers < min_holdout:
        reasons.append(f"{c.holdout_answers} held-out answers (< {min_holdout}) cannot show an "
                       "improvement")
    elif (c.holdout_log_loss_after is None or c.holdout_log_loss_before is None
          or not math.isfinite(c.holdout_log_loss_after)
          or not c.holdout_log_loss_after < c.holdout_log_loss_before):
        reasons.append(f"held-out log loss {_fmt(c.holdout_log_loss_after)} does not beat the "
                       f"current {_fmt(c.holdout_log_loss_before)}")
    return reasons


# The bounds models_bkt_fit's EM keeps each parameter within (sql/functions/models_fit.sql),
# and how close to one counts as pinned there: guess and slip stop at 0.5 (beyond it a
# correct answer no longer means knowing), L0 and T at 1e-6 and 1 - 1e-6.
EM_BOUNDS = {"initial_knowledge": (1e-6, 1 - 1e-6), "learning_rate": (1e-6, 1 - 1e-6),
             "guess": (1e-6, 0.5), "slip": (1e-6, 0.5)}
PINNED_WITHIN = {"initial_knowledge": 1e-4, "learning_rate": 1e-4, "guess": 1e-3,
                 "slip": 1e-3}


def pinned(c: ConceptFit) -> list[str]:
    """The fitted parameters that sit on (within PINNED_WITHIN of) a bound of the EM."""
    if c.status != "fitted":
        return []
    out = []
    for name, value in c.fitted.items():
        if value is None or not math.isfinite(value):
            continue
        for bound in EM_BOUNDS[name]:
            if abs(value - bound) <= PINNED_WITHIN[name]:
                out.append(f"{name} {value:.4g} pinned at its bound {bound:g}: the fit wanted "
                           "it beyond, so BKT describes this concept's answers poorly; check "
                           "its items before relying on it")
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def check_fit_options(*, holdout: float, max_iterations: int, tolerance: float, min_answers: int,
                      min_learners: int, min_holdout: int) -> None:
    if not 0 < holdout < 1:
        raise ConfigError(f"--holdout must be a fraction between 0 and 1, got {holdout}")
    if max_iterations < 1 or not tolerance >= 0 or min_answers < 1 or min_learners < 1 or min_holdout < 1:
        raise ConfigError("--max-iterations, --min-answers, --min-learners and --min-holdout must be "
                          "1 or more, --tolerance 0 or more")


def fit(conn, win: Window, *, holdout: float = HOLDOUT, max_iterations: int = MAX_ITERATIONS,
        tolerance: float = TOLERANCE, min_answers: int = MIN_ANSWERS,
        min_learners: int = MIN_LEARNERS, min_holdout: int = MIN_HOLDOUT,
        apply: bool = False, dry_run: bool = False) -> FitResult:
    """Fit every concept's BKT parameters on the window's answers before the time cutoff,
    score them on the answers after it; with `apply`, write the ones that may be applied
    (`verdict`) into bkt_concept_parameters in one transaction (nothing with dry_run)."""
    import time

    check_fit_options(holdout=holdout, max_iterations=max_iterations, tolerance=tolerance,
                      min_answers=min_answers, min_learners=min_learners, min_holdout=min_holdout)
    _require(conn, "models_bkt_fit")
    if apply and conn.execute("SELECT to_regclass('bkt_concept_parameters') IS NULL").fetchone()[0]:
        raise DmdbError("the database has no bkt_concept_parameters table; run `dmdb up` "
                        "(migration 0007) before `models fit --apply`")
    started = time.monotonic()
    since, until = win.bounds()
    # The cutoff and the fit read one snapshot: answers arriving meanwhile are in neither.
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cutoff = conn.execute(resources.query("models_cutoff"),
                              {"since": since, "until": until, "q": 1 - holdout}).fetchone()[0]
        rows, cols = [], []
        if cutoff is not None:
            cur = conn.execute("SELECT * FROM models_bkt_fit(%s, %s, %s, %s, %s, %s, %s)",
                               (since, until, cutoff, max_iterations, tolerance, min_answers,
                                min_learners))
            cols = [c.name for c in cur.description]
            rows = cur.fetchall()
    result = FitResult(win, cutoff, holdout, [], dry_run=dry_run, apply_requested=apply,
                       minimums={"answers": min_answers, "learners": min_learners,
                                 "holdout_answers": min_holdout})
    for row in rows:
        c = ConceptFit(**dict(zip(cols, row)))
        c.reasons = verdict(c, min_holdout=min_holdout)
        c.apply = not c.reasons
        c.warnings = pinned(c)
        result.concepts.append(c)
    if apply and not dry_run:
        chosen = [c for c in result.concepts if c.apply]
        if chosen:
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(resources.query("models_apply"), [
                        {"concept_id": c.concept_id, "initial_knowledge": c.initial_knowledge,
                         "learning_rate": c.learning_rate, "guess": c.guess, "slip": c.slip,
                         "temporal_decay": c.temporal_decay, "answers_used": c.train_answers}
                        for c in chosen])
            result.applied = [c.concept_id for c in chosen]
    result.seconds = time.monotonic() - started
    return result
