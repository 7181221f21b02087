"""Loss functions as pure tensor maths, shared by the model, the trainers and the tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss_with_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.5,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Element-wise focal loss on logits (same shape as `logits`; ignored slots give 0).

    `targets` are probabilities in [0, 1] (soft labels allowed); a negative alpha or a
    non-positive gamma turns that factor off, which leaves plain binary cross-entropy.
    """
    valid = targets != ignore_index
    # Ignored slots hold `ignore_index`; give them a harmless target before any maths, or a
    # fractional gamma turns (1 - p_t) < 0 into nan, and nan * 0 is still nan.
    targets = torch.where(valid, targets, torch.zeros_like(targets)).to(logits.dtype)
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * valid
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = loss * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def multi_label_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    label_mask: torch.Tensor,
    *,
    alpha: float,
    gamma: float,
    reduction: str | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Focal loss over real label slots: summed, or averaged over the real slots (default)."""
    # logits, targets, label_mask: (batch, num_labels)
    per_slot = focal_loss_with_logits(logits, targets, alpha, gamma, label_smoothing, ignore_index)
    valid = targets.ne(ignore_index) & label_mask.bool()
    total = (per_slot * valid).sum()
    return total if reduction == "sum" else total / valid.sum().clamp(min=1)


def single_label_loss(
    logits: torch.Tensor, targets: torch.Tensor, label_mask: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Cross-entropy over the real label slots only.

    `targets` is (batch,) class indices, `ignore_index` for a row without its true label among the
    candidates (it adds nothing), or (batch, num_labels) one-hot / soft scores summing to 1 per row
    (an all-zero row adds nothing).
    """
    masked = logits.float().masked_fill(~label_mask.bool(), torch.finfo(torch.float32).min)
    if targets.dim() == 1:
        kept = targets != ignore_index
        if not kept.any():  # every row ignored: a zero that still reaches every parameter's graph
            return logits.float().sum() * 0.0
        return F.cross_entropy(masked, targets.long(), ignore_index=ignore_index)
    log_probs = masked.log_softmax(dim=-1).masked_fill(~label_mask.bool(), 0.0)
    per_row = -(log_probs * targets.float()).sum(dim=-1)  # (batch,)
    kept = targets.float().sum(dim=-1) > 0  # a row with no target mass adds nothing, as ignore_index
    if not kept.any():
        return logits.float().sum() * 0.0
    return per_row[kept].mean()


def platt_level_loss(
    logits: torch.Tensor, scores: torch.Tensor, label_mask: torch.Tensor, scale: float, bias: float
) -> torch.Tensor:
    """Binary cross-entropy of every real slot's `sigmoid(scale * logit + bias)` against its score in
    [0, 1], averaged over the real slots.

    The level term of single-label training: a softmax only compares a text's candidates, so their
    logits can drift up or down together; a fixed Platt step (the calibration multi-label calls read
    them through) ties them to one threshold across texts. A row with no true candidate (a one-label
    call about something else) trains every slot toward no.
    """
    # logits, scores, label_mask: (batch, num_labels)
    return multi_label_loss(
        scale * logits.float() + bias, scores.clamp(0.0, 1.0), label_mask, alpha=-1.0, gamma=0.0
    )


def label_contrastive_loss(label_vectors: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """Each label vector must pick itself out among the labels of its row (cosine similarity logits)."""
    # label_vectors: (batch, num_labels, hidden), label_mask: (batch, num_labels)
    batch, num_labels, _ = label_vectors.shape
    unit = F.normalize(label_vectors, p=2, dim=-1)
    similarity = unit @ unit.transpose(1, 2)  # (batch, num_labels, num_labels)
    target = torch.arange(num_labels, device=unit.device).repeat(batch)
    loss = F.cross_entropy(similarity.reshape(batch * num_labels, num_labels), target, reduction="none")
    weights = label_mask.reshape(-1).to(loss.dtype)
    return (loss * weights).sum() / weights.sum()
