"""`OnnxClassifier`: a `Classifier` built on an ONNX export, torch-free."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError
from ..inference.calibration import Calibration, load_calibration
from ..inference.classifier import Classifier
from ..inference.engine import ClassifierEngine
from ..inference.vector_cache import LABEL_VECTOR_CACHE_SIZE
from ..prompt import DescriptionMode
from . import manifest as manifest_module
from .runtime import OnnxBackend


class OnnxClassifier(Classifier):
    """A `Classifier` on an ONNX export (`everylabel export onnx`), torch-free.

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
        backend = OnnxBackend(folder, threads=threads, label_cache_size=label_cache_size)
        ClassifierEngine.__init__(
            self,
            backend,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            min_text_tokens=min_text_tokens,
            descriptions=descriptions,
            embedding_blend=embedding_blend,
            calibration=load_calibration(backend.folder) if calibration is True else calibration or None,
        )
        self.folder = backend.folder
        self.manifest = backend.manifest

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **options: Any) -> OnnxClassifier:
        """An export folder (`everylabel export onnx --out DIR`)."""
        if not manifest_module.is_onnx_export(path):
            raise InputError(
                "model", f"{path} is not an everylabel ONNX export (no {manifest_module.MANIFEST})"
            )
        return cls(path, **options)
