"""A sentence-embedding similarity added to a model's logits (the config's `embedding_blend`).

Two signals about a label are complementary: the GLiClass model's logit, trained on labelled
data, and the cosine similarity of plain sentence embeddings of the text and of the label in a
template ("This text is about {label}."), which keeps the geometry the embedding backbone
learned from a billion sentence pairs. A checkpoint whose config has
`embedding_blend = {"model", "template", "weight", "offset", "scale"}` is scored as

    scale * (logit(text, label) + weight * (cosine(text, label) - offset))

before the sigmoid or softmax: `weight` sets the share of each signal (it decides the ranking),
`offset` and `scale` only calibrate the scores (fitted on held-out training-source records; see
`recipes/fit_embedding_blend.py`). The cosine is computed by an embedding retriever over `model`
(torch or ONNX; mean pooling over real tokens; a long text is the mean of its windows, so nothing is cut) and
each distinct label is embedded once and cached. The text read is the caller's text, without the
prompt or examples; a label is its name, or "name: description" with `descriptions="label"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .shortlists import Retriever


def centred_terms(cosines: np.ndarray, weight: float, offset: float) -> np.ndarray:
    """`weight * (cosine - mean cosine - offset)` over one text's labels (float32)."""
    return (weight * (cosines - cosines.mean() - offset)).astype(np.float32)


class EmbeddingBlend:
    """The embedding term of each label's logit, for texts and their label sets."""

    def __init__(self, retriever: Retriever, weight: float, offset: float, scale: float) -> None:
        self.retriever = retriever
        self.weight = float(weight)
        self.offset = float(offset)
        self.scale = float(scale)

    @classmethod
    def from_config(cls, blend: dict[str, Any], retriever: Retriever) -> EmbeddingBlend:
        return cls(retriever, blend["weight"], blend["offset"], blend["scale"])

    def terms(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per text, `weight * (cosine - mean cosine - offset)` for each label of its set (same order)."""
        similarities = self.retriever.rank(texts, label_sets)
        return [centred_terms(s, self.weight, self.offset) for s in similarities]

    def combine(self, logits: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """The blended logits of one pass: `scale * (logits + terms)`."""
        return (self.scale * (logits + terms)).astype(np.float32)
