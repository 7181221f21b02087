"""`everylabel eval` and the scorers: everylabel, the official pipeline, an NLI cross-encoder, embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from everylabel.cli import main
from everylabel.evaluation.datasets import load_local
from everylabel.evaluation.runner import evaluate
from everylabel.evaluation.scorers import build_scorer, parse_model
from everylabel.metrics import expected_calibration_error, f1_scores
from tests import oracle
from tests.backbones import minilm_dir

ROWS = [
    {"text": "The match ended in a draw.", "label": "sports"},
    {"text": "Parliament passed the budget.", "label": "politics"},
    {"text": "Stir the sauce and add salt.", "label": "cooking"},
    {"text": "The goalkeeper saved a penalty.", "label": "sports"},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "topics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


@pytest.fixture(scope="module")
def checkpoint(backbone_dir, tmp_path_factory) -> Path:
    return oracle.official_checkpoint(
        backbone_dir("bert"), tmp_path_factory.mktemp("ckpt"), scorer_type="mlp"
    )


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory) -> Path:
    """A tiny NLI-shaped cross-encoder (3-way head) on the MiniLM tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    names = {0: "entailment", 1: "neutral", 2: "contradiction"}
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3, id2label=names,
                        label2id={v: k for k, v in names.items()})  # fmt: skip
    folder = tmp_path_factory.mktemp("nli")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_parse_model() -> None:
    assert parse_model("nli:/a/b") == ("nli", "/a/b")
    assert parse_model("embedding:x") == ("embedding", "x")
    assert parse_model("/a/b") == ("everylabel", "/a/b")
    assert parse_model("org/model") == ("everylabel", "org/model")


def test_everylabel_and_official_scorers_agree(checkpoint: Path, dataset: Path) -> None:
    data = load_local(dataset)
    for multi in (False, True):
        ours = build_scorer(str(checkpoint), device="cpu").score(data.texts, data.labels, multi)
        theirs = build_scorer(f"gliclass:{checkpoint}", device="cpu").score(data.texts, data.labels, multi)
        for a, b in zip(ours, theirs, strict=True):
            for label in data.labels:
                assert a[label] == pytest.approx(b[label], abs=1e-5)


@pytest.mark.parametrize("kind", ["nli", "embedding"])
def test_baseline_scorers_score_every_label(kind: str, nli_model: Path, dataset: Path) -> None:
    path = nli_model if kind == "nli" else minilm_dir()
    scorer = build_scorer(f"{kind}:{path}", device="cpu")
    data = load_local(dataset)
    single = scorer.score(data.texts, data.labels, multi_label=False)
    assert all(set(row) == set(data.labels) for row in single)
    assert all(sum(row.values()) == pytest.approx(1.0, abs=1e-4) for row in single)
    multi = scorer.score(data.texts, data.labels, multi_label=True)
    assert all(0.0 <= v <= 1.0 for row in multi for v in row.values())


def test_embedding_baseline_finds_the_obvious_topics(dataset: Path) -> None:
    report = evaluate(build_scorer(f"embedding:{minilm_dir()}", device="cpu"), load_local(dataset))
    assert report["metrics"]["accuracy"] == 1.0  # pretrained MiniLM: football is sports


def test_report_metrics_follow_the_predictions(checkpoint: Path, dataset: Path) -> None:
    data = load_local(dataset)
    scorer = build_scorer(str(checkpoint), device="cpu")
    report = evaluate(scorer, data)
    scores = scorer.score(data.texts, data.labels, False)
    predicted = [[max(row, key=row.__getitem__)] for row in scores]
    expected = f1_scores(data.gold, predicted, data.labels)
    for key in ("macro_f1", "micro_f1", "weighted_f1", "accuracy"):
        assert report["metrics"][key] == pytest.approx(expected[key])
    confidences = [row[p[0]] for row, p in zip(scores, predicted, strict=True)]
    correct = [p[0] == g[0] for p, g in zip(predicted, data.gold, strict=True)]
    assert report["metrics"]["ece"] == pytest.approx(expected_calibration_error(confidences, correct))
    assert set(report["per_label"]) == set(data.labels)


def test_eval_command_compares_models_in_one_run(capsys, checkpoint: Path, nli_model: Path, dataset: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "reports.json"
    code = main(["eval", "--model", str(checkpoint), "--model", f"embedding:{minilm_dir()}", "--model",
                 f"nli:{nli_model}", "--dataset", str(dataset), "--json", str(out)])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert table.count("macro-F1") == 3 and "embedding:" in table and "nli:" in table
    reports = json.loads(out.read_text())
    assert [r["texts"] for r in reports] == [4, 4, 4]
    assert all(0 <= r["metrics"]["macro_f1"] <= 1 for r in reports)


def test_eval_command_takes_a_dtype(capsys, checkpoint: Path, dataset: Path) -> None:
    args = ["eval", "--model", str(checkpoint), "--dataset", str(dataset), "--format", "json"]
    assert main([*args, "--dtype", "bf16"]) == 0
    half = json.loads(capsys.readouterr().out)[0]
    assert main([*args, "--dtype", "fp32"]) == 0
    full = json.loads(capsys.readouterr().out)[0]
    assert half["texts"] == full["texts"] == 4
    assert (half["dtype"], full["dtype"]) == ("bfloat16", "float32")
    assert main([*args, "--dtype", "fp8"]) == 2
    assert "dtype: 'fp8' is not one of" in capsys.readouterr().err


def test_eval_command_errors(capsys) -> None:
    code = main(["eval", "--model", "x", "--dataset", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("everylabel: error: dataset: 'nope'")


def test_ece_known_values() -> None:
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([1.0, 1.0], [False, False]) == pytest.approx(1.0)
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9, 0.1], [True, True]) == pytest.approx((0.1 + 0.9) / 2)
