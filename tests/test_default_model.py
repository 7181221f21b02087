"""The embedded default model: it loads offline, is small, scores a text in one pass with each label
on its own, and gets the obvious cases right in every calling mode (`tests/obvious_cases.py`)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import everylabel
from everylabel import Classifier, InputError, demo
from tests.obvious_cases import SENTIMENT, TOPICS, cases, measure

FOLDER = Path(everylabel.__file__).parent / "default_model"
CASES = [
    ("The striker scored twice and the team won the football match.", "sports"),
    ("Parliament voted on the new tax law after a long debate between the parties.", "politics"),
    ("Whisk the eggs with sugar, add flour and bake the cake for twenty minutes.", "cooking"),
]
# What the shipped model gets on the suite, less slack of one text or more (docs/benchmarks.md,
# "Default model v4", torch bf16 and fp32 alike: 100%, 95%, 100%, 81%, 92%). Of the targets of the
# issue on default model v4 (95% single-label, 90% in each one-label and multi-label mode),
# single-label and one-label are met (63 of 63 texts; 60 of 63 own topics reach 0.5); multi-label
# exact sets are not yet (51 of 63; the floor passes 50 and fails 49).
FLOORS = {
    "single_label": 0.96,
    "one_label_own_at_least_half": 0.93,
    "one_label_unrelated_under_half": 0.98,
    "multi_label_exact_set": 0.78,
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
    # With the packed ONNX export the base install runs (onnx/packed.py), which reads the adapters,
    # head and tokenizer from the checkpoint beside it: the whole default model within 24 MB.
    assert sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file()) <= 24_000_000
    plan = json.loads((FOLDER / SHIPPED / "everylabel_packed.json").read_text())
    kinds = [entry["how"] for entry in plan["tensors"]]
    # Every adapted matrix of the text encoder is the label encoder's plus the two adapters' factors;
    # the head is referenced; the word embeddings are the one 4-bit table.
    assert kinds.count("lora") == 24 and kinds.count("ref") >= 4 and kinds.count("int4") == 1


def test_one_pass_and_each_label_scored_on_its_own(classifier: Classifier) -> None:
    assert classifier.model.config.architecture_type == "bi-encoder"
    assert classifier.blend is None  # no second backbone at inference
    assert classifier.model.config.label_template == "This article is about {label}."
    text = "She won the marathon in under three hours."
    alone = classifier.classify(text, ["sports"])[0].scores["sports"]
    assert alone >= 0.5
    for neighbours in (["cooking"], ["football"], ["politics", "music", "weather"]):
        beside = classifier.classify(text, ["sports", *neighbours])[0].scores["sports"]
        assert beside == pytest.approx(alone, abs=1e-6)  # a label's score never reads its neighbours


def test_examples_teach_a_label_what_its_name_does_not_say(classifier: Classifier) -> None:
    # Reuters' names: "acq" says little of takeovers, so every takeover reads as "earn" at first;
    # three examples of each refit the two label vectors (inference/example_vectors.py).
    labels = ["earn", "acq"]
    shots = [
        {"text": "The company agreed to buy its rival for two billion dollars.", "labels": ["acq"]},
        {"text": "The bank completed its takeover of the smaller lender.", "labels": ["acq"]},
        {"text": "Shareholders approved the merger of the two groups.", "labels": ["acq"]},
        {"text": "Net profit rose to 40 cents a share in the quarter.", "labels": ["earn"]},
        {"text": "The firm reported a net loss of three million dollars for the year.", "labels": ["earn"]},
        {"text": "Quarterly revenue and earnings beat forecasts.", "labels": ["earn"]},
    ]
    texts = [
        "The retailer will acquire a rival chain in a deal worth 500 million dollars.",
        "Profits fell 10 percent.",
    ]
    assert [r.labels for r in classifier.classify(texts, labels, multi_label=False)] == [["earn"], ["earn"]]
    taught = classifier.classify(texts, labels, multi_label=False, examples=shots)
    assert [r.labels for r in taught] == [["acq"], ["earn"]]
    with pytest.raises(InputError, match=r"examples\[0\]\.labels: 'merger' is not one of the labels"):
        classifier.classify(texts, labels, examples=[{"text": "A merger.", "labels": ["merger"]}])


@pytest.mark.parametrize("groups", [TOPICS, SENTIMENT], ids=["topics", "sentiment"])
def test_examples_never_lower_the_suite(classifier: Classifier, groups: dict[str, list[str]]) -> None:
    pairs = cases(groups)
    texts, labels = [t for t, _ in pairs], list(groups)

    def right(examples: list[dict] | None) -> int:
        results = classifier.classify(texts, labels, multi_label=False, examples=examples)
        return sum(r.labels == [gold] for r, (_, gold) in zip(results, pairs, strict=True))

    alone = right(None)
    for seed in range(3):  # two examples per label, drawn from the suite's own texts
        rng = random.Random(seed)
        shots = [{"text": t, "labels": [g]} for g in labels for t in rng.sample(groups[g], 2)]
        assert right(shots) >= alone


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_obvious_topics(classifier: Classifier, text: str, expected: str) -> None:
    (result,) = classifier.classify(text, demo.LABELS, multi_label=False)
    assert result.labels == [expected]


def test_the_calibration_was_fitted_on_texts_outside_the_suite(classifier: Classifier) -> None:
    recipes = Path(__file__).parent.parent / "recipes"
    shown = {text.lower() for text, _ in cases(TOPICS) + cases(SENTIMENT)} | {t.lower() for t in demo.TEXTS}
    written: set[str] = set()
    for name in ("obvious-dev.json", "obvious-dev-more.json"):  # fit_one_label_calibration.py --one-label
        dev = json.loads((recipes / name).read_text())
        assert list(dev) == list(TOPICS) and all(len(texts) == 8 for texts in dev.values())
        texts = {text.lower() for texts in dev.values() for text in texts}
        assert not texts & shown and not texts & written
        written |= texts
    calibration = classifier.calibration
    assert calibration is not None and calibration.mode == "multi-label" and calibration.method == "platt"
    assert "obvious-dev.json" in calibration.report["fitted_on"]


def test_the_demo_is_right_on_all_its_texts(classifier: Classifier) -> None:
    results = classifier.classify(demo.TEXTS, demo.LABELS, multi_label=False)
    assert [r.labels for r in results] == [[label] for label in demo.LABELS]  # one text per label, in order


def test_the_obvious_cases_in_every_calling_mode(classifier: Classifier) -> None:
    got = measure(classifier)
    assert all(got[key] >= floor for key, floor in FLOORS.items()), got
