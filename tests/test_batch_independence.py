"""With mask_padding=True a row's logits never depend on its batch mates, for every scorer and pooling.

Rows of different lengths and label counts are scored together and each alone; the logits of each
row's real labels must agree. Padded label slots must stay out of the hopfield scorer's softmax over
labels, and padded positions out of the squeeze-excitation fusion (squeeze_layers).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from everylabel import create_model
from tests import oracle

SCORERS = ("simple", "weighted-dot", "mlp", "hopfield")
POOLINGS = ("first", "last", "avg", "sum", "max", "rms", "abs_max", "abs_avg")
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "squeeze-layers": {"squeeze_layers": True},
    "average-class-tokens": {"class_token_pooling": "average", "embed_class_token": False},
    "lstm-extract-text": {"use_lstm": True, "extract_text_features": True, "prompt_first": True},
}
CASES: list[tuple[str, dict[str, Any]]] = [
    *[
        (f"{scorer}-{pooling}-{name}", {"scorer_type": scorer, "pooling_strategy": pooling, **options})
        for scorer in SCORERS
        for pooling in POOLINGS
        for name, options in OPTIONS.items()
    ],
    *[
        (
            f"cross-attn-pass-{name}",
            {"scorer_type": "cross-attn", "pooling_strategy": "pass", "scorer_num_heads": 4, **options},
        )
        for name, options in OPTIONS.items()
    ],
]


def _spread(model: torch.nn.Module) -> None:
    """Weights that give logits of order 1; the hopfield scorer's label softmax kept unsaturated."""
    oracle.spread_weights(model)
    scorer = model.model.scorer
    if hasattr(scorer, "q_proj"):
        with torch.no_grad():
            scorer.q_proj.weight.mul_(0.05)
    model.eval()


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], slots: int) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch, max_num_classes=slots, mask_padding=True).logits


@pytest.mark.parametrize(("options"), [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_logits_of_a_row_do_not_depend_on_its_batch(backbone_dir, options: dict[str, Any]) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, **options)
    _spread(model)
    batch, slots = oracle.batch(tokenizer, prompt_first=bool(options.get("prompt_first")))
    together = _logits(model, batch, slots)
    for row, (_, labels) in enumerate(oracle.ROWS):
        length = int(batch["attention_mask"][row].sum())
        alone = {key: value[row : row + 1, :length] for key, value in batch.items()}
        single = _logits(model, alone, len(labels))
        assert torch.allclose(together[row, : len(labels)], single[0], atol=1e-5, rtol=1e-4), row


def test_the_official_hopfield_softmax_sees_padded_slots(backbone_dir) -> None:
    """Without the mask the hopfield scorer follows the official code, padded slots included."""
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="hopfield")
    _spread(model)
    batch, slots = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        official = model(**batch, max_num_classes=slots, mask_padding=False).logits
        masked = model(**batch, max_num_classes=slots, mask_padding=True).logits
    full_row = max(range(len(oracle.ROWS)), key=lambda i: len(oracle.ROWS[i][1]))
    short_row = min(range(len(oracle.ROWS)), key=lambda i: len(oracle.ROWS[i][1]))
    # A row with every slot real and "first" pooling (the default) is the same either way ...
    assert torch.allclose(official[full_row], masked[full_row], atol=1e-6)
    # ... a row with padded slots is not: the official softmax spreads weight onto them.
    count = len(oracle.ROWS[short_row][1])
    assert (official[short_row, :count] - masked[short_row, :count]).abs().max() > 1e-2
