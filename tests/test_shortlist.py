"""Thousands of labels: a retriever ranks them, the model scores only the top k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from everylabel import Classifier, InputError, create_model
from everylabel.inference.retrieval import EmbeddingRetriever
from tests import oracle
from tests.backbones import minilm_dir
from tests.test_cli import jsonl, run

TEXTS = [
    "The striker scored twice and the team won the cup final.",
    "The senate voted on the new tax law after a long debate.",
    "",
    "Bake the bread for forty minutes until the crust is golden.",
]
LABELS = ["football", "politics", "baking", "astronomy", "chemistry", "music", "taxation", "gardening",
          "law", "cooking", "sports", "religion"]  # fmt: skip


@pytest.fixture(scope="module")
def retriever() -> EmbeddingRetriever:
    return EmbeddingRetriever(minilm_dir())


@pytest.fixture(scope="module")
def uni(backbone_dir) -> Classifier:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    return Classifier(model, tokenizer, device="cpu")


def test_top_k_of_the_retriever_are_scored_by_the_model(uni: Classifier, retriever) -> None:
    results = uni.classify(TEXTS, LABELS, shortlist=3, retriever=retriever)
    ranked = retriever.rank([t for t in TEXTS if t], [LABELS] * 3)
    assert results[2].empty and results[2].shortlist is None
    for result, text, scores in zip(
        [results[0], results[1], results[3]], [TEXTS[0], TEXTS[1], TEXTS[3]], ranked, strict=True
    ):
        top = [LABELS[j] for j in np.argsort(-scores, kind="stable")[:3]]
        assert result.shortlist is not None
        assert result.shortlist.labels == top and result.shortlist.candidates == len(LABELS)
        assert list(result.shortlist.retriever_scores.values()) == pytest.approx(sorted(scores)[::-1][:3])
        assert set(result.scores) == set(top)
        direct = uni.classify(text, [label for label in LABELS if label in top])[0]  # the caller's order
        assert result.scores == pytest.approx(direct.scores, abs=1e-6)
    # The retriever understands the texts (real MiniLM): the gold topic is in each top 3.
    assert "football" in results[0].shortlist.labels or "sports" in results[0].shortlist.labels
    assert "baking" in results[3].shortlist.labels
    record = results[0].to_dict()
    assert record["shortlist"] == results[0].shortlist.labels and record["candidates"] == len(LABELS)


def test_a_shortlist_as_long_as_the_labels_changes_no_score(uni: Classifier, retriever) -> None:
    full = uni.classify(TEXTS, LABELS)
    listed = uni.classify(TEXTS, LABELS, shortlist=len(LABELS) + 5, retriever=retriever)
    for a, b in zip(full, listed, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)


def test_thresholds_and_per_text_labels_follow_the_shortlist(uni: Classifier, retriever) -> None:
    per_text = [LABELS, LABELS[:6], ["music"], LABELS[3:]]
    results = uni.classify(TEXTS, per_text, shortlist=2, retriever=retriever, threshold={"cooking": 0.0})
    assert results[1].shortlist is not None and set(results[1].shortlist.labels) <= set(LABELS[:6])
    assert results[3].shortlist is not None and "cooking" in results[3].shortlist.labels
    assert results[3].labels == ["cooking"]  # its threshold of 0 applies after the shortlist


def test_bad_shortlist_arguments_are_named(uni: Classifier, retriever) -> None:
    with pytest.raises(InputError, match=r"^shortlist: expected a number of labels >= 1, got 0"):
        uni.classify(TEXTS, LABELS, shortlist=0, retriever=retriever)
    with pytest.raises(InputError, match=r"^shortlist: works on a flat label list"):
        uni.classify(TEXTS, {"topic": ["a", "b"]}, shortlist=1, retriever=retriever)
    with pytest.raises(InputError, match=r"^retriever: ranks labels for shortlist=k"):
        uni.classify(TEXTS, LABELS, retriever=retriever)
    with pytest.raises(InputError, match=r"^retriever: a GLiClass retriever must be a bi-encoder"):
        uni.classify(TEXTS, LABELS, shortlist=2, retriever=uni)


def test_a_plain_bi_encoder_ranks_for_itself(backbone_dir) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"), architecture_type="bi-encoder", normalize_features=True, dropout=0.0
    )
    oracle.spread_weights(model)
    clf = Classifier(model, tokenizer, device="cpu")
    full = clf.classify(TEXTS, LABELS)
    short = clf.classify(TEXTS, LABELS, shortlist=4)
    for a, b in zip(full, short, strict=True):
        if a.empty:
            continue
        best = sorted(a.scores, key=a.scores.get, reverse=True)[:4]
        assert b.shortlist is not None and b.shortlist.labels == best
        assert b.scores == pytest.approx({k: a.scores[k] for k in best}, abs=1e-6)


def test_long_texts_are_embedded_in_windows_not_cut(retriever: EmbeddingRetriever) -> None:
    text = " ".join(["The orchestra played a symphony in the old hall."] * 120)  # > 1,000 tokens
    ids = retriever.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 2 * retriever.window
    windows = [
        retriever.tokenizer.decode(ids[s : s + retriever.window])
        for s in range(0, len(ids), retriever.window)
    ]
    parts = torch.stack([retriever.embed([w])[0] for w in windows])
    expected = torch.nn.functional.normalize(parts.sum(0), dim=0)
    assert torch.allclose(retriever.embed([text])[0], expected, atol=1e-4)


def test_cli_shortlist_with_a_labels_file(capsys, backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    code, out, _ = run(
        capsys, "classify", TEXTS[0], "--model", str(tmp_path / "m"), "--labels-file", str(labels),
        "--shortlist", "2", "--retriever", str(minilm_dir()),
    )  # fmt: skip
    assert code == 0
    (record,) = jsonl(out)
    assert len(record["shortlist"]) == 2 and set(record["scores"]) == set(record["shortlist"])
    assert set(record["retriever_scores"]) == set(record["shortlist"]) and record["candidates"] == len(LABELS)
    code, _, err = run(capsys, "classify", TEXTS[0], "--model", str(tmp_path / "m"), "--labels", "a,b",
                       "--retriever", str(minilm_dir()))  # fmt: skip
    assert code == 2 and "retriever: ranks labels for shortlist=k" in err


def test_a_retriever_path_ranks_the_same_on_both_runtimes(capsys, backbone_dir, tmp_path: Path) -> None:
    """`--retriever PATH` on the ONNX runtime, the default model's on a CPU: a sentence-embedding
    backbone and a bi-encoder checkpoint, resolved as on torch."""
    pytest.importorskip("onnxruntime")
    from everylabel.onnx import export_onnx
    from tests.test_onnx import save_checkpoint

    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    folder = save_checkpoint(model, tokenizer, tmp_path / "m")
    runtimes = [
        Classifier.from_pretrained(folder, device="cpu"),
        Classifier.from_pretrained(export_onnx(folder, tmp_path / "onnx")),
    ]
    assert [clf.backend.kind for clf in runtimes] == ["torch", "onnx"]
    bi, bi_tokenizer = create_model(
        backbone_dir("bert"), architecture_type="bi-encoder", normalize_features=True
    )
    oracle.spread_weights(bi)
    bi_folder = save_checkpoint(bi, bi_tokenizer, tmp_path / "bi")
    for retriever in (str(minilm_dir()), str(bi_folder)):
        a, b = (clf.classify(TEXTS, LABELS, shortlist=3, retriever=retriever) for clf in runtimes)
        for x, y in zip(a, b, strict=True):
            assert (x.shortlist and x.shortlist.labels) == (y.shortlist and y.shortlist.labels)
            assert x.scores == pytest.approx(y.scores, abs=1e-4)
    code, out, err = run(capsys, "classify", TEXTS[0], "--labels", ",".join(LABELS), "--shortlist", "2",
                         "--retriever", str(minilm_dir()), "--verbose")  # fmt: skip
    assert code == 0, err
    assert "backend: onnxruntime" in err and len(jsonl(out)[0]["shortlist"]) == 2
