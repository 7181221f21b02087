"""Label vectors of a bi-encoder: each distinct label encoded once, kept in a bounded LRU cache.

A label's vector depends on the label alone when it is pooled over its own tokens (the default),
or with `first` pooling; then it is cached across calls. Pooled as the official model does
(`mask_padding=False` with any other pooling) it depends on its padding, so it is encoded once
per call, padded the official way, and not cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import torch
from transformers import PreTrainedTokenizerBase

from ..config import GLiClassConfig
from ..errors import InputError
from ..label_tokens import LabelTokens, slot_index
from ..modeling.model import GLiClassModel
from ..runtime import label_max_length
from .vector_cache import LABEL_VECTOR_CACHE_SIZE, LabelVectorCache

# Labels encoded per label-encoder pass.
LABEL_BATCH: Final = 256


class LabelVectors:
    """Turns label strings into label vectors with a bi-encoder's label encoder."""

    def __init__(
        self,
        model: GLiClassModel,
        tokenizer: PreTrainedTokenizerBase,
        mask_padding: bool,
        cache_size: int = LABEL_VECTOR_CACHE_SIZE,
    ) -> None:
        config = cast(GLiClassConfig, model.config)
        self.model = model
        self.tokens = LabelTokens(tokenizer, label_max_length(config))
        self.max_length = self.tokens.max_length
        self.mask_padding = mask_padding
        self.cacheable = mask_padding or config.pooling_strategy == "first"
        self.cache: LabelVectorCache[torch.Tensor] = LabelVectorCache(cache_size)

    @torch.inference_mode()
    def encode(self, labels: Sequence[str], pad_to: int | None = None) -> torch.Tensor:
        """(len(labels), hidden) vectors, computed now (no cache). `pad_to`: pad every label to this
        many tokens (the official per-text padding) instead of to the longest of each pass."""
        rows = self.tokens.ids(labels)
        device = next(self.model.parameters()).device
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out: list[torch.Tensor | None] = [None] * len(rows)
        step = len(rows) if pad_to is not None or not self.cacheable else LABEL_BATCH
        for start in range(0, len(order), max(step, 1)):
            chunk = order[start : start + step]
            ids, mask = self.tokens.pad([rows[i] for i in chunk], pad_to)
            vectors = self.model.encode_labels(
                torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), self.mask_padding
            )
            for j, i in enumerate(chunk):
                out[i] = vectors[j]
        return torch.stack([v for v in out if v is not None]) if rows else torch.empty(0)

    def vectors(self, labels: Sequence[str], pad_to: int | None = None) -> torch.Tensor:
        """(len(labels), hidden) vectors; distinct labels are encoded once, from the cache if there."""
        if self.cacheable:
            table = self.cache.fetch(labels, self.encode)
        else:
            distinct = list(dict.fromkeys(labels))
            table = dict(zip(distinct, self.encode(distinct, pad_to), strict=True))
        return torch.stack([table[label] for label in labels])

    def for_call(
        self, per_pass: Sequence[Sequence[str]], shared: bool, max_length: int
    ) -> dict[str, torch.Tensor]:
        """Vectors of a call's distinct labels, each encoded once (or taken from the cache).

        Pooled with padding, a vector depends on the call: all are encoded at once, padded as the
        official pipeline pads (to the longest label when every text `shared` one label set, else
        to `max_length`).
        """
        distinct = list(dict.fromkeys(label for labels in per_pass for label in labels))
        pad_to = None if self.cacheable or shared else min(max_length, self.max_length)
        return dict(zip(distinct, self.vectors(distinct, pad_to), strict=True))

    def store(self, labels: Sequence[str], vectors: torch.Tensor) -> None:
        """Put precomputed vectors (from `encode`) into the cache."""
        if not self.cacheable:
            raise InputError(
                "label vectors",
                "pooled with padding (mask_padding=False), a label's vector depends on its batch; "
                "they cannot be stored",
            )
        self.cache.put(dict(zip(labels, vectors, strict=True)))


def slot_inputs(
    table: dict[str, torch.Tensor] | None, per_row: Sequence[Sequence[str]]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A batch's distinct label vectors (labels, hidden) and each slot's row in them (batch, slots),
    -1 for padding; (None, None) for a uni-encoder (no table).

    [["a", "b"], ["b"]] -> vectors of a, b and [[0, 1], [1, -1]].
    """
    if table is None:
        return None, None
    distinct, index = slot_index(per_row)
    return torch.stack([table[label] for label in distinct]), torch.from_numpy(index)
