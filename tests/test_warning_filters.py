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
    touched: list[str] = []

    def forbidden(name: str):
        def call(*args: object, **kwargs: object) -> None:
            touched.append(name)
            raise AssertionError(f"the library called warnings.{name}")

        return call

    data = LabelledSet("tiny", ["word " * 600, "a vote"], [["sports"], ["politics"]], ["sports", "politics"])
    with monkeypatch.context() as patch:  # undone before pytest reports (it uses the filters itself)
        for name in ("catch_warnings", "filterwarnings", "simplefilter", "resetwarnings"):
            patch.setattr(warnings, name, forbidden(name))
        clf = Classifier.from_pretrained("default", device="cpu")  # a LoRA adapter on its base
        clf.classify(["The striker scored twice."], ["sports", "politics"])
        list(clf.classify_iter(iter(["word " * 600]), ["sports", "politics"]))  # warns, filters untouched
        scorer = EverylabelScorer.__new__(EverylabelScorer)
        scorer.name, scorer.classifier, scorer.cut_texts = "default", clf, 0
        report = evaluate(scorer, data, progress=False)
    assert touched == []
    assert report["truncated_texts"] == 1
