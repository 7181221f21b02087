"""A toy multi-label topic task that a tiny model learns in a few dozen steps."""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "sports": ["football", "goal", "match", "team", "coach"],
    "food": ["bread", "soup", "salt", "oven", "dinner"],
    "weather": ["rain", "sun", "wind", "storm", "cloud"],
    "music": ["guitar", "song", "drum", "piano", "concert"],
}
FILLER = ["the", "a", "of", "and", "then", "with", "today", "very"]


def toy_records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        gold = rng.sample(sorted(TOPICS), k=rng.choice([1, 1, 2]))
        # The label name itself is in the text, so a tiny random model can learn the task by name.
        words = [w for t in gold for w in (t, *rng.sample(TOPICS[t], k=2))] + rng.sample(FILLER, k=4)
        rng.shuffle(words)
        records.append({"text": " ".join(words), "all_labels": sorted(TOPICS), "true_labels": gold})
    return records


def topic_shots(per_topic: int, seed: int = 5) -> list[dict]:
    """`per_topic` single-label examples of each topic, {"text", "labels"}, as few-shot fitting takes."""
    pool = [r for r in toy_records(200, seed=seed) if len(r["true_labels"]) == 1]
    shots = []
    for topic in sorted(TOPICS):
        matching = [r for r in pool if r["true_labels"] == [topic]][:per_topic]
        shots += [{"text": r["text"], "labels": r["true_labels"]} for r in matching]
    return shots


def write_toy(path: Path, count: int, seed: int = 0) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in toy_records(count, seed)) + "\n")
    return path
