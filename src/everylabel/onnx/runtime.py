"""`OnnxClassifier`: the classifier stages on an ONNX export, with onnxruntime, `tokenizers` and numpy.

The same `classify` / `classify_iter` / `prepare` / `decode` as the torch `Classifier` and the
same results: both run `inference/engine.py` (validation, the one input layout, batching,
the embedding blend, decoding) and differ only in what turns a padded batch into logits.
Neither torch nor transformers is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import InputError, NumericalError
from ..inference.batching import pad_rows
from ..inference.calibration import Calibration, load_calibration
from ..inference.embedding_blend import EmbeddingBlend
from ..inference.engine import ClassifierEngine, Prepared
from ..inference.shortlists import LABEL_TEMPLATE, Retriever, piece_batches, window_pieces
from ..inference.vector_cache import LABEL_VECTOR_CACHE_SIZE, LabelVectorCache
from ..label_tokens import LabelTokens, slot_index
from ..prompt import DescriptionMode, InputBuilder, wrapping_ids
from . import manifest as manifest_module
from .fast_tokenizer import FastTokenizer
from .manifest import OnnxManifest, TokenizerInfo

LABEL_BATCH = 256


class Session:
    """An onnxruntime session fed only the inputs its graph kept (the exporter drops unused ones,
    such as the attention mask of a model that reads the embedding layer)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's first output."""
        return np.asarray(self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0])


def open_session(path: Path, threads: int | None) -> Session:
    return Session(path, threads)


def _tokenizer(folder: Path, info: TokenizerInfo) -> FastTokenizer:
    return FastTokenizer(folder / info.file, info.pad_token_id, info.all_special_ids)


class OnnxEmbedder:
    """The embedding graph as a retriever: cosine of unit text and label-in-template vectors.

    A text longer than the graph's window is embedded window by window and the windows averaged,
    as the torch `EmbeddingRetriever` does; label vectors are cached.
    """

    def __init__(
        self,
        session: Session,
        tokenizer: FastTokenizer,
        width: int,
        template: str = LABEL_TEMPLATE,
        cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        batch_size: int = 64,
        name: str = "embedding:onnx",
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.prefix, self.suffix = wrapping_ids(cast(Any, tokenizer))
        self.window = width - len(self.prefix) - len(self.suffix)
        self.template = template
        self.batch_size = batch_size
        self.cache: LabelVectorCache[np.ndarray] = LabelVectorCache(cache_size)
        self.name = name

    def embed(self, strings: Sequence[str]) -> np.ndarray:
        """(len(strings), width) unit vectors; a long string is the mean of its windows' vectors."""
        ids = self.tokenizer(list(strings), add_special_tokens=False, split_special_tokens=True)["input_ids"]
        pieces = window_pieces(ids, self.window, self.prefix, self.suffix)
        vectors: np.ndarray | None = None
        for chunk in piece_batches(pieces, self.batch_size):
            batch, mask = pad_rows([pieces[j][1] for j in chunk], self.tokenizer.pad_token_id)
            out = self.session.run({"input_ids": batch, "attention_mask": mask})  # (chunk, width)
            if vectors is None:
                vectors = np.zeros((len(pieces), out.shape[1]), dtype=np.float32)
            vectors[chunk] = out
        assert vectors is not None
        summed = np.zeros((len(strings), vectors.shape[1]), dtype=np.float32)
        np.add.at(summed, np.array([owner for owner, _ in pieces]), vectors)
        return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)

    def label_vectors(self, labels: Sequence[str]) -> np.ndarray:
        table = self.cache.fetch(
            labels, lambda missing: list(self.embed([self.template.format(label=m) for m in missing]))
        )
        return np.stack([table[label] for label in labels])

    def rank(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        if not texts:
            return []
        text_vectors = self.embed(texts)
        matrices: dict[tuple[str, ...], np.ndarray] = {}
        out = []
        for vector, labels in zip(text_vectors, label_sets, strict=True):
            key = tuple(labels)
            if key not in matrices:
                matrices[key] = self.label_vectors(labels)  # (labels, width)
            out.append(matrices[key] @ vector)
        return out


class OnnxLabelEncoder:
    """A bi-encoder's label graph: each distinct label string encoded once, then cached."""

    def __init__(self, session: Session, tokenizer: FastTokenizer, max_length: int, cache_size: int) -> None:
        self.session = session
        self.tokens = LabelTokens(cast(Any, tokenizer), max_length)
        self.cache: LabelVectorCache[np.ndarray] = LabelVectorCache(cache_size)

    def encode(self, labels: list[str]) -> list[np.ndarray]:
        rows = self.tokens.ids(labels)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out: list[np.ndarray] = [np.empty(0)] * len(rows)
        for start in range(0, len(order), LABEL_BATCH):
            chunk = order[start : start + LABEL_BATCH]
            ids, mask = pad_rows([rows[i] for i in chunk], self.tokens.pad_id)
            vectors = self.session.run({"label_input_ids": ids, "label_attention_mask": mask})
            for j, i in enumerate(chunk):
                out[i] = vectors[j]
        return out

    def table(self, labels: Sequence[str]) -> dict[str, np.ndarray]:
        return self.cache.fetch(labels, self.encode)


class OnnxClassifier(ClassifierEngine):
    """Zero-shot classification with an ONNX export (`everylabel export onnx`), torch-free.

    Options as `Classifier`'s where they apply: `max_length`, `batch_size`, `max_batch_tokens`,
    `min_text_tokens`, `descriptions`, `label_cache_size`, `embedding_blend`, `calibration` (True:
    the one stored in the export, copied from the checkpoint; False: none); `threads` sets
    onnxruntime's intra-op threads (default: its own choice). The pooling mode is the one the
    export fixed in its graphs (`mask_padding` in the manifest).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        min_text_tokens: int = 64,
        descriptions: DescriptionMode = "ignore",
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        embedding_blend: bool = True,
        calibration: bool | Calibration | None = True,
        threads: int | None = None,
    ) -> None:
        from ..inference import inputs

        inputs.check_choice("descriptions", descriptions, ("label", "text", "ignore"))
        if batch_size < 1:
            raise InputError("batch_size", f"must be >= 1, got {batch_size}")
        self.folder = Path(folder)
        self.manifest = manifest = OnnxManifest.load(self.folder)
        limit = manifest.text.max_length
        if max_length is not None and not 8 <= max_length <= limit:
            raise InputError("max_length", f"must be in [8, {limit}] for this model, got {max_length}")
        self.max_length = max_length or limit
        self.batch_size = batch_size
        self.max_batch_tokens = max(max_batch_tokens or 16384, self.max_length)
        self.tokenizer = _tokenizer(self.folder, manifest.text)
        self.builder = InputBuilder(
            cast(Any, self.tokenizer),  # the subset of a tokenizer the layout uses
            cast(Any, manifest),  # the architecture, prompt order and special ids
            self.max_length,
            min_text_tokens=min_text_tokens,
            description_mode=descriptions,
        )
        self.calibration = load_calibration(self.folder) if calibration is True else calibration or None
        self.pad_id = manifest.text.pad_token_id
        self.mask_padding = manifest.mask_padding
        self.session = open_session(self.folder / "model.onnx", threads)
        self.label_encoder: OnnxLabelEncoder | None = None
        if manifest.label is not None:
            self.label_encoder = OnnxLabelEncoder(
                open_session(self.folder / "label_encoder.onnx", threads),
                _tokenizer(self.folder, manifest.label),
                manifest.label.max_length,
                label_cache_size,
            )
        self.embedder: OnnxEmbedder | None = None
        self.blend = None
        if manifest.embedding is not None:
            self.embedder = OnnxEmbedder(
                open_session(self.folder / "embedding.onnx", threads),
                _tokenizer(self.folder, manifest.embedding),
                manifest.embedding.max_length,
                cache_size=label_cache_size,
            )
            spec = manifest.embedding_blend
            if embedding_blend and spec is not None:
                blend_embedder = self.embedder
                if spec["template"] != LABEL_TEMPLATE:
                    blend_embedder = OnnxEmbedder(
                        self.embedder.session,
                        self.embedder.tokenizer,
                        manifest.embedding.max_length,
                        spec["template"],
                    )
                self.blend = EmbeddingBlend.from_config(spec, blend_embedder)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **options: Any) -> OnnxClassifier:
        """An export folder (`everylabel export onnx --out DIR`)."""
        if not manifest_module.is_onnx_export(path):
            raise InputError(
                "model", f"{path} is not an everylabel ONNX export (no {manifest_module.MANIFEST})"
            )
        return cls(path, **options)

    # -- the onnxruntime backend -------------------------------------------------------------------

    def retriever(self, spec: Any = None) -> Retriever:
        """`spec` if it ranks (`.rank`), else the export's embedding graph (the default model has one)."""
        if hasattr(spec, "rank"):
            return cast(Retriever, spec)
        if spec is None and self.embedder is not None:
            return self.embedder
        raise InputError(
            "retriever",
            "the ONNX backend shortlists with the export's embedding graph or a retriever object (with "
            "`.rank`); this export has no embedding graph, so give one",
        )

    def label_table(self, prepared: Prepared) -> dict[str, Any] | None:
        if self.label_encoder is None or not prepared.requests:
            return None
        pieces = [label for item in prepared.passes for label in self.slot_labels(prepared, item)]
        return self.label_encoder.table(pieces)

    def values_per_slot(self) -> int | None:
        return self.manifest.label_width if self.label_encoder is not None else None

    def run_rows(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        table: dict[str, Any] | None,
        slot_labels: list[list[str]] | None,
    ) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if table is not None and slot_labels is not None:
            distinct, index = slot_index(slot_labels)
            feeds["label_vectors"] = np.stack([table[label] for label in distinct]).astype(np.float32)
            feeds["label_index"] = index
        else:
            feeds["label_slots"] = np.zeros(num_slots, dtype=np.int64)
        logits = self.session.run(feeds).astype(np.float32, copy=False)
        if not np.isfinite(logits).all():
            raise NumericalError("the ONNX model produced inf or nan logits")
        return logits
