"""dmdb models: the report equals an independent computation over the same rows, the fit
recovers the parameters of simulated BKT learners, --apply changes what new knowledge
states start from, and the refusals."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import psycopg
import pytest

from conftest import run_sql
from dmdb.learning import models, seed, simulation

# The simulated truth: three concepts, 600 learners × 10 answers each (6,000 answers per
# concept). Stated tolerance of the recovery at this size (absolute): initial knowledge
# ±0.10, learning rate, guess and slip ±0.05 (measured over random seeds 1-4: at most
# 0.07 on initial knowledge, 0.03 on the others).
TRUTH = {"signs": simulation.Truth(0.3, 0.2, 0.25, 0.1),
         "road_markings": simulation.Truth(0.1, 0.08, 0.15, 0.05),
         "speed_limits": simulation.Truth(0.5, 0.3, 0.3, 0.15)}
TOLERANCE = {"initial_knowledge": 0.10, "learning_rate": 0.05, "guess": 0.05, "slip": 0.05}
LEARNERS, ANSWERS = 600, 10
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = START + timedelta(days=12)


@pytest.fixture(scope="module")
def sim_db(databases):
    """A database with the catalogue and the simulated learners (read by every test but
    the last, which applies a fit)."""
    name = databases.create(schema=True)
    url = databases.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        ids, _ = seed.load_reference(conn, seed.load_catalogue())
        truth = {ids[code]: t for code, t in TRUTH.items()}
        simulation.simulate(conn, truth, learners=LEARNERS, answers=ANSWERS, start=START,
                            span=timedelta(days=10), random_seed=1)
    yield url, ids
    databases.drop(name)


# --------------------------------------------------------------- the report


def _reference(rows, bins: int) -> dict:
    """The report's figures from the raw rows, computed independently: math.fsum for the
    log loss and the bins, exact fractions for the AUC (rank sum with tied ranks)."""
    eps = 1e-9
    rows = [(c, y, min(max(p, eps), 1 - eps)) for c, y, p in rows]
    n_all = len(rows)
    ybar = min(max(sum(y for _, y, _ in rows) / n_all, eps), 1 - eps)

    def metrics(subset):
        n = len(subset)
        pos = sum(y for _, y, _ in subset)
        ll = -math.fsum(math.log(p) if y else math.log(1 - p) for _, y, p in subset) / n
        by_bin = defaultdict(list)
        for _, y, p in subset:
            by_bin[min(math.floor(p * bins), bins - 1)].append((y, p))
        rmse = math.sqrt(math.fsum(
            len(v) * (math.fsum(p for _, p in v) / len(v) - sum(y for y, _ in v) / len(v)) ** 2
            for v in by_bin.values()) / n)
        auc = None
        if 0 < pos < n:
            ordered = sorted(p for _, _, p in subset)
            first, count = {}, defaultdict(int)
            for i, p in enumerate(ordered, start=1):
                first.setdefault(p, i)
                count[p] += 1
            rank_sum = sum(Fraction(2 * first[p] + count[p] - 1, 2) for _, y, p in subset if y)
            auc = float((rank_sum - Fraction(pos * (pos + 1), 2)) / (pos * (n - pos)))
        base_ll = -(pos * math.log(ybar) + (n - pos) * math.log(1 - ybar)) / n
        return {"answers": n, "correct": pos, "log_loss": ll, "rmse_bins": rmse, "auc": auc,
                "baseline_log_loss": base_ll, "baseline_rmse_bins": abs(ybar - pos / n),
                "mean_predicted": math.fsum(p for _, _, p in subset) / n}

    out = {None: metrics(rows)}
    for c in {c for c, _, _ in rows}:
        out[c] = metrics([r for r in rows if r[0] == c])
    return out


def test_report_equals_an_independent_computation(cli, sim_db):
    url, _ = sim_db
    # A window that cuts the simulated history on both sides: the bounds are [since, until).
    since, until = START + timedelta(days=3), START + timedelta(days=9)
    rows = run_sql(url, "SELECT concept_id, is_correct::int, "
                        "(response_data->>'predicted_correct')::float8 FROM learning_events "
                        "WHERE event_type = 'question_answered' AND occurred_at >= %s "
                        "AND occurred_at < %s", (since, until))
    total = run_sql(url, "SELECT count(*) FROM learning_events WHERE event_type = 'question_answered'")
    assert 0 < len(rows) < total[0][0]
    # BKT's predictions tie (every first answer of a concept predicts from L0): the AUC's
    # tie handling is exercised.
    assert len({p for _, _, p in rows}) < len(rows)
    bins = 10
    expected = _reference(rows, bins)

    result = cli(["models", "report", "--since", since.isoformat(), "--until", until.isoformat(),
                  "--bins", bins, "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    got = {c["concept_id"]: c for c in [data["overall"], *data["concepts"]]}
    assert set(got) == set(expected)
    assert data["answers"] == len(rows)
    for key, want in expected.items():
        have = got[key]
        assert (have["answers"], have["correct"]) == (want["answers"], want["correct"])
        for metric in ("log_loss", "rmse_bins", "auc", "mean_predicted"):
            value = have["bkt"][metric]
            if want[metric] is None:
                assert value is None
            else:
                assert value == pytest.approx(want[metric], abs=1e-9), (key, metric)
        assert have["baseline"]["log_loss"] == pytest.approx(want["baseline_log_loss"], abs=1e-9)
        assert have["baseline"]["rmse_bins"] == pytest.approx(want["baseline_rmse_bins"], abs=1e-9)
    # The model beats the constant baseline on data that follows BKT.
    assert got[None]["bkt"]["auc"] > 0.6
    assert data["scheduler"]["scheduler"] == "sm2" and data["scheduler"]["predicts_recall"] is False


def test_report_prometheus_and_empty_window(cli, sim_db):
    from prometheus_client.parser import text_string_to_metric_families

    url, _ = sim_db
    result = cli(["models", "report", "--since", START.isoformat(), "--until", END.isoformat(),
                  "--format", "prometheus"], url=url)
    assert result.exit_code == 0, result.stderr
    samples = {(s.name, s.labels.get("model")): s.value
               for f in text_string_to_metric_families(result.stdout) for s in f.samples}
    assert samples[("dmdb_models_answers", None)] == len(TRUTH) * LEARNERS * ANSWERS
    assert samples[("dmdb_models_log_loss", "bkt")] > 0
    assert samples[("dmdb_models_auc", "baseline")] == 0.5

    empty = cli(["models", "report", "--since", "2020-01-01T00:00:00Z", "--until",
                 "2020-02-01T00:00:00Z", "--json"], url=url)
    assert empty.exit_code == 0, empty.stderr
    data = json.loads(empty.stdout)
    assert data["answers"] == 0 and data["overall"] is None and data["concepts"] == []


def _has(url: str, regproc: str) -> bool:
    return run_sql(url, "SELECT to_regproc(%s) IS NOT NULL", (regproc,))[0][0]


def test_fsrs_section_equals_a_py_fsrs_replay(cli, schema_url):
    """FSRS-6's retrievability before each review, replayed by py-fsrs (the reference
    implementation) over the same events, gives the same figures."""
    from fsrs import Card, Rating, Scheduler

    if not _has(schema_url, "fsrs_step"):
        pytest.skip("FSRS (migration 0007) is not in this schema")
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    seeded = cli(["seed", "seed", "--users", "30", "--answers", "60", "--days", "60", "--quiet",
                  "--now", now.isoformat()], url=schema_url)
    assert seeded.exit_code == 0, seeded.stderr
    since = now - timedelta(days=30)
    result = cli(["models", "report", "--since", since.isoformat(), "--until", now.isoformat(),
                  "--scheduler", "fsrs", "--json"], url=schema_url)
    assert result.exit_code == 0, result.stderr
    section = json.loads(result.stdout)["scheduler"]
    assert section["scheduler"] == "fsrs" and section["in_use"] is False
    got = section["fsrs"]

    settings = run_sql(schema_url, "SELECT fsrs_parameters, fsrs_desired_retention, "
                                   "fsrs_learning_steps, fsrs_relearning_steps, "
                                   "fsrs_maximum_interval FROM algorithm_settings")[0]
    scheduler = Scheduler(parameters=settings[0], desired_retention=settings[1],
                          learning_steps=[timedelta(seconds=s) for s in settings[2]],
                          relearning_steps=[timedelta(seconds=s) for s in settings[3]],
                          maximum_interval=settings[4], enable_fuzzing=False)
    events = run_sql(schema_url, """
        SELECT user_id, content_id, occurred_at, quality, is_correct FROM learning_events e
         WHERE event_type = 'question_answered' AND occurred_at < %(until)s
           AND (user_id, content_id) IN (SELECT user_id, content_id FROM learning_events
                                          WHERE event_type = 'question_answered'
                                            AND occurred_at >= %(since)s AND occurred_at < %(until)s)
         ORDER BY user_id, content_id, occurred_at, event_id""", {"since": since, "until": now})
    scored, same_day, cards = [], 0, {}
    for user, content, at, quality, correct in events:
        at = at.astimezone(timezone.utc)
        card = cards.get((user, content)) or Card()
        if at >= since and card.stability is not None:
            if (at - card.last_review).days >= 1:
                scored.append((None, int(correct), scheduler.get_card_retrievability(card, at)))
            else:
                same_day += 1
        rating = Rating(1 if quality < 3 else quality - 1)
        cards[(user, content)], _ = scheduler.review_card(card, rating, at)
    assert len(scored) > 50 and same_day > 0
    want = _reference(scored, 20)[None]
    assert (got["reviews"], got["same_day_reviews"], got["recalled"]) == (
        want["answers"], same_day, want["correct"])
    for metric in ("log_loss", "rmse_bins", "auc", "mean_predicted", "baseline_log_loss"):
        assert got[metric] == pytest.approx(want[metric], abs=1e-9), metric

    # The scheduler in use is the section's default.
    run_sql(schema_url, "SELECT set_scheduler('fsrs')")
    again = cli(["models", "report", "--since", since.isoformat(), "--until", now.isoformat(),
                 "--json"], url=schema_url)
    assert json.loads(again.stdout)["scheduler"]["scheduler"] == "fsrs"
    assert json.loads(again.stdout)["scheduler"]["in_use"] is True


# ------------------------------------------------------------------ the fit


def test_fit_recovers_simulated_parameters_and_improves_held_out_loss(cli, sim_db):
    url, ids = sim_db
    result = cli(["models", "fit", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    by_id = {c["concept_id"]: c for c in data["concepts"]}
    assert set(by_id) == {ids[code] for code in TRUTH}
    for code, truth in TRUTH.items():
        c = by_id[ids[code]]
        assert c["status"] == "fitted" and c["apply"], c["reasons"]
        assert c["train_answers"] + c["holdout_answers"] == LEARNERS * ANSWERS
        assert c["holdout_answers"] == pytest.approx(0.2 * LEARNERS * ANSWERS, rel=0.1)
        for name, want in (("initial_knowledge", truth.initial_knowledge),
                           ("learning_rate", truth.learning_rate), ("guess", truth.guess),
                           ("slip", truth.slip)):
            assert abs(c[name] - want) <= TOLERANCE[name], (code, name, c[name], want)
        assert c["holdout_log_loss_after"] < c["holdout_log_loss_before"]
        assert c["train_log_loss_after"] <= c["train_log_loss_before"]
    # The time split: every held-out answer is at or after the cutoff.
    cutoff = datetime.fromisoformat(data["cutoff"])
    held = run_sql(url, "SELECT count(*) FROM learning_events WHERE event_type = 'question_answered' "
                        "AND occurred_at >= %s", (cutoff,))[0][0]
    assert held == sum(c["holdout_answers"] for c in data["concepts"])


def test_fit_leaves_out_sequences_that_began_before_the_window(cli, sim_db):
    url, _ = sim_db
    # Cut one learner's sequence in the middle (its 5th answer), somewhere mid-history.
    since = run_sql(url, """
        SELECT occurred_at FROM learning_events
         WHERE event_type = 'question_answered'
           AND user_id = (SELECT min(user_id) FROM learning_events
                           WHERE occurred_at >= %s AND event_type = 'question_answered')
         ORDER BY occurred_at OFFSET 4 LIMIT 1""", (START + timedelta(days=5),))[0][0]
    expected = dict(run_sql(url, """
        SELECT concept_id, count(*) FROM learning_events e
         WHERE event_type = 'question_answered' AND occurred_at >= %(since)s
           AND NOT EXISTS (SELECT 1 FROM learning_events b
                            WHERE b.user_id = e.user_id AND b.concept_id = e.concept_id
                              AND b.event_type = 'question_answered' AND b.occurred_at < %(since)s)
         GROUP BY concept_id""", {"since": since}))
    result = cli(["models", "fit", "--since", since.isoformat(), "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    got = {c["concept_id"]: c["train_answers"] + c["holdout_answers"]
           for c in json.loads(result.stdout)["concepts"]}
    assert got == expected
    in_window = run_sql(url, "SELECT count(*) FROM learning_events WHERE event_type = "
                             "'question_answered' AND occurred_at >= %s", (since,))[0][0]
    assert 0 < sum(got.values()) < in_window


def test_fit_guards_too_few_answers(cli, sim_db):
    url, ids = sim_db
    result = cli(["models", "fit", "--min-answers", LEARNERS * ANSWERS, "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    for c in json.loads(result.stdout)["concepts"]:
        assert c["status"] == "too_few_answers" and not c["apply"]
        assert c["initial_knowledge"] is None and c["iterations"] == 0


def _fit(**overrides) -> models.ConceptFit:
    values = dict(concept_id=1, concept_code="x", status="fitted", train_answers=1000,
                  train_learners=100, holdout_answers=200, iterations=5, converged=True,
                  current_initial_knowledge=0.1, current_learning_rate=0.15, current_guess=0.2,
                  current_slip=0.1, temporal_decay=0.98, initial_knowledge=0.3, learning_rate=0.2,
                  guess=0.25, slip=0.1, train_log_loss_before=0.6, train_log_loss_after=0.5,
                  holdout_log_loss_before=0.6, holdout_log_loss_after=0.55)
    values.update(overrides)
    return models.ConceptFit(**values)


@pytest.mark.parametrize("overrides, reason", [
    ({}, None),
    ({"guess": 0.5, "slip": 0.5}, "guess + slip"),
    ({"guess": 0.6}, "guess 0.6 outside"),
    ({"slip": -0.01}, "slip -0.01 outside"),
    ({"learning_rate": float("nan")}, "learning_rate nan outside"),
    ({"holdout_log_loss_after": 0.6}, "does not beat"),
    ({"holdout_answers": 10}, "held-out answers"),
    ({"status": "too_few_answers"}, "too few answers"),
])
def test_verdict(overrides, reason):
    reasons = models.verdict(_fit(**overrides), min_holdout=50)
    if reason is None:
        assert reasons == []
    else:
        assert any(reason in r for r in reasons), reasons


@pytest.mark.parametrize("args, message", [
    (["fit", "--holdout", "1.5"], "--holdout"),
    (["fit", "--days", "0"], "--days"),
    (["report", "--since", "yesterday"], "--since"),
    (["report", "--since", "2026-11-10T00:00:00Z", "--until", "2026-11-01T00:00:00Z"], "empty"),
    (["report", "--format", "xml"], "--format"),
    (["report", "--bins", "1"], "--bins"),
    (["report", "--scheduler", "anki"], "--scheduler"),
    (["fit", "--max-iterations", "0"], "--max-iterations"),
    (["fit", "--since", "2026-11-01T00:00:00Z", "--days", "3"], "not both"),
    (["report", "--days", "1e308"], "--days must be at most 36500"),  # was OverflowError
    (["fit", "--days", "inf"], "--days"),
])
def test_usage_errors_are_one_line(cli, schema_url, args, message):
    result = cli(["models", *args], url=schema_url)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmdb: error:") and message in lines[0]


def test_database_without_the_functions_says_run_up(cli, empty_url):
    for args in (["report"], ["fit"]):
        result = cli(["models", *args], url=empty_url)
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "dmdb up" in lines[0], lines


# ---------------------------------------------------------------- --apply (last: it writes)


def test_apply_changes_what_new_knowledge_states_start_from(cli, sim_db):
    url, ids = sim_db
    if not run_sql(url, "SELECT to_regclass('bkt_concept_parameters') IS NOT NULL")[0][0]:
        pytest.skip("bkt_concept_parameters (migration 0007) is not in this schema")
    nothing = cli(["models", "fit", "--apply", "--min-answers", LEARNERS * ANSWERS], url=url)
    assert nothing.exit_code == 1
    assert nothing.stderr.strip().splitlines()[-1].startswith("dmdb: error: no concept's fit")
    assert "Wrote" not in nothing.stdout  # no success line beside the error
    dry = cli(["models", "fit", "--apply", "--dry-run", "--json"], url=url)
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["applied"] == []
    assert run_sql(url, "SELECT count(*) FROM bkt_concept_parameters")[0][0] == 0

    result = cli(["models", "fit", "--apply", "--json"], url=url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    fitted = {c["concept_id"]: c for c in data["concepts"]}
    assert sorted(data["applied"]) == sorted(ids[code] for code in TRUTH)
    stored = {r[0]: r[1:] for r in run_sql(
        url, "SELECT concept_id, initial_knowledge, learning_rate, guess_parameter, slip_parameter, "
             "temporal_decay, answers_used FROM bkt_concept_parameters")}
    for cid, row in stored.items():
        c = fitted[cid]
        assert row == (c["initial_knowledge"], c["learning_rate"], c["guess"], c["slip"],
                       c["temporal_decay"], c["train_answers"])

    # A new learner's first answer on a fitted concept starts from the fitted parameters.
    signs = fitted[ids["signs"]]
    with psycopg.connect(url, autocommit=True) as conn:
        user = conn.execute("INSERT INTO users (email, display_name) VALUES ('new@sim.test', 'New') "
                            "RETURNING user_id").fetchone()[0]
        item = conn.execute("SELECT min(content_id) FROM content WHERE concept_id = %s",
                            (ids["signs"],)).fetchone()[0]
        predicted = conn.execute(
            "SELECT predicted_correct FROM record_answer(%s, %s, true, 4000, p_answered_at => %s)",
            (user, item, END + timedelta(days=1))).fetchone()[0]
        ks = conn.execute("SELECT initial_knowledge, learning_rate, guess_parameter, slip_parameter "
                          "FROM knowledge_states WHERE user_id = %s", (user,)).fetchone()
    assert ks == (signs["initial_knowledge"], signs["learning_rate"], signs["guess"], signs["slip"])
    l0, guess, slip = signs["initial_knowledge"], signs["guess"], signs["slip"]
    assert predicted == pytest.approx(l0 * (1 - slip) + (1 - l0) * guess, abs=1e-12)
    assert ks != (0.1, 0.15, 0.2, 0.1)
