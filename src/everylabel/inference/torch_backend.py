"""The torch runtime of the engine: a GLiClass model on a device, in a dtype (see `backend.py`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..config import GLiClassConfig
from ..errors import InputError, NumericalError
from ..modeling.bi_encoder import BiEncoder
from ..modeling.model import GLiClassModel
from ..runtime import model_max_length, resolve_device, resolve_dtype
from ..tokenization import load_label_tokenizer
from .adapter_host import AdapterHost, check_max_loaded
from .batching import CPU_BATCH_TOKENS
from .extra_adapters import MAX_LOADED_ADAPTERS
from .label_vectors import LABEL_VECTOR_CACHE_SIZE, LabelVectors
from .retrieval import EmbeddingRetriever


class TorchBackend:
    """A GLiClass model run by torch. It owns the model it is given: moved to `device`, cast to
    `dtype` and put in eval mode in place (no copy, so a large model is not held twice)."""

    kind = "torch"

    def __init__(
        self,
        model: GLiClassModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        mask_padding: bool | None = None,
        label_tokenizer: PreTrainedTokenizerBase | None = None,
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        max_loaded_adapters: int = MAX_LOADED_ADAPTERS,
    ) -> None:
        check_max_loaded(max_loaded_adapters)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        torch.nn.Module.to(model, device=self.device, dtype=self.dtype)
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = cast(GLiClassConfig, model.config)
        self.config = self.layout = config
        self.window = model_max_length(config)
        self.mask_padding = (
            config.pooling_mask_padding(default=True) if mask_padding is None else mask_padding
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.default_batch_tokens = CPU_BATCH_TOKENS if self.device.type == "cpu" else 262144
        self.label_vectors: LabelVectors | None = None
        if config.is_bi_encoder:
            self.label_vectors = LabelVectors(
                model,
                label_tokenizer if label_tokenizer is not None else load_label_tokenizer(config),
                self.mask_padding,
                label_cache_size,
            )
        self._embedders: dict[tuple[str, str], EmbeddingRetriever] = {}
        self._lock = threading.Lock()
        self.max_loaded_adapters = max_loaded_adapters
        self.adapters: AdapterHost | None = None  # extra LoRA adapters, made by the first `load_adapter`

    @property
    def architecture_type(self) -> str:
        return str(self.config.architecture_type)

    @property
    def is_bi_encoder(self) -> bool:
        return bool(self.config.is_bi_encoder)

    @property
    def label_cacheable(self) -> bool:
        return self.label_vectors is not None and self.label_vectors.cacheable

    def run(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        label_vectors: Sequence[Any] | None,
        label_index: np.ndarray | None,
        label_block: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        return self._forward(
            self.model,
            *_tensors(input_ids, attention_mask, label_vectors, label_index, label_block),
            num_slots,
        )

    def run_adapter(
        self,
        adapter: str,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        label_vectors: Sequence[Any] | None,
        label_index: np.ndarray | None,
        label_block: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """`run` with the extra adapter `adapter` (see `load_adapter`) instead of the model's own
        weights; the host model is switched to it and called under its lock."""
        if self.adapters is None:
            raise InputError("adapter", f"no adapter named {adapter!r}; this classifier has none")
        tensors = _tensors(input_ids, attention_mask, label_vectors, label_index, label_block)
        with self.adapters.active(adapter) as model:
            return self._forward(model, *tensors, num_slots)

    def load_adapter(self, name: str, folder: str | os.PathLike[str]) -> GLiClassConfig:
        """Register an everylabel LoRA adapter folder trained on this model's base backbone (see
        `adapter_host.py`) and load it; returns its config."""
        if self.adapters is None:
            self.adapters = AdapterHost(self.config, self.device, self.dtype, self.max_loaded_adapters)
        return self.adapters.register(name, folder).config

    def forget_adapter(self, name: str) -> None:
        if self.adapters is not None:
            self.adapters.forget(name)

    def loaded_adapters(self) -> list[str]:
        """The extra adapters held in memory now, least recently used first."""
        return self.adapters.loaded if self.adapters is not None else []

    def run_tensors(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_slots: int,
        label_embeddings: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,
        label_block: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> np.ndarray:
        """`run` on tensors: logits (batch, num_slots) float32; bi-encoders also take the label vectors
        (labels, hidden) and each slot's row among them (batch, num_slots), -1 for padding; the
        encoder-decoders their label blocks' ids and mask (batch, label_seq)."""
        return self._forward(
            self.model, input_ids, attention_mask, label_embeddings, label_index, label_block, num_slots
        )

    @torch.inference_mode()
    def _forward(
        self,
        model: GLiClassModel,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_embeddings: torch.Tensor | None,
        label_index: torch.Tensor | None,
        label_block: tuple[torch.Tensor, torch.Tensor] | None,
        num_slots: int,
    ) -> np.ndarray:
        extra = {}
        if label_embeddings is not None and label_index is not None:
            extra = {
                "label_embeddings": label_embeddings.to(self.device, self.dtype),
                "label_index": label_index.to(self.device),
            }
        if label_block is not None:
            extra = {
                "class_input_ids": label_block[0].to(self.device, non_blocking=True),
                "class_attention_mask": label_block[1].to(self.device, non_blocking=True),
            }
        out = model(
            input_ids.to(self.device, non_blocking=True),
            attention_mask.to(self.device, non_blocking=True),
            max_num_classes=num_slots,
            mask_padding=self.mask_padding,
            **extra,
        )
        logits = out.logits.float().cpu().numpy()
        if not np.isfinite(logits).all():
            raise NumericalError(_non_finite_message(self.dtype))
        return logits

    def label_table(
        self, per_pass: Sequence[Sequence[str]], shared: bool, max_length: int
    ) -> dict[str, torch.Tensor]:
        return self._require_label_vectors("label vectors").for_call(per_pass, shared, max_length)

    @property
    def label_width(self) -> int:
        """The size of a bi-encoder's label vector (0 for a uni-encoder)."""
        return int(self.config.encoder_hidden_size) if self.label_vectors is not None else 0

    @property
    def dot_scored(self) -> bool:
        inner = self.model.model
        return self.label_vectors is not None and isinstance(inner, BiEncoder) and inner.scores_by_matmul

    def vectors_array(self, vectors: Sequence[Any]) -> np.ndarray:
        return _label_rows(vectors).float().cpu().numpy()

    def values_per_slot(self) -> int | None:
        if self.label_vectors is None:
            return None
        inner = self.model.model
        return (
            1 if isinstance(inner, BiEncoder) and inner.scores_by_matmul else self.config.encoder_hidden_size
        )

    def embedding_retriever(self, name: str, template: str) -> EmbeddingRetriever:
        """One embedding backbone per (name, template) on this device, built once and kept."""
        with self._lock:
            key = (name, template)
            if key not in self._embedders:
                self._embedders[key] = EmbeddingRetriever(name, device=self.device, template=template)
            return self._embedders[key]

    def encode_labels(self, pieces: Sequence[str]) -> np.ndarray:
        return self._require_label_vectors("encode_labels").vectors(pieces).float().cpu().numpy()

    def store_labels(self, pieces: Sequence[str], vectors: np.ndarray) -> None:
        encoder = self._require_label_vectors("store_label_embeddings")
        encoder.store(pieces, torch.from_numpy(np.asarray(vectors)).to(self.device, self.dtype))

    def clear_label_cache(self) -> None:
        if self.label_vectors is not None:
            self.label_vectors.cache.clear()

    def describe(self) -> dict[str, str]:
        return {"backend": "torch", "device": str(self.device), "dtype": _dtype_name(self.dtype)}

    def _require_label_vectors(self, name: str) -> LabelVectors:
        if self.label_vectors is None:
            raise InputError(
                name, "only bi-encoders encode labels apart from the text; this model is a uni-encoder"
            )
        return self.label_vectors


_Tensors = tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor | None,
    torch.Tensor | None,
    tuple[torch.Tensor, torch.Tensor] | None,
]


def _tensors(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    label_vectors: Sequence[Any] | None,
    label_index: np.ndarray | None,
    label_block: tuple[np.ndarray, np.ndarray] | None,
) -> _Tensors:
    """`run`'s arrays as tensors (on the CPU; `_forward` moves them): ids, mask, a bi-encoder's label
    vectors (labels, hidden) and slot index, an encoder-decoder's label block."""
    vectors = _label_rows(label_vectors) if label_vectors is not None else None
    index = torch.from_numpy(label_index) if label_index is not None else None
    block = None
    if label_block is not None:
        block = (torch.from_numpy(label_block[0]), torch.from_numpy(label_block[1]))
    return torch.from_numpy(input_ids), torch.from_numpy(attention_mask), vectors, index, block


def _label_rows(vectors: Sequence[Any]) -> torch.Tensor:
    """(labels, width) label vectors in one tensor: the table's tensors, or float32 arrays (the
    refit of in-context examples, `example_vectors.py`), or both (`_forward` moves them)."""
    rows = list(vectors)
    if any(isinstance(row, np.ndarray) for row in rows):
        rows = [torch.from_numpy(row) if isinstance(row, np.ndarray) else row.float().cpu() for row in rows]
    return torch.stack(rows)


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
        dtype, str(dtype).replace("torch.", "")
    )


def _non_finite_message(dtype: torch.dtype) -> str:
    if dtype == torch.float16:
        return (
            "the model's logits overflowed in float16 (inf or nan); load it with dtype='fp32', "
            "or 'bf16' on a GPU that supports it"
        )
    return f"the model produced inf or nan logits in {_dtype_name(dtype)}; try dtype='fp32'"
