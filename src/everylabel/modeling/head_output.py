"""What a GLiClass head computes, and the training loss on it (shared by every architecture)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import GLiClassConfig
from . import losses


@dataclass
class HeadOutput:
    """Logits and the vectors they were scored from."""

    logits: torch.Tensor  # (batch, num_slots)
    text_vectors: torch.Tensor  # (batch, hidden), or (batch, seq, hidden) with "pass" pooling
    label_vectors: torch.Tensor  # (batch, num_slots, hidden)
    label_mask: torch.Tensor  # (batch, num_slots), True for real labels


def head_loss(config: GLiClassConfig, out: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
    """The training loss of one head output against `labels` (see `GLiClassModel.forward`)."""
    if config.problem_type == "multi_label_classification":
        value = losses.multi_label_loss(
            out.logits,
            labels,
            out.label_mask,
            alpha=config.focal_loss_alpha,
            gamma=config.focal_loss_gamma,
            reduction=config.focal_loss_reduction,
            label_smoothing=config.label_smoothing,
            ignore_index=config.ignore_index,
        )
    else:
        value = losses.single_label_loss(out.logits, labels, out.label_mask, config.ignore_index)
    if config.contrastive_loss_coef > 0:
        value = value + config.contrastive_loss_coef * losses.label_contrastive_loss(
            out.label_vectors, out.label_mask
        )
    return value
