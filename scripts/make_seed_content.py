"""Regenerate dmdb/data/content.csv, the seed's question items, from dmdb/data/concepts.csv.

Run once when the concepts change; the CSV is the shipped data file. Deterministic.
Item difficulty follows its concept's (IRT b ~ concept difficulty ± 0.6); discrimination
0.6..2.2; four options, so the guessing parameter is near 0.25 (capped below 0.5).
"""

import csv
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "dmdb" / "data"
STEMS = [
    "Which statement about {topic} is correct?",
    "You are driving and {topic} becomes relevant. What should you do first?",
    "What is the main safety reason behind the rules on {topic}?",
    "Which of these is a common mistake learners make with {topic}?",
    "In which situation does the guidance on {topic} apply?",
    "What does the Highway Code advise about {topic}?",
    "Which action best shows good practice in {topic}?",
]
ITEMS_PER_CONCEPT = 7
VARIANT_EVERY = 15  # every 15th item gets an A/B variant


def main() -> None:
    rng = random.Random(20261125)
    concepts = list(csv.DictReader(open(DATA / "concepts.csv")))
    rows = []
    n = 0
    for concept in concepts:
        topic = concept["name"][0].lower() + concept["name"][1:]
        base = float(concept["difficulty"])
        for i in range(ITEMS_PER_CONCEPT):
            n += 1
            ref = f"{concept['code']}-{i + 1}"
            b = max(-3.0, min(3.0, round(base + rng.uniform(-0.6, 0.6), 3)))
            row = {
                "ref": ref,
                "concept_code": concept["code"],
                "question": STEMS[i % len(STEMS)].format(topic=topic),
                "options": json.dumps([f"Option {c}" for c in "ABCD"]),
                "answer_index": rng.randrange(4),
                "difficulty": b,
                "discrimination": round(rng.uniform(0.6, 2.2), 3),
                "guess_parameter": round(rng.uniform(0.18, 0.3), 3),
                "version": 1,
                "variant_of": "",
                "media": json.dumps({"image": f"{concept['code']}/{i + 1}.png"} if i % 3 == 0 else {}),
            }
            rows.append(row)
            if n % VARIANT_EVERY == 0:
                variant = dict(row, ref=ref + "-b", version=2, variant_of=ref,
                               question=row["question"].replace("?", " (reworded)?"),
                               difficulty=max(-3.0, min(3.0, round(b + rng.uniform(-0.3, 0.3), 3))))
                rows.append(variant)
    with open(DATA / "content.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} items")


if __name__ == "__main__":
    main()
