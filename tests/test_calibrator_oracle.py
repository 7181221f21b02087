"""Checkpoints with the official learned calibrator: same calibrated logits as `gliclass`, both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gliclass import ZeroShotClassificationPipeline
from gliclass.pipeline import BiEncoderZeroShotClassificationPipeline
from safetensors import safe_open

from everylabel import Classifier, ConfigError, GLiClassConfig, create_model, load_model
from everylabel.modeling.model import GLiClassModel
from everylabel.training.trainer import Trainer
from tests import oracle
from tests.test_config import tiny_bert
from tests.toy import write_toy
from tests.training.runs import config

TOLERANCE = 1e-5
OUTPUTS = ("logits", "uncalibrated_logits", "inverse_temperatures", "calibration_biases")
TEXTS = [text for text, _ in oracle.ROWS]
LABELS = ["sports", "politics", "cooking", "weather", "economy"]
PER_TEXT = [labels for _, labels in oracle.ROWS]
# The official bi-encoder pipeline stacks per-text label sets, so they must have equal sizes there.
BI_TEXTS = TEXTS[:3]
BI_PER_TEXT = [
    ["sports", "art", "weather"],
    ["economy", "politics", "public health"],
    ["cooking", "travel", "war"],
]

UNI_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("bert-simple", "bert", {}),
    (
        "deberta-v3-mlp-average-normalized",
        "deberta-v3",
        {"scorer_type": "mlp", "class_token_pooling": "average", "normalize_features": True},
    ),
]
BI_ARCHITECTURES = ("bi-encoder", "bi-encoder-fused")


def randomize_calibrator(model: Any, use_bias: bool) -> None:
    """Attach a calibrator to an official or an everylabel model and draw every weight of it, so that
    beta and the bias vary clearly between pairs (its layer norms too, so their keys must load)."""
    model.add_calibrator(hidden_size=24, beta_max=3.0, dropout=0.0, use_bias=use_bias)
    generator = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, param in model.calibrator.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            elif name.startswith("mlp.6."):  # the output layer: keep beta off its limits 0 and beta_max
                param.copy_(0.1 * noise)
            else:
                param.copy_(0.3 * noise)


def add_official_calibrator(folder: Path, use_bias: bool) -> None:
    """Give the official checkpoint in `folder` a random calibrator, saved by `gliclass` itself."""
    theirs = oracle.load_official(folder)
    randomize_calibrator(theirs, use_bias)
    theirs.save_pretrained(folder)


def assert_same_outputs(got: Any, expected: Any, use_bias: bool) -> None:
    """Calibrated and uncalibrated logits, betas and biases all equal, and the calibration not trivial."""
    for name in OUTPUTS:
        ours, theirs = getattr(got, name), getattr(expected, name)
        assert ours is not None and theirs is not None, name
        assert ours.shape == theirs.shape, name
        assert (ours.float() - theirs.float()).abs().max().item() <= TOLERANCE, name
    real = expected.class_mask.bool()
    assert expected.uncalibrated_logits.std() > 1e-3, "flat oracle logits would prove nothing"
    assert expected.inverse_temperatures[real].std() > 0.05, "beta hardly varies; the test would be weak"
    assert (expected.inverse_temperatures[~real] == 1).all()
    assert (expected.calibration_biases[~real] == 0).all()
    if use_bias:
        assert expected.calibration_biases[real].std() > 0.05
    else:
        assert (expected.calibration_biases == 0).all()
    assert (expected.logits - expected.uncalibrated_logits)[real].abs().max() > 0.1


def forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor], **kwargs: Any) -> Any:
    with torch.no_grad():
        return model.eval()(**inputs, **kwargs)


def assert_loads_cleanly(info: dict[str, Any]) -> None:
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def calibrator_keys(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        return {key for key in weights.keys() if key.startswith("calibrator.")}  # noqa: SIM118


# -- official -> everylabel ------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [False, True], ids=["scale", "scale-and-bias"])
@pytest.mark.parametrize(("family", "options"), [c[1:] for c in UNI_CASES], ids=[c[0] for c in UNI_CASES])
def test_official_calibrated_uni_encoder_loads_with_same_outputs(
    backbone_dir, tmp_path: Path, family: str, options: dict[str, Any], use_bias: bool
) -> None:
    folder = oracle.official_checkpoint(backbone_dir(family), tmp_path / "official", **options)
    add_official_calibrator(folder, use_bias)
    parts = ("text_norm", "label_norm", "mlp.0", "mlp.3", "mlp.6")
    assert calibrator_keys(folder) == {f"calibrator.{p}.{kind}" for p in parts for kind in ("weight", "bias")}
    theirs = oracle.load_official(folder)
    ours, info = GLiClassModel.from_pretrained(folder, output_loading_info=True)
    assert_loads_cleanly(info)
    assert ours.config.use_calibrator and ours.config.calibrator_use_bias == use_bias
    loaded, tokenizer = load_model(folder)
    inputs, slots = oracle.batch(tokenizer, bool(options.get("prompt_first", False)))
    expected = forward(theirs, inputs, max_num_classes=slots)
    assert_same_outputs(forward(ours, inputs, max_num_classes=slots), expected, use_bias)
    assert_same_outputs(forward(loaded, inputs, max_num_classes=slots), expected, use_bias)

    # The fast path (last layer at the rows the head reads) gives the calibrator the same vectors.
    fast = forward(
        ours, inputs, max_num_classes=slots, output_text_embeddings=True, output_class_embeddings=True
    )
    ours.model.last_layer_at_read_rows = False
    slow = forward(
        ours, inputs, max_num_classes=slots, output_text_embeddings=True, output_class_embeddings=True
    )
    for name in ("text_embeddings", "class_embeddings", *OUTPUTS):
        assert (getattr(fast, name) - getattr(slow, name)).abs().max().item() <= 1e-5, name

    # Dropping the calibrator leaves the official uncalibrated logits, and saves none.
    ours.remove_calibrator()
    plain = forward(ours, inputs, max_num_classes=slots)
    assert plain.uncalibrated_logits is None and plain.inverse_temperatures is None
    assert (plain.logits - expected.uncalibrated_logits).abs().max().item() <= TOLERANCE
    ours.save_pretrained(tmp_path / "removed")
    assert not calibrator_keys(tmp_path / "removed")
    assert json.loads((tmp_path / "removed" / "config.json").read_text()).get("use_calibrator") is not True


def uni_pipeline(theirs: Any, classifier: Classifier, mode: str) -> ZeroShotClassificationPipeline:
    return ZeroShotClassificationPipeline(
        theirs, classifier.tokenizer, classification_type=mode, device="cpu", progress_bar=False
    )


@pytest.mark.parametrize("use_bias", [False, True], ids=["scale", "scale-and-bias"])
def test_classifier_scores_equal_the_official_pipeline(backbone_dir, tmp_path: Path, use_bias: bool) -> None:
    folder = oracle.official_checkpoint(backbone_dir("bert"), tmp_path / "official", scorer_type="mlp")
    add_official_calibrator(folder, use_bias)
    theirs = oracle.load_official(folder)
    classifier = Classifier.from_pretrained(folder, device="cpu", backend="torch")
    for labels in (LABELS, PER_TEXT):
        expected = uni_pipeline(theirs, classifier, "multi-label")(TEXTS, labels, threshold=0.0, batch_size=8)
        got = classifier.classify(TEXTS, labels, threshold=0.5)
        for ours, reference in zip(got, expected, strict=True):
            assert {p["label"] for p in reference} == set(ours.scores)
            for prediction in reference:
                assert ours.scores[prediction["label"]] == pytest.approx(prediction["score"], abs=1e-5)
                assert "initial_score" in prediction  # the oracle did calibrate
        single = uni_pipeline(theirs, classifier, "single-label")(TEXTS, labels, batch_size=8)
        top = classifier.classify(TEXTS, labels, multi_label=False)
        for ours, reference in zip(top, single, strict=True):
            assert ours.labels == [reference[0]["label"]]
            assert ours.scores[ours.labels[0]] == pytest.approx(reference[0]["score"], abs=1e-5)


def bi_inputs(pipe: BiEncoderZeroShotClassificationPipeline, shared: bool) -> dict[str, torch.Tensor]:
    return dict(pipe.prepare_inputs(BI_TEXTS, LABELS if shared else BI_PER_TEXT, shared))


def bi_pipeline(model: Any, folder: Path) -> BiEncoderZeroShotClassificationPipeline:
    return BiEncoderZeroShotClassificationPipeline(
        model, load_model(folder)[1], max_length=64, device="cpu", progress_bar=False
    )


@pytest.mark.parametrize("use_bias", [False, True], ids=["scale", "scale-and-bias"])
@pytest.mark.parametrize("architecture", BI_ARCHITECTURES)
def test_official_calibrated_bi_encoder_loads_with_same_outputs_and_scores(
    backbone_dir, tmp_path: Path, architecture: str, use_bias: bool
) -> None:
    # Normalised vectors keep the sigmoid scores off 0 and 1, where they could not differ.
    options = {"architecture_type": architecture, "normalize_features": True}
    folder = oracle.official_bi_checkpoint(
        backbone_dir("bert"), backbone_dir("bert"), tmp_path / "off", **options
    )
    add_official_calibrator(folder, use_bias)
    theirs = oracle.load_official(folder)
    ours, info = GLiClassModel.from_pretrained(folder, output_loading_info=True)
    assert_loads_cleanly(info)
    pipe = bi_pipeline(theirs, folder)
    for shared in (True, False):
        inputs = bi_inputs(pipe, shared)
        assert_same_outputs(forward(ours, inputs, mask_padding=False), forward(theirs, inputs), use_bias)

    classifier = Classifier.from_pretrained(
        folder, device="cpu", backend="torch", mask_padding=False, max_length=64
    )
    assert not classifier.model.model.scores_by_matmul  # the calibrator reads per-slot label vectors
    for labels in (LABELS, BI_PER_TEXT):
        expected = pipe(BI_TEXTS, labels, threshold=0.0, batch_size=len(BI_TEXTS))
        got = classifier.classify(BI_TEXTS, labels, threshold=0.0)
        for ours_result, reference in zip(got, expected, strict=True):
            assert {p["label"] for p in reference} == set(ours_result.scores)
            for prediction in reference:
                assert ours_result.scores[prediction["label"]] == pytest.approx(prediction["score"], abs=1e-5)


# -- everylabel -> official ------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [False, True], ids=["scale", "scale-and-bias"])
def test_created_calibrated_uni_encoder_loads_in_the_official_package(
    backbone_dir, tmp_path: Path, use_bias: bool
) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model)
    randomize_calibrator(model, use_bias)
    model.save_pretrained(tmp_path / "ours")
    tokenizer.save_pretrained(tmp_path / "ours")
    theirs, info = type(oracle.load_official(tmp_path / "ours")).from_pretrained(
        tmp_path / "ours", output_loading_info=True
    )
    assert_loads_cleanly(info)
    assert theirs.config.use_calibrator and theirs.config.calibrator_use_bias == use_bias
    assert theirs.config.calibrator_hidden_size == 24
    inputs, slots = oracle.batch(tokenizer, False, with_prompt=True)
    expected = forward(theirs, inputs, max_num_classes=slots)
    assert_same_outputs(forward(model, inputs, max_num_classes=slots), expected, use_bias)


@pytest.mark.parametrize("architecture", BI_ARCHITECTURES)
def test_created_calibrated_bi_encoder_loads_in_the_official_package(
    backbone_dir, tmp_path: Path, architecture: str
) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"),
        label_model=backbone_dir("deberta-v3"),
        architecture_type=architecture,
        normalize_features=True,
        dropout=0.0,
    )
    oracle.spread_weights(model)
    randomize_calibrator(model, use_bias=True)
    model.save_pretrained(tmp_path / "ours")
    tokenizer.save_pretrained(tmp_path / "ours")
    theirs, info = type(oracle.load_official(tmp_path / "ours")).from_pretrained(
        tmp_path / "ours", output_loading_info=True
    )
    assert_loads_cleanly(info)
    pipe = BiEncoderZeroShotClassificationPipeline(
        theirs.eval(), tokenizer, max_length=64, device="cpu", progress_bar=False
    )
    inputs = bi_inputs(pipe, shared=False)
    assert_same_outputs(forward(model, inputs, mask_padding=False), forward(theirs, inputs), use_bias=True)


def test_a_new_calibrator_is_the_identity(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), use_calibrator=True, calibrator_use_bias=True)
    assert model.calibrator is not None
    inputs, slots = oracle.batch(tokenizer, False)
    out = forward(model, inputs, max_num_classes=slots)
    assert torch.allclose(out.inverse_temperatures, torch.ones_like(out.logits), atol=1e-6)
    assert (out.calibration_biases == 0).all()
    assert torch.allclose(out.logits, out.uncalibrated_logits, atol=1e-5)


# -- without a calibrator, and bad values ----------------------------------------------------------


def test_a_checkpoint_without_a_calibrator_is_unchanged(backbone_dir, tmp_path: Path) -> None:
    folder = oracle.official_checkpoint(backbone_dir("bert"), tmp_path / "official", scorer_type="mlp")
    theirs = oracle.load_official(folder)
    ours, tokenizer = load_model(folder)
    assert ours.calibrator is None and not ours.config.use_calibrator
    assert not any(key.startswith("calibrator.") for key in ours.state_dict())
    inputs, slots = oracle.batch(tokenizer, False)
    got = forward(ours, inputs, max_num_classes=slots)
    assert (
        got.uncalibrated_logits is None
        and got.inverse_temperatures is None
        and got.calibration_biases is None
    )
    assert (
        got.logits - forward(theirs, inputs, max_num_classes=slots).logits
    ).abs().max().item() <= TOLERANCE
    ours.save_pretrained(tmp_path / "ours")
    assert not calibrator_keys(tmp_path / "ours")
    _, info = type(theirs).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


BAD_VALUES = [
    ("use_calibrator", "yes", "true or false"),
    ("calibrator_use_bias", 1, "true or false"),
    ("calibrator_hidden_size", 0, "positive int"),
    ("calibrator_hidden_size", 2.5, "positive int"),
    ("calibrator_beta_max", 0.0, "> 0"),
    ("calibrator_beta_max", float("inf"), "> 0"),
    ("calibrator_beta_max", "3", "> 0"),
    ("calibrator_dropout", 1.0, "[0, 1)"),
    ("calibrator_dropout", None, "[0, 1)"),
]


@pytest.mark.parametrize(("key", "value", "hint"), BAD_VALUES, ids=[f"{b[0]}={b[1]!r}" for b in BAD_VALUES])
def test_a_bad_calibrator_value_names_the_key(key: str, value: object, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        GLiClassConfig(encoder_config=tiny_bert(), **{key: value})
    assert str(error.value).startswith(f"{key}:") and hint in str(error.value)


def test_calibrator_options_that_cannot_work_are_refused(backbone_dir, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^use_calibrator: .*'pass'"):
        GLiClassConfig(
            encoder_config=tiny_bert(), use_calibrator=True, scorer_type="cross-attn", pooling_strategy="pass"
        )
    model = GLiClassModel(GLiClassConfig(encoder_config=tiny_bert()))
    with pytest.raises(ConfigError, match=r"^calibrator_beta_max:"):
        model.add_calibrator(beta_max=-1.0)
    assert (
        model.calibrator is None
        and not model.config.use_calibrator
        and model.config.calibrator_beta_max == 3.0
    )
    # A bad value in a saved config.json is refused on load, naming the key.
    model.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "calibrator_dropout": 2}))
    with pytest.raises(ConfigError, match=r"^calibrator_dropout:"):
        GLiClassModel.from_pretrained(tmp_path)


# -- training and export ---------------------------------------------------------------------------


def test_training_moves_the_backbone_and_leaves_the_calibrator(backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"), dropout=0.0, problem_type="multi_label_classification"
    )
    randomize_calibrator(model, use_bias=True)
    folder = tmp_path / "calibrated"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # The loss is on the uncalibrated logits, as in the official model: the calibrator gets no gradient.
    inputs, slots = oracle.batch(tokenizer, False)
    out = model.train()(**inputs, max_num_classes=slots, labels=oracle.multi_hot(slots))
    out.loss.backward()
    assert all(p.grad is None for p in model.calibrator.parameters())
    plain = GLiClassModel.from_pretrained(folder)
    plain.remove_calibrator()
    again = plain.train()(**inputs, max_num_classes=slots, labels=oracle.multi_hot(slots))
    assert again.loss.item() == pytest.approx(out.loss.item(), abs=1e-6)

    data = (write_toy(tmp_path / "train.jsonl", 16, seed=0), write_toy(tmp_path / "eval.jsonl", 8, seed=1))
    trainer = Trainer(config(folder, data, tmp_path / "run", model_options={}, max_steps=2, batch_size=8))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    after = trainer.model.state_dict()
    assert any((after[k] != before[k]).any() for k in before if k.startswith("model.encoder_model."))
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("calibrator."))
    assert calibrator_keys(tmp_path / "run" / "final") == calibrator_keys(folder)


@pytest.mark.parametrize("architecture", ["uni-encoder", "bi-encoder"])
def test_onnx_export_of_a_calibrated_model_gives_the_calibrated_logits(
    backbone_dir, tmp_path: Path, architecture: str
) -> None:
    pytest.importorskip("onnxruntime")
    from everylabel.onnx import OnnxClassifier, export_onnx
    from everylabel.tokenization import load_label_tokenizer, save_label_tokenizer

    options: dict[str, Any] = {"architecture_type": architecture, "dropout": 0.0}
    if architecture == "bi-encoder":
        options["label_model"] = backbone_dir("bert")
    model, tokenizer = create_model(backbone_dir("bert"), **options)
    oracle.spread_weights(model, std=0.05)
    randomize_calibrator(model, use_bias=True)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if architecture == "bi-encoder":
        save_label_tokenizer(load_label_tokenizer(model.config), folder)
    onnx_clf = OnnxClassifier(export_onnx(folder, tmp_path / "onnx"))
    torch_clf = Classifier.from_pretrained(folder, device="cpu", backend="torch")
    a, b = torch_clf.prepare(TEXTS, PER_TEXT), onnx_clf.prepare(TEXTS, PER_TEXT)
    for x, y in zip(torch_clf.score(a), onnx_clf.score(b), strict=True):
        np.testing.assert_allclose(y, x, atol=1e-4, rtol=0)
    # And they are the calibrated ones.
    torch_clf.model.remove_calibrator()
    plain = torch_clf.score(torch_clf.prepare(TEXTS, PER_TEXT))
    assert max(np.abs(x - y).max() for x, y in zip(plain, onnx_clf.score(b), strict=True)) > 0.1
