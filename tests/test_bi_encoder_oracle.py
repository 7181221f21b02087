"""Bi-encoder checkpoints against the official `gliclass` package: same logits both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gliclass.pipeline import BiEncoderZeroShotClassificationPipeline

from everylabel import Classifier, create_model
from everylabel.loading import load_model
from everylabel.modeling.model import GLiClassModel
from tests import oracle

TOLERANCE = 1e-5


def scale(logits: torch.Tensor) -> float:
    """1, or the largest logit's size: unnormalised dot products reach 30 and more, where float32
    values lie 4e-6 apart and two summation orders differ by a few of those steps."""
    return max(1.0, logits.abs().max().item())


TEXTS = [
    "The match ended in a draw after extra time.",
    "Parliament passed the budget late on Thursday after a long debate about taxes.",
    "Stir the sauce gently.",
]
SHARED = ["sports", "politics", "climate science", "cooking"]
# The official pipeline stacks per-text label sets, so they must have equal sizes there.
PER_TEXT = [
    ["sports", "art", "weather"],
    ["economy", "politics", "public health"],
    ["cooking", "travel", "war"],
]

# Every option on BERT; on DeBERTa-v3 (a 128k SentencePiece vocabulary, seconds per load) two of
# them by default and the rest with `-m slow`.
DEBERTA_DEFAULT = {("bi-encoder", "first", False), ("bi-encoder-fused", "avg", True)}
CASES = [
    pytest.param(
        family,
        arch,
        pooling,
        normalize,
        marks=[pytest.mark.slow]
        if family == "deberta-v3" and (arch, pooling, normalize) not in DEBERTA_DEFAULT
        else [],
    )
    for family in ("bert", "deberta-v3")
    for arch in ("bi-encoder", "bi-encoder-fused")
    for pooling in ("first", "avg")
    for normalize in (False, True)
]


def _pipeline(model: torch.nn.Module, folder: Path) -> BiEncoderZeroShotClassificationPipeline:
    tokenizer = load_model(folder)[1]
    return BiEncoderZeroShotClassificationPipeline(
        model, tokenizer, max_length=64, device="cpu", progress_bar=False
    )


def _official_inputs(pipe: BiEncoderZeroShotClassificationPipeline, shared: bool) -> dict[str, torch.Tensor]:
    return dict(pipe.prepare_inputs(TEXTS, SHARED if shared else PER_TEXT, shared))


@pytest.mark.parametrize(("family", "arch", "pooling", "normalize"), CASES)
def test_official_bi_encoder_loads_with_same_logits_and_back(
    backbone_dir, tmp_path: Path, family: str, arch: str, pooling: str, normalize: bool
) -> None:
    options = {"architecture_type": arch, "pooling_strategy": pooling, "normalize_features": normalize}
    folder = oracle.official_bi_checkpoint(
        backbone_dir(family), backbone_dir(family), tmp_path / "off", **options
    )
    theirs = oracle.load_official(folder)
    ours, info = GLiClassModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours.eval()
    pipe = _pipeline(theirs, folder)
    for shared in (True, False):
        inputs = _official_inputs(pipe, shared)
        with torch.no_grad():
            expected = theirs(**inputs).logits
            got = ours(**inputs, mask_padding=False).logits
        assert expected.std() > 1e-3, "flat oracle logits would prove nothing"
        assert (got - expected).abs().max().item() <= TOLERANCE * scale(expected)

    # everylabel writes, the official package reads: same logits.
    ours.save_pretrained(tmp_path / "ours")
    back, back_info = type(theirs).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not back_info["missing_keys"] and not back_info["unexpected_keys"]
    inputs = _official_inputs(pipe, True)
    with torch.no_grad():
        official = theirs(**inputs).logits
        assert (back.eval()(**inputs).logits - official).abs().max().item() <= TOLERANCE * scale(official)


@pytest.mark.parametrize(("arch", "pooling"), [("bi-encoder", "avg"), ("bi-encoder-fused", "first")])
def test_created_bi_encoder_loads_in_official_package(
    backbone_dir, tmp_path: Path, arch: str, pooling: str
) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"),
        label_model=backbone_dir("deberta-v3"),
        architecture_type=arch,
        pooling_strategy=pooling,
        normalize_features=True,
        dropout=0.0,
    )
    oracle.spread_weights(model)
    model.save_pretrained(tmp_path / "ours")
    tokenizer.save_pretrained(tmp_path / "ours")
    theirs = oracle.load_official(tmp_path / "ours")
    pipe = BiEncoderZeroShotClassificationPipeline(
        theirs, tokenizer, max_length=64, device="cpu", progress_bar=False
    )
    inputs = _official_inputs(pipe, True)
    with torch.no_grad():
        expected = theirs(**inputs).logits
        got = model.eval()(**inputs, mask_padding=False).logits
    assert expected.std() > 1e-3
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize(
    ("arch", "pooling", "shared"),
    [
        ("bi-encoder", "first", True),
        ("bi-encoder", "avg", True),
        ("bi-encoder", "avg", False),
        ("bi-encoder-fused", "first", False),
        ("bi-encoder-fused", "avg", True),
    ],
)
def test_official_pipeline_scores_through_classifier(
    backbone_dir, tmp_path: Path, arch: str, pooling: str, shared: bool
) -> None:
    # Normalised vectors keep the sigmoid scores off 0 and 1, where they could not differ.
    options = {"architecture_type": arch, "pooling_strategy": pooling, "normalize_features": True}
    folder = oracle.official_bi_checkpoint(
        backbone_dir("bert"), backbone_dir("bert"), tmp_path / "off", **options
    )
    theirs = oracle.load_official(folder)
    pipe = _pipeline(theirs, folder)
    labels = SHARED if shared else PER_TEXT
    expected = pipe(TEXTS, labels, threshold=0.0, batch_size=len(TEXTS))
    clf = Classifier.from_pretrained(folder, device="cpu", mask_padding=False, max_length=64)
    results = clf.classify(TEXTS, labels, threshold=0.0)
    spread = 0.0
    for want, got in zip(expected, results, strict=True):
        want_scores = {p["label"]: p["score"] for p in want}
        assert set(want_scores) == set(got.scores)
        for name, score in want_scores.items():
            assert got.scores[name] == pytest.approx(score, abs=1e-5)
        spread = max(spread, max(want_scores.values()) - min(want_scores.values()))
    assert spread > 1e-3
