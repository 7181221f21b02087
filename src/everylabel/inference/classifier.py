"""`Classifier`: the torch backend of the classifier stages (see `engine.py`).

prepare (validate, lay out token ids) -> batches (length-sorted, token-budget packed) -> run (the
model on one padded batch) -> decode (scores, windows and label groups merged, thresholds).
The CLI, the benchmarks and the server call these same stages.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..config import GLiClassConfig
from ..errors import NumericalError
from ..loading import is_gliclass_checkpoint, load_model, resolve_path
from ..modeling.bi_encoder import BiEncoder
from ..modeling.model import GLiClassModel
from ..onnx.backend import onnx_folder, pick_backend
from ..paths import MINILM_NAME
from ..prompt import DescriptionMode, InputBuilder
from ..runtime import model_max_length, resolve_device, resolve_dtype
from ..tokenization import load_label_tokenizer
from . import inputs
from .calibration import Calibration, load_calibration
from .embedding_blend import EmbeddingBlend
from .engine import (
    MAX_BATCH_LABEL_VALUES,
    STREAM_WINDOW,
    Aggregation,
    ClassifierEngine,
    Prepared,
    TruncationWarning,
)
from .label_vectors import LABEL_VECTOR_CACHE_SIZE, LabelVectors, slot_inputs
from .retrieval import BiEncoderRetriever, EmbeddingRetriever
from .shortlists import LABEL_TEMPLATE, Retriever

if TYPE_CHECKING:
    from ..onnx.runtime import OnnxClassifier

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

    The classifier owns the model it is given: it moves it to `device`, casts it to `dtype` and
    puts it in eval mode, in place (no copy is made, so a large model is not held twice). A caller
    who keeps using the same model object sees those changes; `Classifier.from_pretrained` loads a
    model of its own. One classifier may be called from several threads at once: the stages keep
    no per-call state on the object, and tokenisation and the label cache are locked.

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
    ) -> None:
        inputs.check_choice("descriptions", descriptions, ("label", "text", "ignore"))
        if batch_size < 1:
            raise inputs.InputError("batch_size", f"must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        torch.nn.Module.to(model, device=self.device, dtype=self.dtype)
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = cast(GLiClassConfig, model.config)
        limit = model_max_length(config)
        if max_length is not None and not 8 <= max_length <= limit:
            raise inputs.InputError("max_length", f"must be in [8, {limit}] for this model, got {max_length}")
        self.max_length = max_length or limit
        self.batch_size = batch_size
        default_tokens = 16384 if self.device.type == "cpu" else 262144
        self.max_batch_tokens = max(max_batch_tokens or default_tokens, self.max_length)
        self.builder = InputBuilder(
            tokenizer,
            config,
            self.max_length,
            min_text_tokens=min_text_tokens,
            description_mode=descriptions,
        )
        # Label descriptions reach the model only when asked ("label" slot or "text"): models trained
        # without descriptions lost accuracy with them (a few-shot MiniLM model, docs/benchmarks.md).
        self.mask_padding = (
            config.pooling_mask_padding(default=True) if mask_padding is None else mask_padding
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._retrievers: dict[str, Retriever] = {}
        self.label_vectors: LabelVectors | None = None
        if config.is_bi_encoder:
            self.label_vectors = LabelVectors(
                model,
                label_tokenizer if label_tokenizer is not None else load_label_tokenizer(config),
                self.mask_padding,
                label_cache_size,
            )
        self.blend: EmbeddingBlend | None = None
        if embedding_blend and config.embedding_blend is not None:
            spec = config.embedding_blend
            retriever = self._embedding_retriever(spec["model"], spec["template"])
            self.blend = EmbeddingBlend.from_config(spec, retriever)
        self.calibration = calibration

    @overload
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        backend: Literal["torch"],
        **options: Any,
    ) -> Classifier: ...

    @overload
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        backend: str = "auto",
        **options: Any,
    ) -> Classifier | OnnxClassifier: ...

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        backend: str = "auto",
        **options: Any,
    ) -> Classifier | OnnxClassifier:
        """A classifier over a GLiClass checkpoint (local folder or hub id), or an ONNX export.

        backend: "auto" runs an export folder (`everylabel export onnx`) with onnxruntime and a
        checkpoint with torch; "onnx" also runs a checkpoint with onnxruntime, exported once into
        the cache (`onnx/cache.py`); "torch" refuses an export. The ONNX backend takes the options
        that apply to it (see `OnnxClassifier`) and runs on the CPU in the export's precision.
        """
        calibration = options.get("calibration", True)
        if pick_backend(path, backend, str(device)) == "onnx":
            from ..onnx.runtime import OnnxClassifier

            if str(dtype).replace("torch.", "") not in ("auto", "fp32", "float32"):
                raise inputs.InputError(
                    "dtype", f"the ONNX backend runs in the export's precision, got {dtype!r}"
                )
            return OnnxClassifier(onnx_folder(path), **options)
        resolved = resolve_device(device)
        if isinstance(calibration, bool):  # True: the one stored with the checkpoint, if any
            options["calibration"] = load_calibration(resolve_path(path)) if calibration else None
        model, tokenizer = load_model(path, dtype=resolve_dtype(dtype, resolved))
        if model.config.is_bi_encoder and "label_tokenizer" not in options:
            options["label_tokenizer"] = load_label_tokenizer(model.config, str(path))
        return cls(model, tokenizer, device=resolved, dtype=dtype, **options)

    # -- the torch backend ------------------------------------------------------------------------

    def retriever(self, spec: Any = None) -> Retriever:
        """The retriever `shortlist` uses: `spec` as given (a `Retriever`, a bi-encoder `Classifier`,
        a bi-encoder checkpoint or a sentence-embedding backbone), else this model if it is a plain
        bi-encoder, else the packaged all-MiniLM-L6-v2. Built once per spec and kept."""
        if hasattr(spec, "rank"):
            return cast(Retriever, spec)
        if isinstance(spec, Classifier):
            return BiEncoderRetriever(spec)
        if spec is None and self.model.config.architecture_type == "bi-encoder":
            return self._retrievers.setdefault("self", BiEncoderRetriever(self))
        name = str(spec) if spec is not None else MINILM_NAME
        if name not in self._retrievers and is_gliclass_checkpoint(name):
            other = Classifier.from_pretrained(name, device=self.device, backend="torch")
            self._retrievers[name] = BiEncoderRetriever(other)
        return self._retrievers.get(name) or self._embedding_retriever(name, LABEL_TEMPLATE)

    def _embedding_retriever(self, name: str, template: str) -> EmbeddingRetriever:
        """One embedding backbone per (name, template), shared by shortlists and the blend."""
        key = name if template == LABEL_TEMPLATE else f"{name}\n{template}"
        if key not in self._retrievers:
            self._retrievers[key] = EmbeddingRetriever(name, device=self.device, template=template)
        return cast(EmbeddingRetriever, self._retrievers[key])

    def values_per_slot(self) -> int | None:
        if self.label_vectors is None:
            return None
        inner = self.model.model
        return (
            1 if isinstance(inner, BiEncoder) and inner.scores_by_matmul else inner.config.encoder_hidden_size
        )

    def run_rows(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        table: dict[str, Any] | None,
        slot_labels: list[list[str]] | None,
    ) -> np.ndarray:
        vectors, slot_rows = slot_inputs(table, slot_labels) if slot_labels is not None else (None, None)
        return self.run(
            torch.from_numpy(input_ids), torch.from_numpy(attention_mask), num_slots, vectors, slot_rows
        )

    @torch.inference_mode()
    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_slots: int,
        label_embeddings: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Logits (batch, num_slots) as float32 numpy for one padded batch.

        Bi-encoders also take the label vectors (labels, hidden) and each slot's row in them
        (batch, num_slots), -1 for padding. Raises `NumericalError` when a logit is inf or nan
        (float16 overflows on some models).
        """
        extra = {}
        if label_embeddings is not None and label_index is not None:
            extra = {"label_embeddings": label_embeddings, "label_index": label_index.to(self.device)}
        out = self.model(
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

    def label_table(self, prepared: Prepared) -> dict[str, torch.Tensor] | None:
        """A bi-encoder's vectors of the call's distinct labels (see `LabelVectors.for_call`)."""
        if self.label_vectors is None or not prepared.requests:
            return None
        per_pass = [self.slot_labels(prepared, item) for item in prepared.passes]
        first = prepared.requests[0]
        shared = all(
            r.labels == first.labels and r.descriptions == first.descriptions for r in prepared.requests
        )
        return self.label_vectors.for_call(per_pass, shared, self.max_length)

    def encode_labels(self, labels: Any) -> np.ndarray:
        """(len(labels), hidden) float32 vectors of a bi-encoder's labels, as `classify` scores them.

        `labels` is a list of names, `Label(name, description)` items and the like (descriptions
        are read with `descriptions="label"`). The vectors are cached; give them back to another
        classifier of the same model with `store_label_embeddings`.
        """
        encoder = self._require_label_vectors("encode_labels")
        pieces = self._label_pieces(labels)
        return encoder.vectors(pieces).float().cpu().numpy()

    def store_label_embeddings(self, labels: Any, vectors: np.ndarray) -> None:
        """Put vectors from `encode_labels` into the label cache, so those labels are not encoded."""
        encoder = self._require_label_vectors("store_label_embeddings")
        pieces = self._label_pieces(labels)
        array = np.asarray(vectors)
        width = self.model.config.encoder_hidden_size
        if array.shape != (len(pieces), width):
            raise inputs.InputError("vectors", f"expected shape ({len(pieces)}, {width}), got {array.shape}")
        tensor = torch.from_numpy(array).to(self.device, self.dtype)
        encoder.store(pieces, tensor)

    def clear_label_cache(self) -> None:
        """Forget cached label vectors (needed after the model's weights change)."""
        if self.label_vectors is not None:
            self.label_vectors.cache.clear()

    def _require_label_vectors(self, name: str) -> LabelVectors:
        if self.label_vectors is None:
            raise inputs.InputError(
                name, "only bi-encoders encode labels apart from the text; this model is a uni-encoder"
            )
        return self.label_vectors

    def _label_pieces(self, labels: Any) -> list[str]:
        label_set, _ = inputs.normalize_labels(labels, 1)[0]
        return [self.builder.label_piece(label.name, label.description) for label in label_set]


def _non_finite_message(dtype: torch.dtype) -> str:
    if dtype == torch.float16:
        return (
            "the model's logits overflowed in float16 (inf or nan); load it with dtype='fp32', "
            "or 'bf16' on a GPU that supports it"
        )
    name = str(dtype).replace("torch.", "")
    return f"the model produced inf or nan logits in {name}; try dtype='fp32'"
