"""Metrics against scikit-learn on random data."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from everylabel.metrics import f1_scores, per_label_report

LABELS = ["a", "b", "c", "d", "e"]


def random_sets(rng: random.Random, count: int, single: bool) -> list[set[str]]:
    if single:
        return [{rng.choice(LABELS)} for _ in range(count)]
    return [set(rng.sample(LABELS, k=rng.randint(0, 3))) for _ in range(count)]


def binarize(sets: list[set[str]]) -> np.ndarray:
    return np.array([[label in s for label in LABELS] for s in sets], dtype=int)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("single", [True, False])
def test_f1_matches_scikit_learn(seed: int, single: bool) -> None:
    rng = random.Random(seed)
    gold, pred = random_sets(rng, 200, single), random_sets(rng, 200, single)
    ours = f1_scores(gold, pred, LABELS)
    y, p = binarize(gold), binarize(pred)
    for average in ("micro", "macro", "weighted"):
        assert ours[f"{average}_f1"] == pytest.approx(f1_score(y, p, average=average, zero_division=0))
    assert ours["micro_precision"] == pytest.approx(precision_score(y, p, average="micro", zero_division=0))
    assert ours["micro_recall"] == pytest.approx(recall_score(y, p, average="micro", zero_division=0))
    report = per_label_report(gold, pred, LABELS)
    per_label = f1_score(y, p, average=None, zero_division=0)
    for i, label in enumerate(LABELS):
        assert report[label]["f1"] == pytest.approx(per_label[i])
        assert report[label]["support"] == y[:, i].sum()
