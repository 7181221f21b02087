"""Encoder-decoder checkpoints (T5 backbone) against the official `gliclass` package.

Both directions within 1e-5 on the model's logits, and the official pipeline's scores through
`Classifier` (prompts, examples, per-text labels, single-label). The official loader leaves T5's
decoder token embeddings random (see `oracle.load_official_seq2seq`); everylabel ties them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from gliclass.pipeline import EncoderDecoderZeroShotClassificationPipeline
from transformers import AutoTokenizer

from everylabel import Classifier
from everylabel.modeling.model import GLiClassModel
from tests import oracle

ARCHITECTURES = ("encoder-decoder", "encoder-decoder-cls")
DEFAULT_CASES = {("encoder-decoder", "avg"), ("encoder-decoder-cls", "first")}
TEXTS = [text for text, _ in oracle.ROWS]
PER_TEXT = [labels for _, labels in oracle.ROWS]
LABELS = ["sports", "politics", "cooking", "weather", "economy"]
EXAMPLES = [
    {"text": "Goal in the last minute.", "labels": ["sports"]},
    {"text": "Vote on Monday.", "labels": ["politics"]},
]


def checkpoint(backbone_dir: Any, folder: Path, arch: str, **options: Any) -> Path:
    return oracle.official_checkpoint(backbone_dir("t5"), folder, architecture_type=arch, **options)


def official_logits(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


# Two cases in `make test`, the other four with `-m slow`.
BOTH_WAYS = [
    pytest.param(
        arch, pooling, normalize, marks=[] if (arch, pooling) in DEFAULT_CASES else [pytest.mark.slow]
    )
    for arch in ARCHITECTURES
    for pooling, normalize in (("first", False), ("avg", True), ("max", False))
]


@pytest.mark.parametrize(("arch", "pooling", "normalize"), BOTH_WAYS)
def test_official_checkpoint_loads_with_the_same_logits_and_back(
    backbone_dir, tmp_path: Path, arch: str, pooling: str, normalize: bool
) -> None:
    options = {"pooling_strategy": pooling, "normalize_features": normalize, "scorer_type": "mlp"}
    folder = checkpoint(backbone_dir, tmp_path / "official", arch, **options)
    theirs = oracle.load_official_seq2seq(folder)
    ours, info = GLiClassModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours.eval()
    pipe = EncoderDecoderZeroShotClassificationPipeline(
        theirs, AutoTokenizer.from_pretrained(folder), device="cpu", progress_bar=False
    )
    inputs = dict(pipe.prepare_inputs(TEXTS, PER_TEXT, examples=[EXAMPLES, None, None, EXAMPLES[:1]]))
    inputs.pop("token_type_ids", None)
    expected = official_logits(theirs, inputs)  # (batch, max_num_classes)
    with torch.no_grad():
        got = ours(**inputs, max_num_classes=expected.shape[1], mask_padding=False).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert (expected[:, 0] - expected[:, 1]).abs().max() > 1e-3, "flat logits would prove nothing"
    # And back: everylabel's save loads in the official package with the same logits.
    ours.save_pretrained(tmp_path / "ours")
    again = oracle.load_official_seq2seq(tmp_path / "ours")
    assert torch.allclose(official_logits(again, inputs), expected, atol=1e-5)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def pair(request, backbone_dir, tmp_path_factory) -> tuple[Classifier, Any]:
    folder = checkpoint(backbone_dir, tmp_path_factory.mktemp("seq2seq"), request.param, scorer_type="mlp")
    return Classifier.from_pretrained(folder, device="cpu"), oracle.load_official_seq2seq(folder)


def official(model: Any, classifier: Classifier, mode: str, batch_size: int = 8, **kwargs: Any) -> list:
    return oracle.official(model, classifier.tokenizer, mode, batch_size, **kwargs)


as_scores = oracle.as_scores


CASES: list[tuple[str, dict[str, Any]]] = [
    ("shared-labels", {"labels": LABELS}),
    ("per-text-labels", {"labels": PER_TEXT}),
    ("prompt", {"labels": LABELS, "prompt": "Which topic is this text about?"}),
    ("per-text-prompt", {"labels": LABELS, "prompt": ["Topic:", "About?", "Kitchen?", "Topic:"]}),
    ("examples", {"labels": LABELS, "examples": EXAMPLES}),
    ("per-text-examples", {"labels": PER_TEXT, "examples": [EXAMPLES, None, EXAMPLES[:1], None]}),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_scores_equal_the_official_pipeline(pair, kwargs: dict[str, Any]) -> None:
    classifier, theirs = pair
    expected = official(theirs, classifier, "multi-label", texts=TEXTS, threshold=0.0, **kwargs)
    got = classifier.classify(TEXTS, threshold=0.5, **kwargs)
    spread = []
    for ours, reference in zip(got, expected, strict=True):
        ref = as_scores(reference)
        assert ours.scores.keys() == ref.keys()
        for label, score in ref.items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)
        spread += list(ref.values())
    assert max(spread) - min(spread) > 1e-2, "flat scores would prove nothing"
    single = official(theirs, classifier, "single-label", texts=TEXTS, **kwargs)
    top = classifier.classify(TEXTS, multi_label=False, **kwargs)
    for ours, reference in zip(top, single, strict=True):
        assert ours.labels == [reference[0]["label"]]
        assert ours.scores[ours.labels[0]] == pytest.approx(reference[0]["score"], abs=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_padding_sensitive_pooling_matches_the_official_pipeline_one_text_at_a_time(
    backbone_dir, tmp_path: Path, arch: str
) -> None:
    # The official encoder-decoder pools the encoded text with its padding; everylabel masks it,
    # so its batched scores equal the official ones without padding (batch size 1).
    folder = checkpoint(backbone_dir, tmp_path, arch, pooling_strategy="avg", scorer_type="mlp")
    classifier = Classifier.from_pretrained(folder, device="cpu")
    theirs = oracle.load_official_seq2seq(folder)
    expected = official(theirs, classifier, "multi-label", 1, texts=TEXTS, labels=PER_TEXT, threshold=0.0)
    got = classifier.classify(TEXTS, PER_TEXT)
    for ours, reference in zip(got, expected, strict=True):
        for label, score in as_scores(reference).items():
            assert ours.scores[label] == pytest.approx(score, abs=1e-5)


def test_the_official_loader_leaves_the_t5_decoder_embeddings_untied(backbone_dir, tmp_path: Path) -> None:
    # Why the oracle re-ties them (docs/compatibility.md): everylabel loads them tied.
    folder = checkpoint(backbone_dir, tmp_path, "encoder-decoder")
    backbone = oracle.load_official(folder).model.encoder_decoder_model
    assert backbone.decoder.embed_tokens.weight is not backbone.shared.weight
    assert not torch.equal(backbone.decoder.embed_tokens.weight, backbone.shared.weight)
    ours = GLiClassModel.from_pretrained(folder).model.encoder_decoder_model
    assert ours.decoder.embed_tokens.weight is ours.shared.weight
