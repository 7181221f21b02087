"""Length-sorted batches packed by a token budget, and their collation into padded arrays (no torch
import unless `collate` asks for tensors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def plan_batches(lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group item indices into batches of similar length.

    A batch holds at most `max_batch_size` items and at most `max_batch_tokens` padded tokens
    (items x longest item). Longest first, so a batch that does not fit in memory fails early.
    [5, 100, 7, 98], size 2, tokens 1000 -> [[1, 3], [2, 0]].
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        full = len(current) >= max_batch_size or longest_if_added * (len(current) + 1) > max_batch_tokens
        if current and full:
            batches.append(current)
            current, longest_if_added = [], lengths[index]
        current.append(index)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 input ids and attention mask, both (batch, `width` or the longest row)."""
    width = width or max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def collate(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`pad_rows` as torch tensors."""
    import torch

    ids, mask = pad_rows(rows, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)
