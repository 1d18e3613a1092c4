"""Independent Python implementations of the learning algorithms (DESIGN.md).

Written from DESIGN.md's formulas, not from the SQL, so that the tests compare two
implementations. The few guards the SQL documents (no decay for Δdays <= 0, decay that
would underflow is 0, an evidence denominator of 0 keeps p0, results clamped to [0, 1],
SM-2 interval capped at 36,500 days) are mirrored here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

MASTERY_EVENT_THRESHOLD = 0.95
XP_CORRECT = 10
XP_INCORRECT = 2
SM2_MAX_INTERVAL = 36500


# -- BKT ------------------------------------------------------------------------------


def bkt_forget(mastery: float, decay: float, delta_days: float) -> float:
    """Step 1: p0 = mastery × decay^Δdays."""
    if delta_days <= 0 or decay == 1:
        return mastery
    if mastery <= 0 or decay <= 0:
        return 0.0
    if math.log(mastery) + delta_days * math.log(decay) < -700:
        return 0.0
    return mastery * decay**delta_days


def bkt_predict_correct(mastery, decay, delta_days, guess, slip) -> float:
    p0 = bkt_forget(mastery, decay, delta_days)
    return p0 * (1 - slip) + (1 - p0) * guess


def bkt_posterior(p0, correct, guess, slip, learning_rate, velocity) -> float:
    """Steps 2 (evidence) and 3 (learning)."""
    if correct:
        num, den = p0 * (1 - slip), p0 * (1 - slip) + (1 - p0) * guess
    else:
        num, den = p0 * slip, p0 * slip + (1 - p0) * (1 - guess)
    p1 = p0 if den == 0 else num / den
    p = p1 + (1 - p1) * min(1.0, learning_rate * velocity)
    return min(1.0, max(0.0, p))


def bkt_update(mastery, decay, delta_days, correct, guess, slip, learning_rate, velocity):
    return bkt_posterior(bkt_forget(mastery, decay, delta_days), correct, guess, slip,
                         learning_rate, velocity)


# -- SM-2, quality, IRT -----------------------------------------------------------------


def sm2_step(easiness: float, interval_days: int, repetitions: int, quality: int):
    """(easiness, interval_days, repetitions) after a review of quality 0..5."""
    if not 0 <= quality <= 5:
        raise ValueError(f"quality {quality} outside 0..5")
    if quality < 3:
        reps, interval = 0, 1
    else:
        if repetitions == 0:
            interval = 1
        elif repetitions == 1:
            interval = 6
        else:
            interval = min(SM2_MAX_INTERVAL, math.ceil(interval_days * easiness))
        reps = repetitions + 1
    ef = max(1.3, easiness + 0.1 - (5 - quality) * (0.08 + (5 - quality) * 0.02))
    return ef, interval, reps


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


def irt_probability(theta, difficulty, discrimination, guess) -> float:
    x = -1.7 * discrimination * (theta - difficulty)
    x = max(-700.0, min(700.0, x))
    return guess + (1 - guess) / (1 + math.exp(x))


# -- record_answer replay ---------------------------------------------------------------


@dataclass
class KnowledgeState:
    initial_knowledge: float = 0.1
    learning_rate: float = 0.15
    guess: float = 0.2
    slip: float = 0.1
    mastery: float = 0.1
    decay: float = 0.98
    velocity: float = 1.0
    last_interaction: datetime | None = None
    attempts: int = 0
    correct_attempts: int = 0
    mastered_at: datetime | None = None


@dataclass
class ReviewState:
    easiness: float = 2.5
    interval_days: int = 0
    repetitions: int = 0
    next_review_at: datetime | None = None
    last_quality: int | None = None
    last_reviewed_at: datetime | None = None


@dataclass
class UserState:
    xp: int = 0
    current_streak: int = 0
    longest_streak: int = 0
    last_active_date: date | None = None


@dataclass
class Outcome:
    mastery_before: float
    mastery: float
    predicted_correct: float
    quality: int
    next_review_at: datetime
    newly_mastered: bool


@dataclass
class Learner:
    """The per-user state record_answer maintains, replayed in Python."""

    user: UserState = field(default_factory=UserState)
    knowledge: dict[int, KnowledgeState] = field(default_factory=dict)
    reviews: dict[int, ReviewState] = field(default_factory=dict)

    def answer(self, concept_id: int, content_id: int, is_correct: bool, response_time_ms: int,
               answered_at: datetime, hints_used: int = 0, quality: int | None = None,
               average_response_time_ms: float | None = None) -> Outcome:
        ks = self.knowledge.setdefault(concept_id, KnowledgeState())
        if ks.last_interaction is None:
            p0 = ks.initial_knowledge
        else:
            delta = max(0.0, (answered_at - ks.last_interaction).total_seconds() / 86400)
            p0 = bkt_forget(ks.mastery, ks.decay, delta)
        predicted = p0 * (1 - ks.slip) + (1 - p0) * ks.guess
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
        next_at = answered_at + timedelta(days=interval)
        self.reviews[content_id] = ReviewState(
            ef, interval, reps, next_at, q,
            max(filter(None, [rs.last_reviewed_at, answered_at])))

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
