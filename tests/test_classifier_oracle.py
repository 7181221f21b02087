"""The official `ZeroShotClassificationPipeline`, reproduced on inputs where padding cannot matter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from gliclass import ZeroShotClassificationPipeline

from everylabel import Classifier
from tests import oracle

TEXTS = [text for text, _ in oracle.ROWS]
LABELS = ["sports", "politics", "cooking", "weather", "economy"]
PER_TEXT = [labels for _, labels in oracle.ROWS]
EXAMPLES = [
    {"text": "Goal in the last minute.", "labels": ["sports"]},
    {"text": "Vote on Monday.", "labels": ["politics"]},
]


@pytest.fixture(scope="module", params=[False, True], ids=["text-first", "prompt-first"])
def pair(request, backbone_dir, tmp_path_factory) -> tuple[Classifier, ZeroShotClassificationPipeline]:
    folder = oracle.official_checkpoint(
        backbone_dir("bert"), tmp_path_factory.mktemp("ckpt"), prompt_first=request.param, scorer_type="mlp"
    )
    theirs = oracle.load_official(folder)
    return Classifier.from_pretrained(folder, device="cpu"), theirs


def official(
    pipeline_model: Any, classifier: Classifier, mode: str, batch_size: int = 8, **kwargs: Any
) -> list:
    return oracle.official(pipeline_model, classifier.tokenizer, mode, batch_size, **kwargs)


as_scores = oracle.as_scores


CASES: list[tuple[str, dict[str, Any]]] = [
    ("shared-labels", {"labels": LABELS}),
    ("per-text-labels", {"labels": PER_TEXT}),
    ("prompt", {"labels": LABELS, "prompt": "Which topic is this text about?"}),
    (
        "per-text-prompt",
        {"labels": LABELS, "prompt": ["Topic:", "What is it about?", "Kitchen or not?", "Topic:"]},
    ),
    ("examples", {"labels": LABELS, "examples": EXAMPLES}),
    ("per-text-examples", {"labels": PER_TEXT, "examples": [EXAMPLES, None, EXAMPLES[:1], None]}),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_multi_label_scores_equal_the_official_pipeline(pair, kwargs: dict[str, Any]) -> None:
    classifier, theirs = pair
    expected = official(theirs, classifier, "multi-label", texts=TEXTS, threshold=0.0, **kwargs)
    got = classifier.classify(TEXTS, threshold=0.5, **kwargs)
    for ours, reference in zip(got, expected, strict=True):
        ref = as_scores(reference)
        assert ours.scores.keys() == ref.keys()
        for label, score in ref.items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
        assert ours.labels == sorted(
            (k for k, v in ours.scores.items() if v >= 0.5), key=lambda k: -ours.scores[k]
        )
    logits = [math.log(s / (1 - s)) for r in got for s in r.scores.values()]
    assert max(logits) - min(logits) > 1.0, "scores are flat; the comparison would prove nothing"


@pytest.mark.parametrize("kwargs", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_single_label_top_label_and_score_equal_the_official_pipeline(pair, kwargs: dict[str, Any]) -> None:
    classifier, theirs = pair
    expected = official(theirs, classifier, "single-label", texts=TEXTS, **kwargs)
    got = classifier.classify(TEXTS, multi_label=False, **kwargs)
    for ours, reference in zip(got, expected, strict=True):
        assert len(reference) == 1 and len(ours.labels) == 1
        assert ours.labels[0] == reference[0]["label"]
        assert ours.scores[ours.labels[0]] == pytest.approx(reference[0]["score"], abs=1e-5)
        assert sum(ours.scores.values()) == pytest.approx(1.0)


def test_padding_sensitive_pooling_matches_the_official_pipeline_one_text_at_a_time(
    backbone_dir, tmp_path: Path
) -> None:
    # The official poolers average over padding: they are only comparable without padding
    # (batch size 1). everylabel masks padding, so its batched scores equal those unpadded ones.
    folder = oracle.official_checkpoint(
        backbone_dir("bert"), tmp_path, pooling_strategy="avg", scorer_type="mlp"
    )
    classifier = Classifier.from_pretrained(folder, device="cpu")
    theirs = oracle.load_official(folder)
    expected = official(
        theirs, classifier, "multi-label", batch_size=1, texts=TEXTS, labels=PER_TEXT, threshold=0.0
    )
    got = classifier.classify(TEXTS, PER_TEXT, batch_size=8)
    for ours, reference in zip(got, expected, strict=True):
        for label, score in as_scores(reference).items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
    # And the official batched run differs, which is why everylabel masks padding.
    padded = official(
        theirs, classifier, "multi-label", batch_size=8, texts=TEXTS, labels=PER_TEXT, threshold=0.0
    )
    worst = max(
        abs(as_scores(p)[label] - as_scores(e)[label])
        for p, e in zip(padded, expected, strict=True)
        for label in as_scores(e)
    )
    assert worst > 1e-4


def test_hierarchical_labels_match_the_official_flattening(pair) -> None:
    classifier, theirs = pair
    tree = {"topic": ["sports", "politics"], "mood": {"tone": ["calm", "angry"]}}
    expected = official(theirs, classifier, "multi-label", texts=TEXTS[:2], labels=tree, threshold=0.0)
    got = classifier.classify(TEXTS[:2], tree)
    for ours, reference in zip(got, expected, strict=True):
        assert list(ours.scores) == ["topic.sports", "topic.politics", "mood.tone.calm", "mood.tone.angry"]
        for label, score in as_scores(reference).items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
        nested = ours.nested()
        assert nested["mood"]["tone"]["angry"] == ours.scores["mood.tone.angry"]
        assert set(nested["topic"]) == {"sports", "politics"}
