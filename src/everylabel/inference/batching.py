"""Length-sorted batches packed by a token budget, and their collation into padded tensors (no torch
import unless `collate` asks for them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..padding import pad_rows

if TYPE_CHECKING:
    import torch

# The padded-token budget of one batch on a CPU, for every runtime. On a CPU one input of a few
# hundred tokens already keeps the matrix units busy, so bigger batches only add padding: 1024 gave
# 19-49% more texts/s than 16384 on mixed-length texts and 1-6% more on short ones
# (benchmarks/cpu_batch_budget.py; docs/benchmarks.md, "CPU speed against the peak").
CPU_BATCH_TOKENS = 1024


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


def collate(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`pad_rows` as torch tensors."""
    import torch

    ids, mask = pad_rows(rows, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)
