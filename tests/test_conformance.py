"""Checkpoints written by the official `gliclass` load here with the same logits, and the reverse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from everylabel import GLiClassModel, load_model
from tests import oracle
from tests.backbones import FAMILIES

TOLERANCE = 1e-5

# (id, backbone family, official config options, batch options)
CASES: list[tuple[str, str, dict[str, Any], dict[str, bool]]] = [
    *[(f"{family}-default", family, {}, {}) for family in FAMILIES],
    *[
        (
            f"{family}-mlp-average-lstm-prompt-first",
            family,
            {"scorer_type": "mlp", "class_token_pooling": "average", "use_lstm": True, "prompt_first": True},
            {"with_prompt": True},
        )
        for family in FAMILIES
    ],
    *[(f"scorer-{s}", "bert", {"scorer_type": s}, {}) for s in ("simple", "weighted-dot", "mlp", "hopfield")],
    (
        "scorer-cross-attn",
        "bert",
        {"scorer_type": "cross-attn", "pooling_strategy": "pass", "scorer_num_heads": 4},
        {},
    ),
    (
        "scorer-cross-attn-lstm",
        "bert",
        {"scorer_type": "cross-attn", "pooling_strategy": "pass", "scorer_num_heads": 4, "use_lstm": True},
        {},
    ),
    *[
        (f"pooling-{p}", "bert", {"pooling_strategy": p}, {})
        for p in ("first", "last", "avg", "sum", "max", "rms", "abs_max", "abs_avg")
    ],
    *[
        (
            f"class-pooling-{cp}-embed-{embed}-prompt-first-{pf}",
            "bert",
            {"class_token_pooling": cp, "embed_class_token": embed, "prompt_first": pf},
            {"with_examples": True},
        )
        for cp in ("first", "average")
        for embed in (True, False)
        for pf in (True, False)
    ],
    *[
        (
            f"lstm-{lstm}-prompt-first-{pf}",
            "bert",
            {"use_lstm": lstm, "prompt_first": pf},
            {"with_prompt": True},
        )
        for lstm in (True, False)
        for pf in (True, False)
    ],
    *[
        (
            f"extract-text-{cp}-{pool}",
            "bert",
            {
                "extract_text_features": True,
                "class_token_pooling": cp,
                "pooling_strategy": pool,
                "prompt_first": True,
            },
            {},
        )
        for cp in ("first", "average")
        for pool in ("first", "avg")
    ],
    (
        "extract-text-lstm",
        "bert",
        {"extract_text_features": True, "use_lstm": True, "prompt_first": True},
        {},
    ),
    ("normalize-features", "bert", {"normalize_features": True, "scorer_type": "simple"}, {}),
    ("normalize-features-mlp", "bert", {"normalize_features": True, "scorer_type": "mlp"}, {}),
    (
        "segment-embeddings",
        "bert",
        {"use_segment_embeddings": True, "prompt_first": True},
        {"with_prompt": True},
    ),
    ("segment-embeddings-deberta", "deberta-v3", {"use_segment_embeddings": True}, {}),
    ("encoder-layer-1", "bert", {"encoder_layer_id": 1}, {}),
    ("encoder-layer-0-electra", "electra", {"encoder_layer_id": 0}, {}),
    ("layer-wise-inference", "bert", {"layer_wise": True}, {}),
]


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor], slots: int) -> torch.Tensor:
    # The official model reads a chosen layer only when asked for hidden states.
    with torch.no_grad():
        return model(**inputs, max_num_classes=slots, output_hidden_states=True).logits


@pytest.mark.parametrize(
    ("family", "options", "batch_options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_official_checkpoint_loads_with_same_logits_and_back(
    backbone_dir, tmp_path: Path, family: str, options: dict[str, Any], batch_options: dict[str, bool]
) -> None:
    official_dir = oracle.official_checkpoint(backbone_dir(family), tmp_path / "official", **options)
    theirs = oracle.load_official(official_dir)

    ours, info = GLiClassModel.from_pretrained(official_dir, output_loading_info=True)
    assert info["missing_keys"] == set() or info["missing_keys"] == []
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    ours.eval()
    _, tokenizer = load_model(official_dir)

    inputs, slots = oracle.batch(tokenizer, bool(options.get("prompt_first", False)), **batch_options)
    expected = _logits(theirs, inputs, slots)
    got = _logits(ours, inputs, slots)
    assert got.shape == expected.shape == (len(oracle.ROWS), slots)
    assert expected.std() > 1e-3, "the oracle's logits are flat; the comparison would prove nothing"
    assert (got - expected).abs().max().item() <= TOLERANCE

    # The reverse: everylabel saves, the official package loads, same logits.
    ours.save_pretrained(tmp_path / "ours")
    tokenizer.save_pretrained(tmp_path / "ours")
    back, back_info = type(theirs).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not back_info["missing_keys"] and not back_info["unexpected_keys"]
    assert (_logits(back.eval(), inputs, slots) - expected).abs().max().item() <= TOLERANCE
