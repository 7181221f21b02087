"""Few-shot fitting from a handful of examples per label."""

from __future__ import annotations

import pytest

from everylabel import Classifier, InputError, create_model
from everylabel.training.fewshot import few_shot_fit
from tests.backbones import minilm_dir
from tests.toy import TOPICS, toy_records


def accuracy(classifier: Classifier, records: list[dict]) -> float:
    results = classifier.classify([r["text"] for r in records], sorted(TOPICS), multi_label=False)
    return sum(
        res.labels[0] == rec["true_labels"][0] for res, rec in zip(results, records, strict=True)
    ) / len(records)


def test_eight_examples_per_label_adapt_the_model() -> None:
    model, tokenizer = create_model(minilm_dir(), scorer_type="mlp", class_token_pooling="average")
    classifier = Classifier(model, tokenizer, device="cpu")
    pool = [r for r in toy_records(200, seed=5) if len(r["true_labels"]) == 1]
    shots = []
    for topic in sorted(TOPICS):
        shots += [
            {"text": r["text"], "labels": r["true_labels"]} for r in pool if r["true_labels"] == [topic]
        ][:8]
    test = [r for r in toy_records(120, seed=9) if len(r["true_labels"]) == 1]
    before = accuracy(classifier, test)
    result = few_shot_fit(classifier, shots, epochs=6, encoder_lr=5e-5, head_lr=1e-3)
    after = accuracy(classifier, test)
    assert len(shots) == 32 and result.steps == 24
    assert after > before + 0.3 and after > 0.8
    assert not classifier.model.training


def test_bad_examples_are_refused() -> None:
    model, tokenizer = create_model(minilm_dir())
    classifier = Classifier(model, tokenizer, device="cpu")
    with pytest.raises(InputError, match=r"examples\[1\]\.labels: 'golf' is not one of the labels"):
        few_shot_fit(
            classifier, [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["golf"]}], labels=["x"]
        )
    with pytest.raises(InputError, match=r"examples\[0\]\.text"):
        few_shot_fit(classifier, [{"text": "", "labels": ["x"]}])
