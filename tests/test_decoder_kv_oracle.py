"""decoder-kv checkpoints (tiny Qwen3 backbone) against the official `gliclass` package.

Both directions within 1e-5 on the model's logits, with recurrent reasoning at several step counts
(with and without halting, with and without reading the text), and the official pipeline's scores
through `Classifier`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from gliclass.pipeline import DecoderKVZeroShotClassificationPipeline
from transformers import AutoTokenizer

from everylabel import Classifier
from everylabel.errors import NotSupportedError
from everylabel.modeling.decoder_kv import label_section
from everylabel.modeling.model import GLiClassModel
from everylabel.onnx import export_onnx
from tests import oracle

TEXTS = [text for text, _ in oracle.ROWS]
PER_TEXT = [labels for _, labels in oracle.ROWS]
LABELS = ["sports", "politics", "cooking", "weather", "economy"]
EXAMPLES = [
    {"text": "Goal in the last minute.", "labels": ["sports"]},
    {"text": "Vote on Monday.", "labels": ["politics"]},
]


def checkpoint(backbone_dir: Any, folder: Path, family: str = "qwen3", **options: Any) -> Path:
    backbone = backbone_dir(family)
    sep = len(AutoTokenizer.from_pretrained(backbone)) + 1  # <<SEP>>, as official_checkpoint adds it
    options = {"sep_token_index": sep, "scorer_mlp_hidden_size": 64, **options}
    return oracle.official_checkpoint(backbone, folder, architecture_type="decoder-kv", **options)


RECURRENCE = [
    pytest.param({}, id="one-step"),
    pytest.param(
        {"recurrent_steps": 2, "recurrent_halt_threshold": 0.0}, id="2-steps", marks=pytest.mark.slow
    ),
    pytest.param({"recurrent_steps": 4, "recurrent_halt_threshold": 0.002}, id="4-steps-halting"),
    pytest.param(
        {"recurrent_steps": 3, "recurrent_read_text": True, "recurrent_inference_max_steps": 5},
        id="read-text",
    ),
    pytest.param(
        {"normalize_features": True, "problem_type": "single_label_classification"},
        id="single",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        {"use_calibrator": True, "calibrator_use_bias": True, "recurrent_steps": 2}, id="calibrated-2-steps"
    ),
]


@pytest.mark.parametrize("options", RECURRENCE)
def test_official_checkpoint_loads_with_the_same_logits_and_back(
    backbone_dir, tmp_path: Path, options: dict[str, Any]
) -> None:
    folder = checkpoint(backbone_dir, tmp_path / "official", **options)
    theirs = oracle.load_official(folder)
    ours, info = GLiClassModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours.eval()
    pipe = DecoderKVZeroShotClassificationPipeline(
        theirs, AutoTokenizer.from_pretrained(folder), device="cpu", progress_bar=False
    )
    inputs = dict(pipe.prepare_inputs(TEXTS, PER_TEXT, examples=[EXAMPLES, None, None, EXAMPLES[:1]]))
    with torch.no_grad():
        official = theirs(**inputs)
        got = ours(**inputs, max_num_classes=official.logits.shape[1])
    assert torch.allclose(got.logits, official.logits, atol=1e-5), (got.logits - official.logits).abs().max()
    assert (official.logits[:, 0] - official.logits[:, 1]).abs().max() > 1e-3, "flat logits prove nothing"
    if options.get("use_calibrator"):  # the calibrator did something to compare
        assert (got.logits - got.uncalibrated_logits).abs().max() > 1e-3
    ours.save_pretrained(tmp_path / "ours")  # and back
    again = oracle.load_official(tmp_path / "ours")
    with torch.no_grad():
        assert torch.allclose(again(**inputs).logits, official.logits, atol=1e-5)


def test_a_halted_text_keeps_the_logits_of_its_last_step(backbone_dir, tmp_path: Path) -> None:
    folder = checkpoint(backbone_dir, tmp_path, recurrent_steps=8)
    model = GLiClassModel.from_pretrained(folder).eval()
    pipe = DecoderKVZeroShotClassificationPipeline(
        model, AutoTokenizer.from_pretrained(folder), device="cpu", progress_bar=False
    )
    inputs = dict(pipe.prepare_inputs(TEXTS, PER_TEXT))
    cfg = model.config
    with torch.no_grad():
        states = model.model.decoder_model(**inputs).last_hidden_state
        section = label_section(
            states, inputs["input_ids"], inputs["attention_mask"], cfg.class_token_index, cfg.sep_id
        )[:3]
        halted = model.model.scorer(*section, 5, num_steps=8, halt_threshold=0.02)
        steps = halted.steps_taken.tolist()
        assert min(steps) < 8, "no text halted; the check would prove nothing"
        for row, taken in enumerate(steps):
            alone = model.model.scorer(*(t[row : row + 1] for t in section), 5, num_steps=taken)
            assert torch.allclose(alone.logits[-1][0], halted.logits[-1][row], atol=1e-5)


@pytest.fixture(
    scope="module",
    params=[{}, {"recurrent_steps": 3, "recurrent_read_text": True}],
    ids=["plain", "recurrent"],
)
def pair(request, backbone_dir, tmp_path_factory) -> tuple[Classifier, Any]:
    folder = checkpoint(backbone_dir, tmp_path_factory.mktemp("decoder-kv"), **request.param)
    return Classifier.from_pretrained(folder, device="cpu"), oracle.load_official(folder)


as_scores = oracle.as_scores


CASES: list[tuple[str, dict[str, Any]]] = [
    ("shared-labels", {"labels": LABELS}),
    ("per-text-labels", {"labels": PER_TEXT}),
    ("prompt", {"labels": LABELS, "prompt": "Classify the topic"}),
    ("examples", {"labels": LABELS, "examples": EXAMPLES}),
    ("prompt-and-examples", {"labels": PER_TEXT, "prompt": "Topic:", "examples": EXAMPLES[:1]}),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_scores_equal_the_official_pipeline(pair, kwargs: dict[str, Any]) -> None:
    classifier, theirs = pair
    expected = oracle.official(
        theirs, classifier.tokenizer, "multi-label", texts=TEXTS, threshold=0.0, **kwargs
    )
    got = classifier.classify(TEXTS, threshold=0.0, **kwargs)
    spread = []
    for ours, reference in zip(got, expected, strict=True):
        ref = as_scores(reference)
        assert ours.scores.keys() == ref.keys()
        for label, score in ref.items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
        spread += list(ref.values())
    assert max(spread) - min(spread) > 1e-2, "flat scores prove nothing"


@pytest.mark.parametrize("family", ["qwen3_5", "embedding_gemma2"])
def test_other_backbones_give_the_official_scores(backbone_dir, tmp_path: Path, family: str) -> None:
    folder = checkpoint(backbone_dir, tmp_path, family, recurrent_steps=2)
    classifier, theirs = Classifier.from_pretrained(folder, device="cpu"), oracle.load_official(folder)
    expected = oracle.official(
        theirs,
        classifier.tokenizer,
        "multi-label",
        texts=TEXTS,
        labels=PER_TEXT,
        threshold=0.0,
        prompt="Topic:",
    )
    got = classifier.classify(TEXTS, PER_TEXT, prompt="Topic:")
    for ours, reference in zip(got, expected, strict=True):
        for label, score in as_scores(reference).items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
    if family == "embedding_gemma2":  # attends both ways: no cache to stream with
        from everylabel.streaming import StreamingSessions

        with pytest.raises(NotSupportedError, match="EmbeddingGemma 2"):
            StreamingSessions(classifier)


def test_onnx_export_is_refused_naming_the_reason(pair, tmp_path: Path) -> None:
    classifier, _ = pair
    folder = tmp_path / "model"
    classifier.model.save_pretrained(folder)
    classifier.tokenizer.save_pretrained(folder)
    with pytest.raises(NotSupportedError, match="architecture_type: 'decoder-kv' cannot be exported"):
        export_onnx(folder, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_the_recurrent_training_loss_is_the_official_one(backbone_dir, tmp_path: Path, mode: str) -> None:
    options = {"recurrent_steps": 4, "recurrent_confidence_coef": 0.3, "recurrent_confidence_mode": mode,
               "problem_type": "multi_label_classification",
               "recurrent_confidence_margin": 0.1}  # fmt: skip
    folder = checkpoint(backbone_dir, tmp_path, **options)
    theirs, ours = oracle.load_official(folder), GLiClassModel.from_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    steps = [torch.randn(3, 4, generator=generator) for _ in range(4)]  # (texts, labels) per step
    targets = (torch.rand(3, 4, generator=generator) > 0.5).float()
    valid = torch.tensor([[True] * 4, [True] * 3 + [False], [True] * 2 + [False] * 2])
    expected = theirs.model.get_recurrent_loss(steps, targets, valid)[0]
    assert ours.model.loss(steps, targets, valid) == pytest.approx(float(expected), abs=1e-6)
