"""A bi-encoder as a retriever: its own scores rank a shortlist's labels, on any runtime."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .engine import ClassifierEngine


class BiEncoderRetriever:
    """A bi-encoder's own scores (sigmoid of its logits) as the ranking, on any runtime; long
    texts are chunked, so nothing is cut."""

    def __init__(self, classifier: ClassifierEngine, name: str = "in memory") -> None:
        if not classifier.backend.is_bi_encoder:
            raise InputError("retriever", "a GLiClass retriever must be a bi-encoder checkpoint")
        self.classifier = classifier
        self.name = f"bi-encoder:{name}"

    def rank(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        clf = self.classifier
        prepared = clf.prepare(list(texts), [list(s) for s in label_sets], truncation="chunk")
        results = clf.decode(prepared, clf.score(prepared), warn=False)
        return [
            np.array([r.scores.get(label, 0.0) for label in labels])
            for r, labels in zip(results, label_sets, strict=True)
        ]
