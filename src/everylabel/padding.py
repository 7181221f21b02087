"""Right-padding of token id rows into arrays (numpy only): shared by inference, training and export."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 input ids and attention mask, both (batch, `width` or the longest row).

    [[5, 6, 7], [8]], pad 0 -> ids [[5, 6, 7], [8, 0, 0]], mask [[1, 1, 1], [1, 0, 0]].
    """
    width = width or max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
