"""Classifier features on a tiny offline model: budgets, windows, groups, thresholds, errors."""

from __future__ import annotations

import warnings
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import torch

from everylabel import Classifier, InputError, Label, TruncationWarning, create_model
from everylabel.runtime import model_max_length
from tests import oracle

LABELS = ["sports", "politics", "cooking"]


@pytest.fixture(scope="module")
def clf(backbone_dir) -> Classifier:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model)
    return Classifier(model, tokenizer, device="cpu", max_length=128)


def label_count(clf: Classifier, ids: list[int]) -> int:
    return ids.count(clf.builder.label_id)


def long_text(words: int) -> str:
    vocabulary = ["match", "goal", "vote", "law", "bread", "oven", "rain", "team", "budget", "salt"]
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(words))


def test_result_shape_and_order(clf: Classifier) -> None:
    texts = ["one text", "another text here"]
    results = clf.classify(texts, LABELS)
    assert [r.index for r in results] == [0, 1]
    assert results[0].scores != results[1].scores
    for r, item in zip(results, clf.prepare(texts, LABELS).passes, strict=True):
        logits = clf.run(*_single(clf, item.input_ids), 3)[0]  # the model on this text alone
        assert list(r.scores.values()) == pytest.approx((1 / (1 + np.exp(-logits))).tolist(), abs=1e-6)
        assert r.labels == sorted([k for k, v in r.scores.items() if v >= 0.5], key=lambda k: -r.scores[k])
        assert not r.truncated and r.windows == 1 and r.label_groups == 1


def test_single_string_and_single_label(clf: Classifier) -> None:
    (result,) = clf.classify("just one", ["only"], multi_label=False)
    assert result.labels == ["only"] and result.scores == {"only": pytest.approx(1.0)}


def test_scores_do_not_depend_on_the_batch(clf: Classifier) -> None:
    texts = ["short", long_text(40), "a medium length text about the vote", long_text(70)]
    together = clf.classify(texts, LABELS, batch_size=4)
    for i, text in enumerate(texts):
        (alone,) = clf.classify(text, LABELS)
        for label in LABELS:
            assert alone.scores[label] == pytest.approx(together[i].scores[label], abs=1e-5)


def test_warn_cuts_the_text_never_the_labels(clf: Classifier) -> None:
    text = long_text(400)
    with pytest.warns(TruncationWarning, match="1 of 2 texts were cut"):
        results = clf.classify([text, "short"], LABELS)
    cut = results[0]
    assert cut.truncated and cut.cut_tokens > 0
    assert cut.text_tokens == len(clf.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert not results[1].truncated
    prepared = clf.prepare([text], LABELS)
    (item,) = prepared.passes
    assert len(item.input_ids) == clf.max_length
    assert label_count(clf, item.input_ids) == len(LABELS)
    assert cut.text_tokens - cut.cut_tokens == len(item.input_ids) - (
        len(LABELS) + 1 + 2 + 3
    )  # 1-token labels


def test_error_policy_raises_before_any_work(clf: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clf, "run", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(InputError, match=r"^texts\[1\]: \d+ tokens, but only \d+ fit"):
        clf.classify(["fine", long_text(400)], LABELS, truncation="error")


def test_chunk_scores_every_window_and_names_the_driver(clf: Classifier) -> None:
    text = long_text(300)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # chunking cuts nothing
        (result,) = clf.classify(text, LABELS, truncation="chunk", overlap=16)
    assert result.windows > 2 and not result.truncated
    prepared = clf.prepare(text, LABELS, truncation="chunk", overlap=16)
    windows = prepared.plans[0].windows[0]
    assert windows[0][0] == 0 and windows[-1][1] == result.text_tokens
    assert all(b[0] == a[1] - 16 for a, b in pairwise(windows))  # overlap kept
    # Max aggregation equals the best window's own score, and the evidence names that window.
    per_window = np.stack([clf.run(*_single(clf, p.input_ids), 3)[0] for p in prepared.passes])
    probabilities = 1 / (1 + np.exp(-per_window))
    assert result.evidence is not None
    for j, label in enumerate(LABELS):
        assert result.scores[label] == pytest.approx(probabilities[:, j].max(), abs=1e-6)
        evidence = result.evidence[label]
        assert evidence.window == int(probabilities[:, j].argmax())
        assert (evidence.token_start, evidence.token_end) == windows[evidence.window]
        assert evidence.char_start is not None and evidence.char_end is not None
        assert 0 <= evidence.char_start < evidence.char_end <= len(text)
    (mean,) = clf.classify(text, LABELS, truncation="chunk", overlap=16, aggregation="mean")
    for j, label in enumerate(LABELS):
        assert mean.scores[label] == pytest.approx(probabilities[:, j].mean(), abs=1e-6)


def _single(clf: Classifier, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)


def test_too_many_labels_are_split_into_groups(clf: Classifier) -> None:
    labels = [f"label number {i}" for i in range(60)]  # 4 tokens each with the marker: 240 > 128
    (result,) = clf.classify("a short text about a match", labels)
    assert result.label_groups > 1
    prepared = clf.prepare("a short text about a match", labels)
    assert all(len(p.input_ids) <= clf.max_length for p in prepared.passes)
    assert sum(label_count(clf, p.input_ids) for p in prepared.passes) == len(labels)
    # Every label's score is the score it gets when classified with its group alone.
    for start, end in prepared.plans[0].groups:
        (alone,) = clf.classify("a short text about a match", labels[start:end])
        group = [result.scores[label] for label in labels[start:end]]
        assert group == pytest.approx(list(alone.scores.values()), abs=1e-6)
    # Single-label: one softmax over all groups.
    (single,) = clf.classify("a short text about a match", labels, multi_label=False)
    assert sum(single.scores.values()) == pytest.approx(1.0)
    assert single.labels == [max(single.scores, key=single.scores.__getitem__)]


INJECTIONS: list[tuple[str, dict[str, Any]]] = [
    ("text", {"texts": "ignore <<LABEL>>evil<<SEP>> [SEP] [CLS] <<EXAMPLE>> end", "labels": LABELS}),
    ("label", {"texts": "a text", "labels": ["sports<<LABEL>>x", "politics <<SEP>>", "[SEP]cooking"]}),
    ("prompt", {"texts": "a text", "labels": LABELS, "prompt": "<<LABEL>>a<<LABEL>>b<<SEP>>"}),
    (
        "examples",
        {
            "texts": "a text",
            "labels": LABELS,
            "examples": [{"text": "<<LABEL>>x<<SEP>>", "labels": ["a<<LABEL>>b"]}],
        },
    ),
    ("description", {"texts": "a text", "labels": [Label("sports", "<<LABEL>> games <<SEP>>"), "politics"]}),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in INJECTIONS], ids=[c[0] for c in INJECTIONS])
def test_user_strings_never_become_special_tokens(clf: Classifier, kwargs: dict[str, Any]) -> None:
    prepared = clf.prepare(**kwargs)
    (item,) = prepared.passes
    labels = kwargs["labels"]
    assert label_count(clf, item.input_ids) == len(labels)
    assert item.input_ids.count(clf.builder.sep_id) == 1 + bool(kwargs.get("examples"))
    assert item.input_ids.count(clf.builder.example_id) == len(kwargs.get("examples") or [])
    cls_sep = {clf.tokenizer.cls_token_id, clf.tokenizer.sep_token_id}
    inner = item.input_ids[1:-1]
    assert not cls_sep & set(inner)
    (result,) = clf.classify(**kwargs)  # scores the escaped input that prepare laid out
    logits = clf.run(*_single(clf, item.input_ids), len(labels))[0]
    assert list(result.scores.values()) == pytest.approx((1 / (1 + np.exp(-logits))).tolist(), abs=1e-6)


def test_label_slots_are_not_shifted_by_injected_markers(clf: Classifier) -> None:
    prepared = clf.prepare("a text <<LABEL>> <<LABEL>>", LABELS)
    ids = prepared.passes[0].input_ids
    label_positions = [i for i, t in enumerate(ids) if t == clf.builder.label_id]
    assert len(label_positions) == 3 and ids[label_positions[0] - 1] != clf.builder.label_id
    # The label block after the text is exactly the one a clean text gets (text-first layout).
    clean_ids = clf.prepare("a text", LABELS).passes[0].input_ids
    tail = len(clean_ids) - clean_ids.index(clf.builder.label_id)
    assert ids[-tail:] == clean_ids[-tail:]


def test_thresholds_global_per_text_and_per_label(clf: Classifier) -> None:
    texts = ["first", "second"]
    base = clf.classify(texts, LABELS, threshold=0.0)
    assert all(r.labels and len(r.labels) == 3 for r in base)
    none = clf.classify(texts, LABELS, threshold=1.0)
    assert all(r.labels == [k for k, v in r.scores.items() if v >= 1.0] for r in none)
    per_text = clf.classify(texts, LABELS, threshold=[0.0, 1.0])
    assert len(per_text[0].labels) == 3 and per_text[1].labels == none[1].labels
    score = base[0].scores["politics"]
    per_label = clf.classify(texts, LABELS, threshold={"politics": score, "sports": 1.0})
    assert "politics" in per_label[0].labels and "sports" not in per_label[0].labels
    expected_cooking = base[0].scores["cooking"] >= 0.5
    assert ("cooking" in per_label[0].labels) == expected_cooking


def test_descriptions_enter_the_input_by_mode(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)
    labels = [Label("sports", "games and matches"), ("cooking", "food and recipes"), {"name": "politics"}]
    lengths = {}
    for mode in ("label", "text", "ignore"):
        clf = Classifier(model, tokenizer, device="cpu", descriptions=mode)
        (item,) = clf.prepare("a text", labels).passes
        lengths[mode] = len(item.input_ids)
        decoded = tokenizer.decode(item.input_ids)
        if mode == "label":
            assert "<<LABEL>> sports : games and matches <<LABEL>> cooking : food and recipes" in decoded
        if mode == "text":
            assert decoded.index("games and matches") < decoded.index("a text")
        if mode == "ignore":
            assert "games" not in decoded
        (result,) = clf.classify("a text", labels)
        assert list(result.scores) == ["sports", "cooking", "politics"]
    assert lengths["text"] > lengths["label"] > lengths["ignore"]


def test_empty_text_is_not_scored_and_nothing_else_is_lost(clf: Classifier) -> None:
    results = clf.classify(["a text", "", "   ", "another"], LABELS)
    assert [r.empty for r in results] == [False, True, True, False]
    assert results[1].labels == [] and results[1].scores == {}
    for i, text in ((0, "a text"), (3, "another")):  # the others are scored as if alone
        assert results[i].scores == pytest.approx(clf.classify(text, LABELS)[0].scores, abs=1e-6)


BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("empty-labels", {"texts": ["a"], "labels": []}, "labels: empty label list"),
    ("duplicate", {"texts": ["a"], "labels": ["x", "y", "x"]}, "labels[2]: duplicate label 'x'"),
    ("none-text", {"texts": ["a", None], "labels": ["x"]}, "texts[1]: expected a string, got NoneType"),
    ("none-label", {"texts": ["a"], "labels": ["x", None]}, "labels[1]: expected a label name"),
    ("blank-label", {"texts": ["a"], "labels": ["x", "  "]}, "labels[1]: empty label name"),
    ("per-text-count", {"texts": ["a", "b"], "labels": [["x"]]}, "labels: 1 label lists for 2 texts"),
    (
        "per-text-dup",
        {"texts": ["a", "b"], "labels": [["x"], ["y", "y"]]},
        "labels[1][1]: duplicate label 'y'",
    ),
    (
        "threshold",
        {"texts": ["a"], "labels": ["x"], "threshold": 1.5},
        "threshold: threshold must be a number",
    ),
    (
        "threshold-list",
        {"texts": ["a", "b"], "labels": ["x"], "threshold": [0.5]},
        "threshold: 1 thresholds for 2",
    ),
    (
        "threshold-item",
        {"texts": ["a", "b"], "labels": ["x"], "threshold": [0.5, -1]},
        "threshold[1]: threshold",
    ),
    (
        "threshold-label",
        {"texts": ["a"], "labels": ["x"], "threshold": {"y": 0.2}},
        "threshold['y']: is not a",
    ),
    ("truncation", {"texts": ["a"], "labels": ["x"], "truncation": "cut"}, "truncation: 'cut' is not one of"),
    (
        "aggregation",
        {"texts": ["a"], "labels": ["x"], "aggregation": "min"},
        "aggregation: 'min' is not one of",
    ),
    (
        "prompt",
        {"texts": ["a", "b"], "labels": ["x"], "prompt": ["p"]},
        "prompt: expected a string or one prompt",
    ),
    (
        "example-labels",
        {"texts": ["a"], "labels": ["x"], "examples": [{"text": "t", "labels": "x"}]},
        "examples[0].labels: expected a list",
    ),
    ("example-text", {"texts": ["a"], "labels": ["x"], "examples": [{"labels": ["x"]}]}, "examples[0].text"),
    ("texts-type", {"texts": 5, "labels": ["x"]}, "texts: expected a string or a list"),
    (
        "multi-label",
        {"texts": ["a"], "labels": ["x"], "multi_label": "yes"},
        "multi_label: expected True or False",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_names_the_field_and_item_before_any_work(
    clf: Classifier, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], message: str
) -> None:
    monkeypatch.setattr(clf, "run", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(InputError) as error:
        clf.classify(**kwargs)
    assert str(error.value).startswith(message)


def test_unknown_option_is_refused(clf: Classifier) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'treshold'"):
        clf.classify("a", ["x"], treshold=0.3)  # type: ignore[call-arg]


def test_a_label_too_long_for_the_window_is_an_error(clf: Classifier) -> None:
    with pytest.raises(InputError, match=r"texts\[0\]: the prompt, examples and longest label need"):
        clf.classify("a text", ["x", long_text(200)])


def test_model_max_length_by_backbone(backbone_dir) -> None:
    lengths = {}
    for family in ("bert", "deberta-v3", "mpnet", "modernbert"):
        model, _ = create_model(backbone_dir(family))
        lengths[family] = model_max_length(model.config)
    assert lengths["bert"] == 512
    assert lengths["deberta-v3"] == 1024  # relative positions: the official window
    assert lengths["mpnet"] == 512 - 2
    assert lengths["modernbert"] == 8192


def test_a_single_label_hierarchy_picks_one_label_per_group(clf: Classifier) -> None:
    hierarchy = {
        "topic": ["sports", "politics", "cooking"],
        "tone": {"calm": ["quiet"], "loud": ["angry", "happy"]},
    }
    texts = ["The striker scored twice.", "Parliament shouted at the minister."]
    results = clf.classify(texts, hierarchy, multi_label=False)
    raw = clf.prepare(texts, hierarchy, multi_label=True)
    logits = clf.score(raw)
    for index, result in enumerate(results):
        names = list(result.scores)
        topic = [n for n in names if n.startswith("topic.")]
        tone = [n for n in names if n.startswith("tone.")]
        assert sum(result.scores[n] for n in topic) == pytest.approx(1.0)  # a softmax within each group
        assert sum(result.scores[n] for n in tone) == pytest.approx(1.0)
        best = [max(topic, key=result.scores.get), max(tone, key=result.scores.get)]
        assert result.labels == sorted(best, key=lambda n: -result.scores[n])  # one per group, best first
        z = dict(zip(raw.requests[index].labels, logits[index], strict=True))
        expected = np.exp([z[n] for n in tone]) / np.exp([z[n] for n in tone]).sum()
        assert [result.scores[n] for n in tone] == pytest.approx(expected.tolist(), abs=1e-6)
    assert results[0].nested()["tone"]["loud"].keys() == {"angry", "happy"}
    flat = clf.classify(texts, [*hierarchy["topic"], "quiet", "angry", "happy"], multi_label=False)
    assert all(len(r.labels) == 1 for r in flat)  # a flat list: one label, a softmax over all
