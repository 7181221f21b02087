"""Shortlists: a retriever ranks a text's labels, and only the top k reach the model.

A retriever maps texts and their candidate label names to one score per label (higher ranks
first); `retrieval.py` has the torch embedding one, `onnx/` the onnxruntime one, and
`bi_encoder_retrieval.py` ranks with a bi-encoder on either runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import numpy as np

from .labels import Label
from .results import Shortlist

# How a label stands in a sentence for a sentence-embedding model (the embedding baseline's).
LABEL_TEMPLATE: Final = "This text is about {label}."
# Padded tokens per batch of an embedding retriever, and the shortest piece a batch takes, as a
# share of its longest (the rest would be padding).
EMBED_BATCH_TOKENS: Final = 8192
SAME_LENGTH: Final = 0.75


class Retriever(Protocol):
    name: str

    def rank(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per text, one score per label of its set (same order); higher is more likely."""
        ...


def piece_batches(pieces: Sequence[tuple[int, list[int]]], batch_size: int) -> list[list[int]]:
    """Indices of `pieces` in length-sorted batches of at most `batch_size` pieces and
    `EMBED_BATCH_TOKENS` padded tokens, none shorter than `SAME_LENGTH` of its batch's longest: a
    call with a few texts of mixed lengths pads as little as one with many.
    Lengths [100, 90, 20, 18], size 8 -> [[0, 1], [2, 3]]."""
    order = sorted(range(len(pieces)), key=lambda j: -len(pieces[j][1]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for j in order:
        length = len(pieces[j][1])
        full = len(current) >= batch_size or longest * (len(current) + 1) > EMBED_BATCH_TOKENS
        if current and (full or length < SAME_LENGTH * longest):
            batches.append(current)
            current = []
        if not current:
            longest = length
        current.append(j)
    if current:
        batches.append(current)
    return batches


def window_pieces(
    rows: Sequence[Sequence[int]], window: int, prefix: list[int], suffix: list[int]
) -> list[tuple[int, list[int]]]:
    """Each string's token ids cut into windows of `window` tokens, each wrapped: (string index, ids).

    An embedding retriever embeds every window and averages a string's windows, so nothing is cut.
    """
    pieces: list[tuple[int, list[int]]] = []
    for i, row in enumerate(rows):
        for start in range(0, max(len(row), 1), window):
            pieces.append((i, prefix + list(row[start : start + window]) + suffix))
    return pieces


def shortlist_labels(
    ranker: Retriever, texts: Sequence[str], label_sets: Sequence[list[Label]], k: int
) -> tuple[list[list[Label]], list[Shortlist | None]]:
    """Each text's top-k labels by `ranker`, kept in the caller's order for the model, and the
    shortlist record (best retriever score first). An empty text is not ranked (nor scored)."""
    scored = [i for i, text in enumerate(texts) if text.strip()]
    names = [[label.name for label in label_sets[i]] for i in scored]
    ranked = ranker.rank([texts[i] for i in scored], names)
    out_sets = list(label_sets)
    records: list[Shortlist | None] = [None] * len(texts)
    for i, scores in zip(scored, ranked, strict=True):
        top = np.argsort(-scores, kind="stable")[:k]
        out_sets[i] = [label_sets[i][j] for j in sorted(top)]
        picked = [label_sets[i][j].name for j in top]
        values = {name: float(scores[j]) for name, j in zip(picked, top, strict=True)}
        records[i] = Shortlist(picked, values, len(label_sets[i]), ranker.name)
    return out_sets, records
