"""Learners that follow BKT exactly, with known per-concept parameters (the truth test of
`dmdb models fit`, and its benchmark).

Each simulated learner, for each concept in turn, starts knowing it with probability
initial_knowledge; answers correctly with 1 − slip when knowing, guess when not; after
each answer learns with probability learning_rate; and, between answers, forgets with
probability 1 − decay^Δdays when knowing — the generative model that record_answer's
update filters. The answers go through `record_answers` like any client's, so the events
carry the platform's own predictions (with whatever parameters it runs now).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

BATCH = 1000


@dataclass(frozen=True)
class Truth:
    initial_knowledge: float
    learning_rate: float
    guess: float
    slip: float
    decay: float = 0.98


def plan(truth: dict[int, Truth], items: dict[int, list[int]], *, learners: int, answers: int,
         start: datetime, span: timedelta, gap: timedelta, random_seed: int) -> list[list[dict]]:
    """Per learner, their answers (record_answers elements without user_id), pure.

    Learners start at uniformly spread instants of `span` after `start`, practise each
    concept of `truth` in turn (`answers` answers each, `gap` apart, items drawn from
    `items[concept]`)."""
    rng = random.Random(random_seed)
    out: list[list[dict]] = []
    for _ in range(learners):
        clock = start + span * rng.random()
        history: list[dict] = []
        for concept, t in truth.items():
            knows = rng.random() < t.initial_knowledge
            for n in range(answers):
                if n:
                    clock += gap
                    if knows and rng.random() >= t.decay ** (gap.total_seconds() / 86400):
                        knows = False
                correct = rng.random() < ((1 - t.slip) if knows else t.guess)
                choices = items[concept]
                history.append({"content_id": choices[rng.randrange(len(choices))],
                                "is_correct": correct, "response_time_ms": 5000,
                                "answered_at": clock.isoformat()})
                if not knows and rng.random() < t.learning_rate:
                    knows = True
            clock += gap
        out.append(history)
    return out


def simulate(conn, truth: dict[int, Truth], *, learners: int, answers: int, start: datetime,
             span: timedelta = timedelta(days=10), gap: timedelta = timedelta(minutes=1),
             random_seed: int = 1, email_prefix: str = "bkt-sim") -> int:
    """Create `learners` users and record their simulated answers for the concepts of
    `truth` (which must have active items); returns the number of answers written."""
    rows = conn.execute(
        "SELECT concept_id, array_agg(content_id ORDER BY content_id) FROM content "
        "WHERE concept_id = ANY(%s) AND is_active GROUP BY concept_id", (list(truth),)).fetchall()
    items = {r[0]: r[1] for r in rows}
    missing = sorted(set(truth) - set(items))
    if missing:
        raise ValueError(f"concepts without active items: {missing}")
    histories = plan(truth, items, learners=learners, answers=answers, start=start, span=span,
                     gap=gap, random_seed=random_seed)
    written = 0
    with conn.transaction():
        user_ids = [conn.execute(
            "INSERT INTO users (email, display_name) VALUES (%s, %s) RETURNING user_id",
            (f"{email_prefix}-{random_seed}-{i}@sim.test", f"Simulated {i}")).fetchone()[0]
            for i in range(learners)]
        batch: list[dict] = []
        for user_id, history in zip(user_ids, histories):
            batch.extend({**a, "user_id": user_id} for a in history)
            if len(batch) >= BATCH:
                conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
                written += len(batch)
                batch = []
        if batch:
            conn.execute("SELECT count(*) FROM record_answers(%s::jsonb)", (json.dumps(batch),))
            written += len(batch)
    return written
