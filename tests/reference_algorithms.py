"""Independent, exact Python implementations of the learning algorithms (DESIGN.md).

Written from DESIGN.md's formulas, not from the SQL, so that the tests compare two
implementations, and computed EXACTLY, so that floating-point drift in the SQL cannot
hide behind the same drift here:
- SM-2 in rational arithmetic (fractions.Fraction): EF 2.5 + 0.1 is 13/5, and
  ceil(6 × 3/2) is 9, never 10;
- BKT and IRT with 60-digit decimals (decimal.Decimal): the value of the formula for
  the given (binary) inputs, where a double would underflow or divide 0 by 0;
- FSRS-6 by the reference package itself (py-fsrs, `fsrs` 6.3.2, fuzzing off).

Conventions the SQL documents and that are mirrored here (they are definitions, not
float workarounds): no decay for Δdays <= 0; an evidence step whose numerator and
denominator are both exactly 0 (an answer the model says is impossible) leaves p0
unchanged; the SM-2 interval is capped at 36,500 days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext
from fractions import Fraction

MASTERY_EVENT_THRESHOLD = Decimal("0.95")
XP_CORRECT = 10
XP_INCORRECT = 2
SM2_MAX_INTERVAL = 36500
DIGITS = 60
# 60 digits, and exponents wide enough that nothing here overflows or underflows.
EXACT = Context(prec=DIGITS, Emax=MAX_EMAX, Emin=MIN_EMIN)

D0, D1 = Decimal(0), Decimal(1)


def dec(x) -> Decimal:
    """The exact value of a float (or int, str, Decimal) as a Decimal."""
    return x if isinstance(x, Decimal) else Decimal(x)


# -- BKT (60 digits) -------------------------------------------------------------------


def bkt_forget(mastery, decay, delta_days) -> Decimal:
    """Step 1: p0 = mastery × decay^Δdays (Δdays <= 0: no decay)."""
    m, d, dd = dec(mastery), dec(decay), dec(delta_days)
    with localcontext(EXACT):
        if dd <= 0 or d == 1:
            return +m
        if m <= 0 or d <= 0:
            return D0
        return m * (dd * d.ln()).exp()


def bkt_forget_complement(mastery, decay, delta_days) -> Decimal:
    """1 − p0 to 60 significant digits, also where p0 is within 1e−60 of 1 (a tiny gap
    at mastery 1: 1 − 0.9^1e−151 > 0, while p0 itself rounds to 1 in 60 digits)."""
    m, d, dd = dec(mastery), dec(decay), dec(delta_days)
    with localcontext(EXACT):
        if dd <= 0 or d == 1:
            return 1 - m
        if m <= 0 or d <= 0:
            return D1
        x = dd * d.ln()
    # 1 − m·e^x cancels about −log10|x| digits: carry that many more
    wide = Context(prec=DIGITS + max(0, -x.adjusted()) + 5, Emax=MAX_EMAX, Emin=MIN_EMIN)
    with localcontext(wide):
        q0 = 1 - m * x.exp()
    with localcontext(EXACT):
        return +q0


def bkt_evidence(p0: Decimal, correct: bool, guess, slip, q0: Decimal | None = None) -> Decimal:
    """Step 2: P(mastered | answer) = a / (a + b); a = b = 0 → p0. q0 = 1 − p0 when
    given (exact where p0 rounds to 1)."""
    g, s = dec(guess), dec(slip)
    with localcontext(EXACT):
        if q0 is None:
            q0 = 1 - p0
        a, b = (p0 * (1 - s), q0 * g) if correct else (p0 * s, q0 * (1 - g))
        if a + b == 0:
            return p0
        return a / (a + b)


def bkt_learn(p1: Decimal, learning_rate, velocity) -> Decimal:
    """Step 3: p1 + (1 − p1)·min(1, learning_rate × velocity), clamped to [0, 1]."""
    with localcontext(EXACT):
        rate = min(D1, dec(learning_rate) * dec(velocity))
        return min(D1, max(D0, p1 + (1 - p1) * rate))


def bkt_predict_correct(mastery, decay, delta_days, guess, slip) -> Decimal:
    p0 = bkt_forget(mastery, decay, delta_days)
    q0 = bkt_forget_complement(mastery, decay, delta_days)
    with localcontext(EXACT):
        return p0 * (1 - dec(slip)) + q0 * dec(guess)


def bkt_posterior(p0, correct, guess, slip, learning_rate, velocity) -> Decimal:
    """Steps 2 (evidence) and 3 (learning) from p0 itself."""
    return bkt_learn(bkt_evidence(dec(p0), correct, guess, slip), learning_rate, velocity)


def bkt_update(mastery, decay, delta_days, correct, guess, slip, learning_rate, velocity) -> Decimal:
    p0 = bkt_forget(mastery, decay, delta_days)
    q0 = bkt_forget_complement(mastery, decay, delta_days)
    return bkt_learn(bkt_evidence(p0, correct, guess, slip, q0), learning_rate, velocity)


# -- SM-2 (exact rationals), quality, IRT ------------------------------------------------


def frac(x) -> Fraction:
    """A decimal EF (str, Decimal, int) as an exact fraction; floats are refused."""
    if isinstance(x, float):
        raise TypeError("SM-2 easiness must be exact (str, Decimal, Fraction), not float")
    return Fraction(str(x)) if isinstance(x, Decimal) else Fraction(x)


SM2_START = Fraction(5, 2)
SM2_FLOOR = Fraction(13, 10)


def sm2_step(easiness, interval_days: int, repetitions: int, quality: int):
    """(easiness, interval_days, repetitions) after a review of quality 0..5, exactly."""
    if not 0 <= quality <= 5:
        raise ValueError(f"quality {quality} outside 0..5")
    ef = frac(easiness)
    if quality < 3:
        reps, interval = 0, 1
    else:
        if repetitions == 0:
            interval = 1
        elif repetitions == 1:
            interval = 6
        else:
            interval = min(SM2_MAX_INTERVAL, math.ceil(interval_days * ef))
        reps = repetitions + 1
    k = 5 - quality
    new_ef = max(SM2_FLOOR, ef + Fraction(1, 10) - k * (Fraction(8, 100) + k * Fraction(2, 100)))
    return new_ef, interval, reps


def sm2_replay(qualities, easiness=SM2_START, interval_days=0, repetitions=0):
    """The SM-2 state after a sequence of qualities from the given state."""
    for q in qualities:
        easiness, interval_days, repetitions = sm2_step(easiness, interval_days, repetitions, q)
    return easiness, interval_days, repetitions


def answer_quality(is_correct: bool, hints_used: int | None, response_time_ms,
                   average_response_time_ms) -> int:
    if not is_correct:
        return 1
    if (hints_used or 0) > 0:
        return 3
    if average_response_time_ms is None or (
        response_time_ms is not None and response_time_ms <= average_response_time_ms
    ):
        return 5
    return 4


def fsrs_rating(quality: int) -> int:
    """The FSRS rating (Again 1, Hard 2, Good 3, Easy 4) from SM-2's quality 0..5."""
    return 1 if quality < 3 else quality - 1


def irt_probability(theta, difficulty, discrimination, guess) -> Decimal:
    with localcontext(EXACT):
        x = Decimal("-1.7") * dec(discrimination) * (dec(theta) - dec(difficulty))
        c = dec(guess)
        return c + (1 - c) / (1 + x.exp())


# -- record_answer replay ---------------------------------------------------------------


def days_between(earlier: datetime, later: datetime) -> Decimal:
    """(later − earlier) in days, exactly (microseconds / 86,400,000,000)."""
    td = later - earlier
    micros = (td.days * 86400 + td.seconds) * 10**6 + td.microseconds
    with localcontext(EXACT):
        return Decimal(micros) / Decimal(86400 * 10**6)


@dataclass
class KnowledgeState:
    initial_knowledge: float = 0.1
    learning_rate: float = 0.15
    guess: float = 0.2
    slip: float = 0.1
    mastery: Decimal | float = 0.1
    decay: float = 0.98
    velocity: float = 1.0
    last_interaction: datetime | None = None
    attempts: int = 0
    correct_attempts: int = 0
    mastered_at: datetime | None = None


@dataclass
class ReviewState:
    easiness: Fraction = SM2_START
    interval_days: int = 0
    repetitions: int = 0
    next_review_at: datetime | None = None
    last_quality: int | None = None
    last_reviewed_at: datetime | None = None
    sm2_due: datetime | None = None
    fsrs_card: object | None = None   # fsrs.Card, or None before the first answer
    fsrs_due: datetime | None = None


@dataclass
class UserState:
    xp: int = 0
    current_streak: int = 0
    longest_streak: int = 0
    last_active_date: date | None = None


@dataclass
class Outcome:
    mastery_before: Decimal
    mastery: Decimal
    predicted_correct: Decimal
    quality: int
    next_review_at: datetime
    newly_mastered: bool


def fsrs_review(scheduler, card, rating: int, at: datetime):
    """One FSRS review by py-fsrs; the last review kept is the later one (dmdb's
    out-of-order rule: py-fsrs would move it back to an older answer's time)."""
    from fsrs import Card, Rating

    if card is None:
        card = Card(card_id=1, due=at)
    before = card.last_review
    card, _ = scheduler.review_card(card, Rating(rating), at)
    if before is not None and before > at:
        card.last_review = before
    return card


@dataclass
class Learner:
    """The per-user state record_answer maintains, replayed in Python."""

    user: UserState = field(default_factory=UserState)
    knowledge: dict[int, KnowledgeState] = field(default_factory=dict)
    reviews: dict[int, ReviewState] = field(default_factory=dict)
    scheduler: str = "sm2"
    fsrs_scheduler: object | None = None
    concept_parameters: dict[int, dict] = field(default_factory=dict)

    def answer(self, concept_id: int, content_id: int, is_correct: bool, response_time_ms: int,
               answered_at: datetime, hints_used: int = 0, quality: int | None = None,
               average_response_time_ms: float | None = None) -> Outcome:
        if concept_id not in self.knowledge:
            fitted = self.concept_parameters.get(concept_id)
            self.knowledge[concept_id] = (
                KnowledgeState(**fitted, mastery=fitted["initial_knowledge"]) if fitted
                else KnowledgeState())
        ks = self.knowledge[concept_id]
        if ks.last_interaction is None:
            p0 = dec(ks.initial_knowledge)
        else:
            p0 = bkt_forget(ks.mastery, ks.decay, max(D0, days_between(ks.last_interaction, answered_at)))
        with localcontext(EXACT):
            predicted = p0 * (1 - dec(ks.slip)) + (1 - p0) * dec(ks.guess)
        mastery = bkt_posterior(p0, is_correct, ks.guess, ks.slip, ks.learning_rate, ks.velocity)
        newly = ks.mastered_at is None and mastery >= MASTERY_EVENT_THRESHOLD
        self.knowledge[concept_id] = replace(
            ks, mastery=mastery,
            last_interaction=max(filter(None, [ks.last_interaction, answered_at])),
            attempts=ks.attempts + 1, correct_attempts=ks.correct_attempts + int(is_correct),
            mastered_at=answered_at if newly else ks.mastered_at)

        q = quality if quality is not None else answer_quality(
            is_correct, hints_used, response_time_ms, average_response_time_ms)
        rs = self.reviews.setdefault(content_id, ReviewState())
        ef, interval, reps = sm2_step(rs.easiness, rs.interval_days, rs.repetitions, q)
        sm2_due = answered_at + timedelta(days=interval)
        card = rs.fsrs_card
        if self.fsrs_scheduler is not None:
            card = fsrs_review(self.fsrs_scheduler, card, fsrs_rating(q), answered_at)
        next_at = card.due if self.scheduler == "fsrs" else sm2_due
        self.reviews[content_id] = ReviewState(
            ef, interval, reps, next_at, q,
            max(filter(None, [rs.last_reviewed_at, answered_at])), sm2_due, card,
            card.due if card is not None else None)

        day = answered_at.astimezone(timezone.utc).date()
        u = self.user
        streak = u.current_streak
        last = u.last_active_date
        if last is None or day > last + timedelta(days=1):
            streak, last = 1, day
        elif day == last + timedelta(days=1):
            streak, last = streak + 1, day
        self.user = UserState(u.xp + (XP_CORRECT if is_correct else XP_INCORRECT), streak,
                              max(u.longest_streak, streak), last)
        return Outcome(p0, mastery, predicted, q, next_at, newly)


# -- next_questions ---------------------------------------------------------------------


def ucb_order(arms: list[tuple[int, int, float, float]]) -> list[int]:
    """arms: (content_id, pulls, reward_sum, concept_total_pulls) → content ids, best first."""

    def key(arm):
        content_id, pulls, reward_sum, n = arm
        if pulls == 0:
            return (0, 0.0, content_id)
        score = reward_sum / pulls + math.sqrt(2 * math.log(max(n, pulls)) / pulls)
        return (1, -score, content_id)

    return [a[0] for a in sorted(arms, key=key)]
