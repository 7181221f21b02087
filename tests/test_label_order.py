"""label_order: answers that do not depend on the order the labels come in, and eval's flip rate."""

from __future__ import annotations

import random

import numpy as np
import pytest

from everylabel import Classifier, create_model
from everylabel.errors import InputError
from everylabel.evaluation.datasets import LabelledSet
from everylabel.evaluation.runner import evaluate
from everylabel.inference.label_order import label_orders
from everylabel.inference.labels import Label
from tests import oracle

LABELS = ["sports", "food", "weather", "music", "travel", "money", "health"]
TEXTS = ["football and a late goal", "bread and soup", "", "rain and wind all day long"]


@pytest.fixture(scope="module")
def clf(backbone_dir) -> Classifier:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    return Classifier(model, tokenizer)


def shuffled(labels: list[str], seed: int) -> list[str]:
    out = list(labels)
    random.Random(seed).shuffle(out)
    return out


@pytest.mark.parametrize("mode", ["sorted", "robust"])
@pytest.mark.parametrize("multi_label", [True, False])
def test_any_order_of_the_same_labels_gives_the_same_answer(
    clf: Classifier, mode: str, multi_label: bool
) -> None:
    given = [clf.classify(TEXTS, shuffled(LABELS, seed), multi_label=multi_label) for seed in range(4)]
    assert any(a.scores != b.scores for a, b in zip(given[0], given[1], strict=True))  # the order matters
    runs = [
        clf.classify(TEXTS, shuffled(LABELS, seed), multi_label=multi_label, label_order=mode)
        for seed in range(4)
    ]
    for run, seed in zip(runs, range(4), strict=True):
        for result, reference in zip(run, runs[0], strict=True):
            assert result.scores == pytest.approx(reference.scores, abs=1e-6)
            assert result.labels == reference.labels
            if not result.empty:
                assert list(result.scores) == shuffled(LABELS, seed)  # the caller's order


def test_robust_is_the_mean_of_four_canonical_orders(clf: Classifier) -> None:
    orders = [[label.name for label in order] for order in label_orders([Label(n) for n in LABELS], "robust")]
    assert len(orders) == 4 and orders[0] == sorted(LABELS) and orders[1] == sorted(LABELS)[::-1]
    robust = clf.classify(TEXTS, LABELS, label_order="robust")
    singles = [clf.classify(TEXTS, order) for order in orders]
    for index, result in enumerate(robust):
        if result.empty:
            continue
        for name in LABELS:
            mean = np.mean([run[index].scores[name] for run in singles])
            assert result.scores[name] == pytest.approx(mean, abs=1e-6)


def test_orders_are_distinct_and_few_labels_have_few() -> None:
    assert len(label_orders([Label("a")], "robust")) == 1
    assert len(label_orders([Label("b"), Label("a")], "robust")) == 2
    assert [x.name for x in label_orders([Label("b"), Label("A"), Label("a")], "sorted")[0]] == [
        "A",
        "a",
        "b",
    ]


def test_per_text_labels_label_groups_and_chunks(clf: Classifier) -> None:
    small = Classifier(clf.model, clf.tokenizer, max_length=24, min_text_tokens=8)
    per_text = [[f"topic {i}" for i in range(12)], LABELS[:3], ["x"], LABELS[2:]]
    long_text = " ".join(["rain and wind"] * 12)
    texts = [TEXTS[0], TEXTS[1], "", long_text]
    a = small.classify(texts, per_text, label_order="sorted", truncation="chunk")
    b = small.classify(
        texts, [shuffled(labels, 3) for labels in per_text], label_order="sorted", truncation="chunk"
    )
    assert a[0].label_groups > 1 and a[3].windows > 1
    for x, y in zip(a, b, strict=True):
        assert x.scores == pytest.approx(y.scores, abs=1e-6)


def test_bad_values_and_errors_name_the_caller_index(clf: Classifier) -> None:
    with pytest.raises(InputError, match="label_order"):
        clf.classify(TEXTS, LABELS, label_order="random")
    small = Classifier(clf.model, clf.tokenizer, max_length=24, min_text_tokens=8)
    texts = ["short", "", "short", " ".join(["rain"] * 40)]
    with pytest.raises(InputError, match=r"texts\[3\]"):
        small.classify(texts, LABELS[:3], truncation="error", label_order="robust")


class FirstIsBest:
    """A scorer whose scores depend on the order only: the first label scores highest."""

    name = "first-is-best"

    def score(self, texts, labels, multi_label):
        return [{name: 1.0 / (1 + i) for i, name in enumerate(labels)} for _ in texts]


class OrderFree:
    name = "order-free"

    def score(self, texts, labels, multi_label):
        return [
            {name: (len(text) * (1 + i)) % 7 / 7 for i, name in enumerate(sorted(labels))} for text in texts
        ]


def test_eval_reports_the_flip_rate_and_spread() -> None:
    data = LabelledSet("toy", ["a", "bb", "ccc"], [["x"], ["y"], ["z"]], ["x", "y", "z", "w"], False)
    order = evaluate(FirstIsBest(), data, permutations=5, progress=False)["label_order"]
    assert order["flip_rate"] == 1.0 and order["max_spread"] == pytest.approx(0.75)
    steady = evaluate(OrderFree(), data, permutations=5, progress=False)["label_order"]
    assert steady["flip_rate"] == 0.0 and steady["mean_spread"] == 0.0
    assert evaluate(OrderFree(), data, progress=False)["label_order"] is None
