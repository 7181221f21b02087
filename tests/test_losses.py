"""Loss values: equal to the official code where it defines them, checked by hand elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gliclass.loss_functions import focal_loss_with_logits as official_focal
from gliclass.loss_functions import sequence_contrastive_loss as official_contrastive

from everylabel import GLiClassModel, load_model
from everylabel.modeling import losses
from tests import oracle

LOSS_CASES: list[tuple[str, dict[str, Any]]] = [
    ("focal-default", {}),
    ("focal-sum", {"focal_loss_reduction": "sum"}),
    ("bce-no-alpha-no-gamma", {"focal_loss_alpha": -1, "focal_loss_gamma": 0}),
    ("focal-contrastive", {"contrastive_loss_coef": 0.5}),
    ("focal-average-contrastive", {"contrastive_loss_coef": 1.0, "class_token_pooling": "average"}),
    ("layer-wise", {"layer_wise": True}),
    ("layer-wise-contrastive-mlp", {"layer_wise": True, "contrastive_loss_coef": 0.3, "scorer_type": "mlp"}),
]


@pytest.mark.parametrize("options", [c[1] for c in LOSS_CASES], ids=[c[0] for c in LOSS_CASES])
def test_multi_label_loss_matches_official(backbone_dir, tmp_path: Path, options: dict[str, Any]) -> None:
    official_dir = oracle.official_checkpoint(
        backbone_dir("bert"), tmp_path, problem_type="multi_label_classification", **options
    )
    theirs = oracle.load_official(official_dir)
    ours, tokenizer = load_model(official_dir)
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    targets = oracle.multi_hot(slots)
    with torch.no_grad():
        expected = theirs(**inputs, labels=targets, max_num_classes=slots).loss
        got = ours(**inputs, labels=targets, max_num_classes=slots)
    assert expected is not None and got.loss is not None
    assert expected.item() > 0
    assert got.loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    if options.get("layer_wise"):
        # Logits still come from the last layer while the loss sums over every layer.
        with torch.no_grad():
            plain = ours(**inputs, max_num_classes=slots).logits
        assert torch.allclose(got.logits, plain, atol=1e-6)


def test_loss_ignores_padding_slots_and_ignore_index() -> None:
    logits = torch.randn(3, 5)
    targets = torch.randint(0, 2, (3, 5)).float()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    base = losses.multi_label_loss(logits, targets, mask, alpha=0.5, gamma=2.0)
    # Whatever sits in padding slots, and whatever a slot marked ignore_index holds, changes nothing.
    noisy_logits = logits.masked_fill(~mask, 50.0)
    assert losses.multi_label_loss(noisy_logits, targets, mask, alpha=0.5, gamma=2.0) == pytest.approx(
        base.item()
    )
    ignored = targets.clone()
    ignored[1, 4] = -100
    partial = losses.multi_label_loss(logits, ignored, mask, alpha=0.5, gamma=2.0)
    mask_without = mask.clone()
    mask_without[1, 4] = False
    assert partial.item() == pytest.approx(
        losses.multi_label_loss(logits, targets, mask_without, alpha=0.5, gamma=2.0).item()
    )


@pytest.mark.parametrize("gamma", [1.5, 0.5, 2.0])
def test_ignored_slots_with_a_fractional_gamma_give_a_finite_loss(gamma: float) -> None:
    logits = torch.randn(3, 5) * 2
    targets = torch.randint(0, 2, (3, 5)).float()
    mask = torch.ones(3, 5, dtype=torch.bool)
    ignored = targets.clone()
    ignored[0, 1] = ignored[2, 4] = -100
    per_slot = losses.focal_loss_with_logits(logits, ignored, alpha=0.5, gamma=gamma)
    assert torch.isfinite(per_slot).all()
    assert per_slot[0, 1] == 0 and per_slot[2, 4] == 0
    kept = mask.clone()
    kept[0, 1] = kept[2, 4] = False
    value = losses.multi_label_loss(logits, ignored, mask, alpha=0.5, gamma=gamma)
    expected = losses.multi_label_loss(logits, targets, kept, alpha=0.5, gamma=gamma)
    assert torch.isfinite(value) and value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_single_label_rows_with_the_ignore_index_add_nothing() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    targets = torch.tensor([2, -100, 0])
    value = losses.single_label_loss(logits, targets, mask)
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([2, 0]))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert logits.grad is not None and logits.grad[1].abs().sum() == 0
    # A batch where every row is ignored is a zero loss with a graph, not nan.
    none = losses.single_label_loss(logits, torch.tensor([-100, -100, -100]), mask)
    assert none.item() == 0.0 and none.requires_grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.5, 2.0), (0.25, 1.0), (-1.0, 2.0), (0.5, 0.0)])
def test_focal_function_matches_official(alpha: float, gamma: float, smoothing: float) -> None:
    logits = torch.randn(4, 7) * 3
    targets = torch.rand(4, 7)  # soft targets
    expected = official_focal(logits, targets, alpha, gamma, "none", label_smoothing=smoothing)
    got = losses.focal_loss_with_logits(logits, targets, alpha, gamma, label_smoothing=smoothing)
    assert torch.allclose(got, expected, atol=1e-7)


def test_focal_without_factors_is_binary_cross_entropy() -> None:
    logits = torch.randn(4, 6)
    targets = torch.randint(0, 2, (4, 6)).float()
    got = losses.focal_loss_with_logits(logits, targets, alpha=-1, gamma=0)
    assert torch.allclose(got, F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))


def test_contrastive_matches_official() -> None:
    vectors = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.float)
    expected = official_contrastive(vectors.masked_fill(mask.unsqueeze(-1) == 0, 0.0), mask)
    got = losses.label_contrastive_loss(vectors.masked_fill(mask.unsqueeze(-1) == 0, 0.0), mask)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_single_label_cross_entropy_over_real_labels_only(backbone_dir, tmp_path: Path) -> None:
    # The official 0.1.21 single-label loss cannot run (it reshapes with num_labels = -1),
    # so the check is against cross-entropy computed row by row over the real labels.
    official_dir = oracle.official_checkpoint(backbone_dir("bert"), tmp_path)
    ours, tokenizer = load_model(official_dir)
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    gold = torch.tensor([0, 1, 0, 3])
    with torch.no_grad():
        out = ours(**inputs, labels=gold, max_num_classes=slots)
    assert out.loss is not None and out.label_mask is not None
    rows = [
        F.cross_entropy(out.logits[i, out.label_mask[i]].unsqueeze(0), gold[i : i + 1])
        for i in range(len(gold))
    ]
    assert out.loss.item() == pytest.approx(torch.stack(rows).mean().item(), rel=1e-5)
    # One-hot targets give the same value as class indices.
    one_hot = F.one_hot(gold, slots).float()
    with torch.no_grad():
        assert ours(**inputs, labels=one_hot, max_num_classes=slots).loss.item() == pytest.approx(
            out.loss.item()
        )


def test_loss_gradients_reach_backbone_and_head(backbone_dir, tmp_path: Path) -> None:
    official_dir = oracle.official_checkpoint(
        backbone_dir("bert"), tmp_path, problem_type="multi_label_classification", scorer_type="mlp"
    )
    model = GLiClassModel.from_pretrained(official_dir).train()
    _, tokenizer = load_model(official_dir)
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    out = model(**inputs, labels=oracle.multi_hot(slots))
    assert out.loss is not None
    out.loss.backward()
    head_grad = model.model.scorer.mlp[0].weight.grad
    backbone_grad = model.model.encoder_model.get_input_embeddings().weight.grad
    assert head_grad is not None and head_grad.abs().sum() > 0
    assert backbone_grad is not None and backbone_grad.abs().sum() > 0
