"""Score calibration: the fit recovers known distortions, the stored file is applied everywhere."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from everylabel import Classifier, create_model
from everylabel.cli import main
from everylabel.errors import ConfigError
from everylabel.evaluation.calibrate import (
    Scored,
    fit_calibration,
    fit_scaling,
    scoring_metrics,
    tune_thresholds,
)
from everylabel.inference.calibration import CALIBRATION_FILE, Calibration, load_calibration
from tests import oracle, toy

LABELS = ["sports", "food", "weather", "music"]
TEXTS = ["football and a late goal", "bread and soup", "rain and wind", "a song on the piano", ""]


def synthetic(distort, seed: int = 0, texts: int = 3000, single_label: bool = False) -> Scored:
    """Logits `distort(true logits)` with outcomes drawn from the true logits' probabilities."""
    rng = np.random.default_rng(seed)
    labels = [f"l{i}" for i in range(4)]
    out = Scored([], [], [])
    for _ in range(texts):
        true = rng.normal(0.0, 2.0, size=4)
        if single_label:
            probs = np.exp(true) / np.exp(true).sum()
            gold = {labels[rng.choice(4, p=probs)]}
        else:
            gold = {name for name, z in zip(labels, true, strict=True) if rng.random() < 1 / (1 + np.exp(-z))}
        out.labels.append(labels)
        out.logits.append(distort(true))
        out.gold.append(gold)
    return out


def test_temperature_and_platt_recover_known_distortions() -> None:
    scale, bias, _ = fit_scaling(synthetic(lambda z: 3.0 * z), "temperature", False, False)
    assert scale == pytest.approx(1 / 3, rel=0.08) and bias == 0.0
    scale, bias, _ = fit_scaling(synthetic(lambda z: 2.0 * z - 1.0), "platt", False, False)
    assert scale == pytest.approx(0.5, rel=0.08) and bias == pytest.approx(0.5, abs=0.1)
    scale, _, _ = fit_scaling(synthetic(lambda z: 2.0 * z, single_label=True), "temperature", False, True)
    assert scale == pytest.approx(0.5, rel=0.08)


def test_per_label_scales_follow_each_label() -> None:
    factors = np.array([1.0, 1.0, 4.0, 4.0])  # labels 2 and 3 are four times overconfident
    scale, _, own = fit_scaling(synthetic(lambda z: factors * z), "temperature", True, False)
    assert own["l0"][0] == pytest.approx(1.0, rel=0.15) and own["l2"][0] == pytest.approx(0.25, rel=0.15)
    assert own["l0"][0] > scale > own["l2"][0]


def test_fitting_improves_held_out_nll_brier_and_ece() -> None:
    data = synthetic(lambda z: 3.0 * z + 1.0)
    calibration = fit_calibration(data, method="platt", thresholds=True, holdout=0.3)
    before, after = calibration.report["before"], calibration.report["after"]
    assert calibration.report["texts_held_out"] == 900
    for metric in ("nll", "brier", "ece"):
        assert after[metric] < before[metric], metric
    assert after["ece"] < 0.03
    assert scoring_metrics(data, False)["nll"] > 0
    f1 = calibration.report["macro_f1_multi_label"]
    assert set(f1) == {"uncalibrated_at_0.5", "calibrated_at_0.5", "tuned_thresholds"}
    assert set(calibration.thresholds) == {"l0", "l1", "l2", "l3"}


def test_thresholds_separate_a_label_whose_scores_separate() -> None:
    logits = [np.array([np.log(p / (1 - p))]) for p in (0.31, 0.35, 0.4, 0.2, 0.1, 0.25)]
    data = Scored([["a"]] * 6, logits, [{"a"}, {"a"}, {"a"}, set(), set(), set()])
    tuned, default = tune_thresholds(data)
    assert 0.25 < tuned["a"] <= 0.31 and 0.25 < default <= 0.31


def test_the_stored_file_round_trips_and_bad_values_are_named(tmp_path: Path) -> None:
    calibration = Calibration("platt", "multi-label", 0.5, 0.2, {"a": (2.0, -1.0)}, {"a": 0.3}, 0.4, {"x": 1})
    calibration.save(tmp_path)
    assert load_calibration(tmp_path) == calibration
    assert load_calibration(tmp_path / "nothing") is None
    for key, value, message in (
        ("scale", -1.0, "calibration.scale"),
        ("method", "isotonic", "calibration.method"),
        ("thresholds", {"a": 1.5}, "calibration.thresholds['a']"),
    ):
        data = {**calibration.to_dict(), key: value}
        (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            load_calibration(tmp_path)


@pytest.fixture(scope="module")
def model_dir(backbone_dir, tmp_path_factory) -> Path:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    folder = tmp_path_factory.mktemp("calibration-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def calibrated_dir(model_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calibrated")
    for path in model_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    thresholds = {"sports": 0.9, "food": 0.05}
    Calibration("platt", "multi-label", 0.5, 0.3, {"weather": (2.0, -0.5)}, thresholds, 0.6).save(folder)
    return folder


def expected_scores(raw: Classifier, texts: list[str]) -> list[dict[str, float]]:
    scale = {name: (2.0, -0.5) if name == "weather" else (0.5, 0.3) for name in LABELS}
    out = []
    for result in raw.classify(texts, LABELS):
        z = {k: np.log(v / (1 - v)) for k, v in result.scores.items()}
        out.append({k: float(1 / (1 + np.exp(-(scale[k][0] * z[k] + scale[k][1])))) for k in z})
    return out


def test_the_classifier_applies_a_stored_calibration_and_its_thresholds(model_dir, calibrated_dir) -> None:
    raw = Classifier.from_pretrained(model_dir, backend="torch")
    clf = Classifier.from_pretrained(calibrated_dir, backend="torch")
    assert clf.calibration is not None and raw.calibration is None
    results = clf.classify(TEXTS, LABELS)
    assert results[4].empty and results[4].labels == []
    for result, expected in zip(results[:4], expected_scores(raw, TEXTS[:4]), strict=True):
        assert result.scores == pytest.approx(expected, abs=1e-5)
        limits = {"sports": 0.9, "food": 0.05, "weather": 0.6, "music": 0.6}
        assert result.labels == [
            n for n in sorted(LABELS, key=lambda n: -result.scores[n]) if result.scores[n] >= limits[n]
        ]
    assert "food" in results[0].labels and "sports" not in results[0].labels
    explicit = clf.classify(TEXTS[:1], LABELS, threshold=0.99)[0]
    assert explicit.labels == []  # nothing above the caller's threshold: an explicit empty answer
    off = Classifier.from_pretrained(calibrated_dir, backend="torch", calibration=False)
    assert off.classify(TEXTS[:1], LABELS)[0].scores == raw.classify(TEXTS[:1], LABELS)[0].scores


def test_onnx_export_and_server_apply_it_too(calibrated_dir, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from everylabel.onnx import OnnxClassifier
    from everylabel.onnx.export import export_onnx
    from everylabel.serving import create_app

    torch_clf = Classifier.from_pretrained(calibrated_dir, backend="torch")
    expected = torch_clf.classify(TEXTS, LABELS)
    folder = export_onnx(calibrated_dir, tmp_path / "onnx")
    assert (folder / CALIBRATION_FILE).is_file()
    onnx = OnnxClassifier(folder)
    for got, want in zip(onnx.classify(TEXTS, LABELS), expected, strict=True):
        assert got.scores == pytest.approx(want.scores, abs=1e-4) and got.labels == want.labels
    with TestClient(create_app(lambda: torch_clf)) as client:
        import time

        while client.get("/health").status_code != 200:
            time.sleep(0.05)
        answer = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS}).json()["results"]
    for got, want in zip(answer, expected, strict=True):
        assert got["scores"] == pytest.approx(want.scores, abs=1e-6) and got["labels"] == want.labels


def test_the_calibrate_command_writes_a_calibrated_copy(model_dir, tmp_path, capsys) -> None:
    data = toy.write_toy(tmp_path / "toy.jsonl", 60)
    out = tmp_path / "calibrated"
    code = main(
        ["calibrate", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--method", "platt",
         "--per-label", "--thresholds", "--holdout", "0.25"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["texts_fit"] == 45 and summary["texts_held_out"] == 15
    assert set(summary["before"]) == {"nll", "brier", "ece"}
    calibration = load_calibration(out)
    assert calibration is not None and calibration.method == "platt"
    assert set(calibration.per_label) == set(toy.TOPICS)
    assert (out / "config.json").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Classifier.from_pretrained(out, backend="torch").calibration == calibration
    again = main(["calibrate", "--model", str(model_dir), "--data", str(data), "--out", str(out)])
    assert again == 2 and "not empty" in capsys.readouterr().err


def test_a_calibration_applies_only_in_the_mode_it_was_fitted_for(model_dir) -> None:
    raw = Classifier.from_pretrained(model_dir, backend="torch")
    single = Calibration(
        "temperature", "single-label", 3.0, 0.0, thresholds={"sports": 0.01}, default_threshold=0.01
    )
    clf = Classifier.from_pretrained(model_dir, backend="torch", calibration=single)
    for got, want in zip(clf.classify(TEXTS, LABELS), raw.classify(TEXTS, LABELS), strict=True):
        assert got.scores == want.scores and got.labels == want.labels  # sigmoid calls: the model's own
    texts = TEXTS[:4]
    got = clf.classify(texts, LABELS, multi_label=False)
    want = raw.classify(texts, LABELS, multi_label=False)
    for a, b in zip(got, want, strict=True):  # softmax calls: temperature 1/3 on every logit
        ratio = np.log(a.scores["sports"] / a.scores["food"])
        assert ratio == pytest.approx(3 * np.log(b.scores["sports"] / b.scores["food"]), abs=1e-5)
    multi = Calibration("platt", "multi-label", 2.0, 1.0, thresholds={"sports": 0.99})
    clf.calibration = multi
    for a, b in zip(clf.classify(texts, LABELS, multi_label=False), want, strict=True):
        assert a.scores == b.scores  # a sigmoid fit says nothing about a softmax


def test_few_shot_fitting_drops_a_calibration_fitted_on_the_old_model(calibrated_dir) -> None:
    from everylabel.training.fewshot import StaleCalibrationWarning, few_shot_fit

    clf = Classifier.from_pretrained(calibrated_dir, backend="torch")
    assert clf.calibration is not None
    examples = [{"text": text, "labels": [label]} for text, label in zip(TEXTS[:4], LABELS, strict=True)]
    with pytest.warns(StaleCalibrationWarning, match="calibrate"):
        few_shot_fit(clf, examples, epochs=1, batch_size=4)
    assert clf.calibration is None
    result = clf.classify(TEXTS[:1], LABELS)[0]
    assert result.labels == [
        n for n in sorted(LABELS, key=lambda n: -result.scores[n]) if result.scores[n] >= 0.5
    ]


def test_a_few_dozen_separable_texts_cannot_push_the_scale_far() -> None:
    """20 plainly separable texts in two topics: maximum likelihood alone sends the scale to infinity
    (it fitted 37.7 before), making every later score 0 or 1; the prior keeps it near 1."""
    labels = ["sports", "politics"]
    scored = Scored([], [], [])
    for i in range(20):
        gold = labels[i % 2]
        scored.labels.append(labels)
        scored.logits.append(np.array([2.0, -2.0]) if gold == "sports" else np.array([-2.0, 2.0]))
        scored.gold.append({gold})
    for method in ("temperature", "platt"):
        calibration = fit_calibration(scored, method=method, holdout=0.0)
        assert 1.0 < calibration.scale < 3.0 and abs(calibration.bias) < 0.5
    many = synthetic(lambda z: 0.5 * z, texts=3000)  # on much data the likelihood still decides
    assert fit_calibration(many, holdout=0.0).scale == pytest.approx(2.0, rel=0.1)


def test_calibrate_does_not_write_a_calibration_that_hurts_unless_forced(
    model_dir, tmp_path, capsys, monkeypatch
) -> None:
    from everylabel.evaluation import calibrate as calibrate_module

    def harmful(*args, **kwargs) -> Calibration:
        report = {
            "before": {"nll": 0.148, "brier": 0.04, "ece": 0.05},
            "after": {"nll": 2.59, "brier": 0.2, "ece": 0.3},
        }
        return Calibration("platt", "multi-label", 213.6, 145.8, report=report)

    monkeypatch.setattr(calibrate_module, "fit_calibration", harmful)
    data = toy.write_toy(tmp_path / "toy.jsonl", 40)
    command = ["calibrate", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "c")]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert "not written" in captured.err and "0.148 to 2.59" in captured.err
    assert json.loads(captured.out)["written"] is False and not (tmp_path / "c").exists()
    assert main([*command, "--force"]) == 0
    assert load_calibration(tmp_path / "c") is not None


def test_confident_sigmoid_scores_keep_their_ranking(model_dir) -> None:
    """Logits pushed past 17 (as a blend with a high weight gives) saturate a float32 sigmoid at
    exactly 1.0; the scores must still be below 1, distinct, and ranked as the logits are."""
    raw = Classifier.from_pretrained(model_dir, backend="torch")
    shifted = Classifier.from_pretrained(
        model_dir, backend="torch", calibration=Calibration("platt", "multi-label", 1.0, 20.0)
    )
    for got, want in zip(shifted.classify(TEXTS[:4], LABELS), raw.classify(TEXTS[:4], LABELS), strict=True):
        assert all(score < 1.0 for score in got.scores.values())
        assert len(set(got.scores.values())) == len(LABELS)
        assert got.labels == sorted(LABELS, key=lambda n: -want.scores[n])  # all over 0.5, best first
