"""What a runtime gives the engine: one padded batch of token ids in, logits out (torch-free).

`ClassifierEngine` (engine.py) does everything else (validation, layout, batching, label vectors
per call, post-processing, decoding) the same way for every runtime. Two runtimes implement this
protocol: torch (`inference/torch_backend.py`) and onnxruntime (`onnx/runtime.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .shortlists import Retriever


class Backend(Protocol):
    """A model runtime. Safe to call from several threads at once."""

    kind: str  # "torch" or "onnx"
    tokenizer: Any  # what the input layout tokenises with (a transformers or `FastTokenizer`)
    layout: Any  # architecture_type, prompt_first and special_token_ids(): a config or a manifest
    window: int  # the longest input the model takes, in tokens
    pad_id: int
    mask_padding: bool  # text pooled over real tokens only (see `Classifier`)
    default_batch_tokens: int  # padded tokens per batch when the caller sets no budget

    @property
    def architecture_type(self) -> str: ...

    @property
    def is_bi_encoder(self) -> bool: ...

    @property
    def label_cacheable(self) -> bool:
        """A bi-encoder's label vector depends on the label alone (then it is cached across calls)."""
        ...

    @property
    def label_width(self) -> int:
        """The size of a bi-encoder's label vector (0 for a uni-encoder)."""
        ...

    @property
    def dot_scored(self) -> bool:
        """A bi-encoder whose logit is the text vector dotted with the label vector, times its logit
        scale (linear in the label vector: in-context examples can refit its label vectors)."""
        ...

    def vectors_array(self, vectors: Sequence[Any]) -> np.ndarray:
        """(n, width) float32: label vectors as `label_table` holds them, as one array."""
        ...

    def run(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        label_vectors: Sequence[Any] | None,
        label_index: np.ndarray | None,
        label_block: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Logits (batch, num_slots) float32 of one padded batch (ids and mask int64, (batch, seq)).

        Bi-encoders also get the batch's distinct label vectors (one per row of `label_index`'s
        values; as `label_table` holds them, or float32 arrays) and each slot's row among them,
        `label_index` (batch, num_slots), -1 for padding.
        The encoder-decoder architectures get their label blocks' ids and mask (batch, label_seq).
        Raises `NumericalError` on inf or nan."""
        ...

    def label_table(self, per_pass: Sequence[Sequence[str]], shared: bool, max_length: int) -> dict[str, Any]:
        """A bi-encoder's vectors of one call's distinct label strings (see `LabelVectors.for_call`)."""
        ...

    def values_per_slot(self) -> int | None:
        """How many values a label slot holds in a batch (bounds a bi-encoder's batch); None: no bound."""
        ...

    def embedding_retriever(self, name: str, template: str) -> Retriever | None:
        """A sentence-embedding retriever over the backbone `name` on this runtime; None where this
        runtime has none of that name (the ONNX runtime has only the one its export holds)."""
        ...

    def encode_labels(self, pieces: Sequence[str]) -> np.ndarray:
        """(len(pieces), width) float32 label vectors of a bi-encoder, cached."""
        ...

    def store_labels(self, pieces: Sequence[str], vectors: np.ndarray) -> None:
        """Put label vectors (from `encode_labels`) into the label cache."""
        ...

    def clear_label_cache(self) -> None: ...

    def describe(self) -> dict[str, str]:
        """{"backend", "device", "dtype"}: what runs the model, for /info, logs and fingerprints."""
        ...
