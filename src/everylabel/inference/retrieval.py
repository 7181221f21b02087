"""Retrievers: rank thousands of candidate labels cheaply, so that the model scores only the top k.

A retriever maps texts and their candidate label names to one score per label (higher ranks
first). Two kinds:
- `EmbeddingRetriever`: a plain sentence-embedding backbone (the packaged all-MiniLM-L6-v2 by
  default): cosine of the mean-pooled, normalised text and label embeddings. A label stands in the
  template "This text is about {label}." (as the project's embedding baseline). Texts longer than
  the backbone's window are embedded window by window and the windows averaged: nothing is cut.
(`shortlists.BiEncoderRetriever` ranks with a bi-encoder checkpoint's own scores, on any runtime.)
Label vectors are cached, so a label set of 10,000 names is embedded once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..loading import quiet_loading
from ..paths import MINILM_NAME, PathLike, resolve_model_source
from ..prompt import wrapping_ids
from ..runtime import backbone_max_length, resolve_device
from .batching import collate
from .shortlists import LABEL_TEMPLATE, piece_batches, window_pieces
from .vector_cache import LABEL_VECTOR_CACHE_SIZE, LabelVectorCache


class EmbeddingRetriever:
    """Cosine similarity of sentence embeddings (mean pooling over real tokens, L2-normalised)."""

    def __init__(
        self,
        path: PathLike = MINILM_NAME,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        template: str = LABEL_TEMPLATE,
        cache_size: int = LABEL_VECTOR_CACHE_SIZE,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        if "{label}" not in template:
            raise InputError("template", f"must contain {{label}}, got {template!r}")
        folder = resolve_model_source(path)
        self.name = f"embedding:{path}"
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        with quiet_loading():
            self.model = AutoModel.from_pretrained(folder).to(self.device).eval()
        self.batch_size = batch_size
        self.template = template
        self.prefix, self.suffix = wrapping_ids(self.tokenizer)
        self.window = min(backbone_max_length(self.model.config), 512) - len(self.prefix) - len(self.suffix)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.cache: LabelVectorCache[torch.Tensor] = LabelVectorCache(cache_size)
        self._lock = threading.Lock()  # a fast tokenizer's settings are shared state
        # Long texts are expected (they are embedded window by window); mute the tokenizer's notice.
        getattr(self.tokenizer, "deprecation_warnings", {})[
            "sequence-length-is-longer-than-the-specified-maximum"
        ] = True

    @torch.inference_mode()
    def embed(self, strings: Sequence[str]) -> torch.Tensor:
        """(len(strings), hidden) unit vectors; a long string is the mean of its windows' vectors."""
        if not strings:
            return torch.empty(0)
        with self._lock:
            encoded = self.tokenizer(list(strings), add_special_tokens=False, split_special_tokens=True)
        pieces = window_pieces(encoded["input_ids"], self.window, self.prefix, self.suffix)  # (string, ids)
        vectors = torch.zeros(len(pieces), self.model.config.hidden_size)
        for chunk in piece_batches(pieces, self.batch_size):
            batch, mask = collate([pieces[j][1] for j in chunk], self.pad_id)
            hidden = self.model(input_ids=batch.to(self.device), attention_mask=mask.to(self.device))[0]
            weights = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (batch, hidden)
            vectors[chunk] = F.normalize(pooled.float(), dim=-1).cpu()
        owner = torch.tensor([i for i, _ in pieces])
        summed = torch.zeros(len(strings), vectors.shape[1]).index_add_(0, owner, vectors)
        return F.normalize(summed, dim=-1)

    def label_vectors(self, labels: Sequence[str]) -> torch.Tensor:
        """(len(labels), hidden) label vectors, each distinct label embedded once and cached."""
        table = self.cache.fetch(
            labels, lambda missing: self.embed([self.template.format(label=m) for m in missing])
        )
        return torch.stack([table[label] for label in labels])

    def rank(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        text_vectors = self.embed(texts)  # (texts, hidden)
        matrices: dict[tuple[str, ...], torch.Tensor] = {}
        out = []
        for vector, labels in zip(text_vectors, label_sets, strict=True):
            key = tuple(labels)
            if key not in matrices:  # a shared label set is looked up once
                matrices[key] = self.label_vectors(labels)  # (labels, hidden)
            out.append((matrices[key] @ vector).numpy())
        return out
