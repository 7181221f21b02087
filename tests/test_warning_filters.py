"""The library never changes the process's warning filters (not even for a while: that is not
thread-safe); only programs that own their process (the CLI, the demo) may."""

from __future__ import annotations

import warnings

import pytest

from everylabel import Classifier
from everylabel.evaluation.datasets import LabelledSet
from everylabel.evaluation.runner import evaluate
from everylabel.evaluation.scorers import EverylabelScorer


def test_loading_classifying_and_evaluating_leave_the_filters_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the library changed the warning filters")

    for name in ("catch_warnings", "filterwarnings", "simplefilter", "resetwarnings"):
        monkeypatch.setattr(warnings, name, forbidden)
    clf = Classifier.from_pretrained("default", device="cpu")  # a LoRA adapter on its base
    clf.classify(["The striker scored twice."], ["sports", "politics"])
    list(clf.classify_iter(iter(["word " * 600]), ["sports", "politics"]))  # warns, filters untouched
    scorer = EverylabelScorer.__new__(EverylabelScorer)
    scorer.name, scorer.classifier, scorer.cut_texts = "default", clf, 0
    data = LabelledSet("tiny", ["word " * 600, "a vote"], [["sports"], ["politics"]], ["sports", "politics"])
    report = evaluate(scorer, data, progress=False)
    assert report["truncated_texts"] == 1
