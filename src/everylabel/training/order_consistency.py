"""Label-order consistency: train the model to give a label the same logit whatever its slot.

A uni-encoder reads the candidates in one sequence, so a label's logit depends on where it sits
and what sits beside it; the top answer can flip when the same candidates come in another order.
With `order_consistency: w` in a training config, each batch is also run with every example's
candidates in another (seeded) order, and the loss becomes

    (task loss of order A + task loss of order B) / 2 + w * mean over labels of (logit_A - logit_B)^2

taken over the labels that sit in the model input in both orders. That gap also falls when the
model only shrinks its logits toward each other, leaving the order effect as large against their
spread as before; with `order_consistency_gap: relative` each example's mean squared gap is divided
by the spread of its logits (their variance over the paired labels, the mean of the two orders), so
only a smaller order effect lowers it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import torch

from .dataset import TrainingExample


def reordered(example: TrainingExample, rng: random.Random) -> TrainingExample:
    """The same example with its candidates (and their targets) in a random other order.

    With two or more candidates the order differs from the given one (a derangement is not
    needed: some label must move).
    """
    count = len(example.request.labels)
    order = list(range(count))
    if count > 1:
        while order == list(range(count)):
            rng.shuffle(order)
    request = example.request
    return TrainingExample(
        replace(
            request,
            labels=[request.labels[i] for i in order],
            descriptions=[request.descriptions[i] for i in order],
        ),
        [example.targets[i] for i in order],
    )


def pair_slots(names: Sequence[Sequence[str]], other: Sequence[Sequence[str]], slots: int) -> torch.Tensor:
    """(batch, slots) the slot in `other` of each label of `names`, or -1 where it is not there.

    names [["a", "b"]], other [["b", "a"]], slots 3 -> [[1, 0, -1]].
    """
    pairs = torch.full((len(names), slots), -1, dtype=torch.long)
    for row, (mine, theirs) in enumerate(zip(names, other, strict=True)):
        where = {name: slot for slot, name in enumerate(theirs)}
        for slot, name in enumerate(mine):
            pairs[row, slot] = where.get(name, -1)
    return pairs


# Added to a relative gap's spread: an example whose logits are all alike is not divided by ~0.
SPREAD_FLOOR = 1e-2


def consistency_loss(
    logits: torch.Tensor, other_logits: torch.Tensor, pairs: torch.Tensor, relative: bool = False
) -> torch.Tensor:
    """Mean squared difference of each label's logit in the two orders.

    logits (batch, slots), other_logits (batch, other_slots), pairs (batch, slots) -> a scalar;
    zero when no label is paired. `relative`: per example, the mean squared gap over its paired
    labels divided by their logits' variance (mean of the two orders) plus `SPREAD_FLOOR`,
    averaged over the examples with at least two paired labels (one label has no order).
    """
    paired = pairs >= 0  # (batch, slots)
    matched = other_logits.gather(1, pairs.clamp(min=0))  # (batch, slots): B's logit of A's label
    if not relative:
        if not bool(paired.any()):
            return logits.sum() * 0.0
        return (logits - matched)[paired].pow(2).mean()
    weight = paired.to(logits.dtype)  # (batch, slots)
    count = weight.sum(1)  # (batch,)
    rows = count >= 2
    if not bool(rows.any()):
        return logits.sum() * 0.0
    count = count.clamp(min=1)
    gap = ((logits - matched).pow(2) * weight).sum(1) / count  # (batch,)
    spread = (variance(logits, weight, count) + variance(matched, weight, count)) / 2  # (batch,)
    return (gap / (spread + SPREAD_FLOOR))[rows].mean()


def variance(values: torch.Tensor, weight: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(batch,) the variance of each row's values where `weight` is 1; values, weight (batch, slots)."""
    mean = (values * weight).sum(1, keepdim=True) / count.unsqueeze(1)  # (batch, 1)
    return ((values - mean).pow(2) * weight).sum(1) / count
