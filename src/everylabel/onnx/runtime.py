"""`OnnxBackend`: the engine's onnxruntime runtime over an export folder (`tokenizers` and numpy).

The same stages as torch run on it (`inference/engine.py`: validation, the one input layout,
batching, label vectors, post-processing, decoding), with the same results; only what turns a
padded batch into logits differs (`inference/backend.py`). Neither torch nor transformers is
imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import InputError, NumericalError
from ..inference.batching import CPU_BATCH_TOKENS
from ..inference.shortlists import LABEL_TEMPLATE, piece_batches, window_pieces
from ..inference.vector_cache import LABEL_VECTOR_CACHE_SIZE, LabelVectorCache
from ..label_tokens import LabelTokens
from ..padding import pad_rows
from ..prompt import wrapping_ids
from .fast_tokenizer import FastTokenizer
from .manifest import OnnxManifest, TokenizerInfo

LABEL_BATCH = 256
# An embedding blend's background labels, embedded by the export's own graph (`export.py`), so that
# the first call does not embed them: (labels, vectors, template).
BACKGROUND_FILE = "background_vectors.npz"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Session:
    """An onnxruntime session fed only the inputs its graph kept (the exporter drops unused ones,
    such as the attention mask of a model that reads the embedding layer). Its intra-op threads are
    `threads`, else the cores the process may use, set once when it opens."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
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
        self.width = width  # the longest input of the graph
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


class OnnxBackend:
    """The onnxruntime runtime of the engine, over an export folder (see `inference/backend.py`)."""

    kind = "onnx"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        threads: int | None = None,
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = manifest = OnnxManifest.load(self.folder)
        self.layout = manifest  # the architecture, prompt order and special ids
        self.window = manifest.text.max_length
        self.tokenizer = _tokenizer(self.folder, manifest.text)
        self.pad_id = manifest.text.pad_token_id
        self.mask_padding = manifest.mask_padding
        self.default_batch_tokens = CPU_BATCH_TOKENS
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
        self._embedders: dict[str, OnnxEmbedder] = {}
        self._lock = threading.Lock()
        if manifest.embedding is not None:
            self.embedder = OnnxEmbedder(
                open_session(self.folder / "embedding.onnx", threads),
                _tokenizer(self.folder, manifest.embedding),
                manifest.embedding.max_length,
                cache_size=label_cache_size,
            )
            self._embedders[LABEL_TEMPLATE] = self.embedder
            self._load_background()

    @property
    def architecture_type(self) -> str:
        return self.manifest.architecture_type

    @property
    def is_bi_encoder(self) -> bool:
        return self.manifest.is_bi_encoder

    @property
    def label_cacheable(self) -> bool:
        return self.label_encoder is not None  # the export refuses label vectors that depend on a call

    @property
    def label_width(self) -> int:
        return self.manifest.label_width if self.label_encoder is not None else 0

    @property
    def dot_scored(self) -> bool:
        return self.label_encoder is not None and self.manifest.dot_scored

    def vectors_array(self, vectors: Sequence[Any]) -> np.ndarray:
        return np.stack(list(vectors)).astype(np.float32)

    def run(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        label_vectors: Sequence[Any] | None,
        label_index: np.ndarray | None,
        label_block: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if label_block is not None:
            feeds["class_input_ids"], feeds["class_attention_mask"] = label_block
        if label_vectors is not None and label_index is not None:
            feeds["label_vectors"] = np.stack(list(label_vectors)).astype(np.float32)
            feeds["label_index"] = label_index
        else:
            feeds["label_slots"] = np.zeros(num_slots, dtype=np.int64)
        logits = self.session.run(feeds).astype(np.float32, copy=False)
        if not np.isfinite(logits).all():
            raise NumericalError("the ONNX model produced inf or nan logits")
        return logits

    def label_table(self, per_pass: Sequence[Sequence[str]], shared: bool, max_length: int) -> dict[str, Any]:
        return self._require_label_encoder("label vectors").table([p for pieces in per_pass for p in pieces])

    def values_per_slot(self) -> int | None:
        return self.manifest.label_width if self.label_encoder is not None else None

    def embedding_retriever(self, name: str, template: str) -> OnnxEmbedder | None:
        """The export's embedding graph with `template`, if `name` is the backbone it was exported
        from (the embedding blend's model); None for any other backbone."""
        if self.embedder is None or name != self.embedding_model:
            return None
        with self._lock:
            if template not in self._embedders:
                self._embedders[template] = OnnxEmbedder(
                    self.embedder.session, self.embedder.tokenizer, self.embedder.width, template
                )
            return self._embedders[template]

    def _load_background(self) -> None:
        """The background labels' vectors into the blend's label cache, if the export holds them."""
        path = self.folder / BACKGROUND_FILE
        if not path.is_file() or self.embedding_model is None:
            return
        with np.load(path) as stored:
            retriever = self.embedding_retriever(self.embedding_model, str(stored["template"]))
            assert retriever is not None
            retriever.cache.put(dict(zip(stored["labels"].tolist(), stored["vectors"], strict=True)))

    @property
    def embedding_model(self) -> str | None:
        """The name of the backbone the embedding graph was exported from."""
        blend = self.manifest.embedding_blend
        return str(blend["model"]) if blend is not None else None

    def encode_labels(self, pieces: Sequence[str]) -> np.ndarray:
        table = self._require_label_encoder("encode_labels").table(list(pieces))
        return np.stack([table[piece] for piece in pieces]).astype(np.float32)

    def store_labels(self, pieces: Sequence[str], vectors: np.ndarray) -> None:
        encoder = self._require_label_encoder("store_label_embeddings")
        encoder.cache.put(dict(zip(pieces, np.asarray(vectors, dtype=np.float32), strict=True)))

    def clear_label_cache(self) -> None:
        if self.label_encoder is not None:
            self.label_encoder.cache.clear()

    def describe(self) -> dict[str, str]:
        return {"backend": "onnx", "device": "cpu", "dtype": "int8" if self.manifest.int8 else "fp32"}

    def _require_label_encoder(self, name: str) -> OnnxLabelEncoder:
        if self.label_encoder is None:
            raise InputError(
                name, "only bi-encoders encode labels apart from the text; this model is a uni-encoder"
            )
        return self.label_encoder
