"""A sentence-embedding similarity added to a model's logits (the config's `embedding_blend`).

Two signals about a label are complementary: the GLiClass model's logit, trained on labelled
data, and the cosine similarity of plain sentence embeddings of the text and of the label in a
template ("This text is about {label}."), which keeps the geometry the embedding backbone
learned from a billion sentence pairs. A checkpoint whose config has
`embedding_blend = {"model", "template", "weight", "offset", "scale"}` is scored as

    scale * (logit(text, label) + weight * (cosine(text, label) - reference(text) - offset))

before the sigmoid or softmax. `reference(text)` is the text's mean cosine over the config's
`background` labels, a fixed set: a label's term then depends on the text and the label alone,
whatever labels stand beside it (a one-label call gets the same term as a long list). Without
`background`, the reference is the mean cosine over the call's own labels (the v3 default
model's blend), which makes a one-label call's term a constant. `weight` sets the share of each
signal (it decides the ranking); `offset` and `scale` only calibrate the scores (fitted on
held-out training-source records; see `recipes/fit_embedding_blend.py`). The cosine is computed
by an embedding retriever over `model` (torch or ONNX; mean pooling over real tokens; a long text
is the mean of its windows, so nothing is cut) and each distinct label is embedded once and
cached. The text read is the caller's text, without the prompt or examples; a label is its name,
or "name: description" with `descriptions="label"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .shortlists import Retriever


def centred_terms(
    cosines: np.ndarray, weight: float, offset: float, reference: float | None = None
) -> np.ndarray:
    """`weight * (cosine - reference - offset)` over one text's labels (float32); the reference is
    the mean of `cosines` unless given (the text's mean cosine over background labels)."""
    centre = cosines.mean() if reference is None else reference
    return (weight * (cosines - centre - offset)).astype(np.float32)


class EmbeddingBlend:
    """The embedding term of each label's logit, for texts and their label sets."""

    def __init__(
        self,
        retriever: Retriever,
        weight: float,
        offset: float,
        scale: float,
        background: Sequence[str] | None = None,
    ) -> None:
        self.retriever = retriever
        self.weight = float(weight)
        self.offset = float(offset)
        self.scale = float(scale)
        self.background = list(background) if background else None

    @classmethod
    def from_config(cls, blend: dict[str, Any], retriever: Retriever) -> EmbeddingBlend:
        return cls(retriever, blend["weight"], blend["offset"], blend["scale"], blend.get("background"))

    def terms(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per text, `weight * (cosine - reference - offset)` for each label of its set (same order).

        The background labels ride along with each set, so every text is embedded once.
        """
        if self.background is None:
            similarities = self.retriever.rank(texts, label_sets)
            return [centred_terms(s, self.weight, self.offset) for s in similarities]
        n = len(self.background)
        similarities = self.retriever.rank(texts, [[*labels, *self.background] for labels in label_sets])
        return [centred_terms(s[:-n], self.weight, self.offset, float(s[-n:].mean())) for s in similarities]

    def combine(self, logits: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """The blended logits of one pass: `scale * (logits + terms)`."""
        return (self.scale * (logits + terms)).astype(np.float32)
