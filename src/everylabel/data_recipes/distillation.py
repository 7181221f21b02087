"""Soft targets from a sentence-embedding teacher, for a one-pass student.

The teacher is the embedding baseline's geometry: the cosine of a text's and a label's
mean-pooled sentence embeddings, the label in the template "This text is about {label}.". It
becomes a probability against a fixed reference, never against the other candidates:

    target(text, label) = sigmoid(slope * (cosine(text, label) - background(text)) + bias)

where `background(text)` is the text's mean cosine with a fixed set of background labels. A
label's target depends on the text and the label alone, so the same label gets the same target
whether it is asked alone, beside a close neighbour or beside unrelated ones; a student trained
on it learns one-label questions as well as long lists. `slope` and `bias` come from a logistic
fit to hard labels of the training sources (`fit_calibration`).

Candidate sets are varied in size (one label a quarter of the time) and mix the teacher's best
labels for the text, near misses and random labels from a vocabulary of topic names.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

# How many candidates a distillation record gets, and how often: one-label and few-label calls
# are trained as often as long lists.
SIZE_WEIGHTS = {1: 25, 2: 15, 3: 10, 4: 8, 5: 7, 6: 5, 8: 8, 10: 8, 12: 5, 16: 5, 20: 4}
TOP = 3  # the teacher's best labels for a text
NEAR = 50  # the next ones: near misses


def background_centred(cosines: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(texts, labels) cosines minus each text's mean cosine with the background labels.

    `background` is (texts, background labels); the result does not depend on which labels
    stand in `cosines`.
    """
    return (cosines - background.mean(axis=1, keepdims=True)).astype(np.float32)


def fit_calibration(
    centred: np.ndarray, hard: np.ndarray, steps: int = 50, balanced: bool = False
) -> tuple[float, float]:
    """(slope, bias) of the logistic regression of 0/1 targets on centred cosines (Newton).

    Both arrays are flat and of the same length. `balanced`: the yeses weigh as much in total as
    the noes (so a score of 0.5 means even odds, whatever the share of yeses).
    """
    x = np.asarray(centred, dtype=np.float64).ravel()
    y = np.asarray(hard, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("centred and hard: expected two flat arrays of the same, non-zero length")
    share = float(y.mean())
    if balanced and not 0.0 < share < 1.0:
        raise ValueError("hard: balanced needs both yeses and noes")
    w = y * (0.5 / share) + (1 - y) * (0.5 / (1 - share)) if balanced else np.ones_like(y)  # (n,)
    design = np.stack([x, np.ones_like(x)], axis=1)  # (n, 2)
    weights = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(design @ weights)))
        gradient = design.T @ (w * (p - y))
        hessian = design.T @ (design * (w * p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(weights[0]), float(weights[1])


def teacher_targets(centred: np.ndarray, slope: float, bias: float) -> np.ndarray:
    """sigmoid(slope * centred + bias), elementwise."""
    return (1.0 / (1.0 + np.exp(-(slope * np.asarray(centred, dtype=np.float64) + bias)))).astype(np.float32)


def sample_candidates(row: np.ndarray, rng: random.Random) -> list[int]:
    """Vocabulary indices of one text's candidates, from its (vocabulary,) centred cosines.

    Some of the teacher's best labels, some near misses, the rest random; the size is drawn from
    `SIZE_WEIGHTS`.
    """
    sizes, weights = zip(*SIZE_WEIGHTS.items(), strict=True)
    size = min(rng.choices(sizes, weights)[0], len(row))
    order = np.argsort(-row)
    chosen: list[int] = []
    if rng.random() < 0.6:
        chosen.append(int(order[rng.randrange(min(TOP, len(order)))]))
    if len(chosen) < size and rng.random() < 0.5:
        near = order[TOP : TOP + NEAR]
        if len(near):
            chosen.append(int(near[rng.randrange(len(near))]))
    while len(chosen) < size:
        pick = rng.randrange(len(row))
        if pick not in chosen:
            chosen.append(pick)
    chosen = chosen[:size]
    rng.shuffle(chosen)
    return chosen


def distillation_records(
    texts: Sequence[str],
    centred: np.ndarray,
    vocabulary: Sequence[str],
    slope: float,
    bias: float,
    seed: int = 0,
    source: str = "distillation",
) -> list[dict[str, Any]]:
    """Official-format records with soft targets: one per text, its candidates from `vocabulary`.

    `centred` is (texts, vocabulary): `background_centred` of the teacher's cosines.
    """
    if centred.shape != (len(texts), len(vocabulary)):
        raise ValueError(f"centred: expected shape {(len(texts), len(vocabulary))}, got {centred.shape}")
    rng = random.Random(f"distillation:{seed}")
    records = []
    for text, row in zip(texts, centred, strict=True):
        picked = sample_candidates(row, rng)
        targets = teacher_targets(row[picked], slope, bias)
        labels = [vocabulary[i] for i in picked]
        records.append(
            {
                "text": text,
                "all_labels": labels,
                "true_labels": {label: round(float(t), 4) for label, t in zip(labels, targets, strict=True)},
                "source": source,
            }
        )
    return records


def cut_words(text: str, words: int) -> str:
    """The first `words` whitespace-separated words of a text (the student sees a cut text too)."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])
