"""`Classifier`: the user-facing classifier, one class over every runtime (torch or onnxruntime).

The stages are the engine's (`engine.py`); the runtime is a `Backend` swapped underneath:
`Classifier(model, tokenizer)` runs a model in memory on torch, `Classifier.from_pretrained(path,
backend=...)` picks the runtime with the one resolver of `backends.py`. Nothing here imports torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..prompt import DescriptionMode
from . import inputs
from .calibration import Calibration
from .engine import MAX_BATCH_LABEL_VALUES, STREAM_WINDOW, ClassifierEngine, TruncationWarning
from .extra_adapters import MAX_LOADED_ADAPTERS
from .prepared import Aggregation, Prepared
from .shortlists import Retriever
from .vector_cache import LABEL_VECTOR_CACHE_SIZE

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from ..modeling.model import GLiClassModel
    from .label_vectors import LabelVectors
    from .torch_backend import TorchBackend

__all__ = [
    "MAX_BATCH_LABEL_VALUES",
    "STREAM_WINDOW",
    "Aggregation",
    "Classifier",
    "Prepared",
    "TruncationWarning",
]


class Classifier(ClassifierEngine):
    """Zero-shot and few-shot classification with a GLiClass model; one encoder pass per text.

    `Classifier(model, tokenizer, ...)` runs a model in memory on torch. It owns the model it is
    given: it moves it to `device`, casts it to `dtype` and puts it in eval mode, in place (no copy
    is made, so a large model is not held twice). `Classifier.from_pretrained` loads a checkpoint or
    an ONNX export and picks the runtime. One classifier may be called from several threads at
    once: the stages keep no per-call state on the object, and tokenisation and the caches are
    locked.

    `mask_padding`: pool the text over real tokens only (True), so a text's scores never depend on
    the batch it lands in, or with the padding as the official poolers do (False). Default: as the
    checkpoint's config records it from everylabel training, else True.

    `calibration`: scale and bias each label's logit and give tuned default thresholds (see
    `inference/calibration.py`); `from_pretrained` loads the one `everylabel calibrate` stored with
    the checkpoint (`calibration=False` leaves it off).

    `embedding_blend`: add the sentence-embedding term of a checkpoint whose config has one (see
    `inference/embedding_blend.py`; the default model does); False scores with the model alone.

    Bi-encoders (`bi-encoder`, `bi-encoder-fused`) read label names with their label encoder
    (`label_tokenizer`, default: the one stored with the checkpoint or of `label_model_name`).
    Each distinct label is encoded once and kept in an LRU cache of `label_cache_size` labels;
    `encode_labels` gives those vectors to a caller who wants to store them.

    Extra LoRA adapters on the model's base backbone are registered with `load_adapter` and picked
    per call (`classify(..., adapter=name)`); at most `max_loaded_adapters` are held in memory at
    once (torch runtime only).
    """

    def __init__(
        self,
        model: GLiClassModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        min_text_tokens: int = 64,
        descriptions: DescriptionMode = "ignore",
        mask_padding: bool | None = None,
        label_tokenizer: PreTrainedTokenizerBase | None = None,
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        embedding_blend: bool = True,
        calibration: Calibration | None = None,
        max_loaded_adapters: int = MAX_LOADED_ADAPTERS,
    ) -> None:
        from .torch_backend import TorchBackend

        backend = TorchBackend(
            model,
            tokenizer,
            device=device,
            dtype=dtype,
            mask_padding=mask_padding,
            label_tokenizer=label_tokenizer,
            label_cache_size=label_cache_size,
            max_loaded_adapters=max_loaded_adapters,
        )
        super().__init__(
            backend,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            min_text_tokens=min_text_tokens,
            descriptions=descriptions,
            embedding_blend=embedding_blend,
            calibration=calibration,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        backend: str = "auto",
        **options: Any,
    ) -> Classifier:
        """A classifier over a GLiClass checkpoint (local folder or hub id) or an ONNX export.

        backend: "torch", "onnx" (a checkpoint is exported once into the cache, `onnx/cache.py`),
        or "auto", which `backends.resolve_backend` documents: an export runs on onnxruntime, the
        default model too where that gives the answers torch would (a CPU, fp32, no torch-only
        option), any other checkpoint on torch. Options are checked for the runtime chosen: one it
        does not take is an `InputError` naming it.

        adapters: {name: adapter folder} registered with `load_adapter` once the model is open (torch
        only, so "auto" picks torch); max_loaded_adapters: how many of them are held at once.
        """
        from ..backends import open_classifier  # the one resolver, a layer above (see its module)

        return open_classifier(cls, path, backend=backend, device=device, dtype=dtype, **options)

    # -- shortlists ------------------------------------------------------------------------------

    def retriever(self, spec: Any = None) -> Retriever:
        """What ranks labels for `shortlist` (`backends.open_retriever` resolves `spec` the same way
        on every runtime), built once per name and kept."""
        if hasattr(spec, "rank"):
            return spec
        from ..backends import open_retriever

        if spec is not None and not isinstance(spec, str | os.PathLike):
            return open_retriever(self, spec)  # a classifier object: nothing to build
        key = "" if spec is None else os.fspath(spec)
        with self._retriever_lock:
            if key not in self._retrievers:
                self._retrievers[key] = open_retriever(self, spec)
            return self._retrievers[key]

    # -- label vectors of bi-encoders --------------------------------------------------------------

    def encode_labels(self, labels: Any) -> np.ndarray:
        """(len(labels), width) float32 vectors of a bi-encoder's labels, as `classify` scores them.

        `labels` is a list of names, `Label(name, description)` items and the like (descriptions
        are read with `descriptions="label"`). The vectors are cached; give them back to another
        classifier of the same model with `store_label_embeddings`.
        """
        return self.backend.encode_labels(self._label_pieces(labels))

    def store_label_embeddings(self, labels: Any, vectors: np.ndarray) -> None:
        """Put vectors from `encode_labels` into the label cache, so those labels are not encoded."""
        pieces = self._label_pieces(labels)
        array = np.asarray(vectors)
        width = self.backend.label_width
        if array.shape != (len(pieces), width):
            raise inputs.InputError("vectors", f"expected shape ({len(pieces)}, {width}), got {array.shape}")
        self.backend.store_labels(pieces, array)

    def clear_label_cache(self) -> None:
        """Forget cached label vectors (needed after the model's weights change)."""
        self.backend.clear_label_cache()

    def _label_pieces(self, labels: Any) -> list[str]:
        label_set, _ = inputs.normalize_labels(labels, 1)[0]
        return [self.builder.label_piece(label.name, label.description) for label in label_set]

    # -- the torch runtime's own parts -----------------------------------------------------------------

    @property
    def model(self) -> GLiClassModel:
        """The torch model (torch runtime only)."""
        return self._torch("model").model

    @property
    def device(self) -> torch.device:
        return self._torch("device").device

    @property
    def dtype(self) -> torch.dtype:
        return self._torch("dtype").dtype

    @property
    def label_vectors(self) -> LabelVectors | None:
        """A bi-encoder's label encoder and its cache (torch runtime only)."""
        return self._torch("label_vectors").label_vectors

    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_slots: int,
        label_embeddings: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Logits (batch, num_slots) float32 of one padded batch of tensors (torch runtime only); see
        `TorchBackend.run_tensors`."""
        return self._torch("run").run_tensors(
            input_ids, attention_mask, num_slots, label_embeddings, label_index
        )

    def _torch(self, name: str) -> TorchBackend:
        if self.backend.kind != "torch":
            raise AttributeError(f"{name}: this classifier runs on {self.backend.kind}, not torch")
        return self.backend  # type: ignore[return-value]
