"""Label strings -> token ids for a bi-encoder's label encoder (inference and training share it)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .errors import InputError
from .padding import pad_rows
from .prompt import plain_tokens, wrapping_ids

Key = TypeVar("Key", bound=Hashable)

if TYPE_CHECKING:  # torch-free at run time: the ONNX runtime tokenises labels here too
    import torch
    from transformers import PreTrainedTokenizerBase


class LabelTokens:
    """Tokenises labels as the label tokenizer wraps a sequence ([CLS] label [SEP] and the like).

    Special-token text in a label is plain text, and a label longer than the label encoder takes is
    an error, never cut. Safe to share between threads.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.prefix, self.suffix = wrapping_ids(tokenizer)
        self.forbidden = set(tokenizer.all_special_ids) - set(self.prefix) - set(self.suffix)
        self.max_length = max_length  # the label encoder's window (`runtime.label_max_length`)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()

    def ids(self, labels: Sequence[str]) -> list[list[int]]:
        """Each label's token ids, wrapped."""
        if not labels:
            return []
        with self._lock:
            enc = plain_tokens(self.tokenizer, labels)
        rows = []
        for label, ids in zip(labels, enc["input_ids"], strict=True):
            row = self.prefix + [t for t in ids if t not in self.forbidden] + self.suffix
            if len(row) > self.max_length:
                raise InputError(
                    f"labels[{label[:40]!r}]",
                    f"{len(row)} tokens, but the label encoder takes {self.max_length}",
                )
            rows.append(row)
        return rows

    def pad(self, rows: Sequence[Sequence[int]], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, width) int64 ids and attention mask, right-padded to `width` (default: the longest)."""
        return pad_rows(rows, self.pad_id, width)

    def batch(self, per_row: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """Model inputs for the labels of a batch: each distinct label once, and each slot's row.

        [["a", "b"], ["b"]] -> label_input_ids (2, width), label_index [[0, 1], [1, -1]].
        """
        import torch

        distinct, index = slot_index(per_row)
        ids, mask = self.pad(self.ids(distinct))
        return {
            "label_input_ids": torch.from_numpy(ids),
            "label_attention_mask": torch.from_numpy(mask),
            "label_index": torch.from_numpy(index),
        }


def slot_index(per_row: Sequence[Sequence[Key]]) -> tuple[list[Key], np.ndarray]:
    """The distinct labels (or label keys) of a batch, in first-seen order, and each slot's row among
    them (batch, slots), -1 for padding. [["a", "b"], ["b"]] -> ["a", "b"], [[0, 1], [1, -1]]."""
    distinct = list(dict.fromkeys(label for labels in per_row for label in labels))
    position = {label: i for i, label in enumerate(distinct)}
    index = np.full((len(per_row), max(len(r) for r in per_row)), -1, dtype=np.int64)
    for i, labels in enumerate(per_row):
        if labels:
            index[i, : len(labels)] = [position[label] for label in labels]
    return distinct, index
