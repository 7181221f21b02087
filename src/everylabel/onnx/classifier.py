"""`OnnxClassifier`: a `Classifier` built on an ONNX export, torch-free."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError
from ..inference.calibration import Calibration, choose_calibration
from ..inference.classifier import Classifier
from ..inference.engine import ClassifierEngine
from ..inference.vector_cache import LABEL_VECTOR_CACHE_SIZE
from . import manifest as manifest_module
from .runtime import OnnxBackend


class OnnxClassifier(Classifier):
    """A `Classifier` on an ONNX export (`everylabel export onnx`), torch-free.

    Options as `Classifier`'s where they apply: the engine's (`max_length`, `batch_size`,
    `max_batch_tokens`, `min_text_tokens`, `descriptions`, `embedding_blend`), `label_cache_size`,
    `calibration` (True: the one stored in the export, copied from the checkpoint; False: none);
    `threads` sets onnxruntime's intra-op threads (default: the cores the process may use). The
    pooling mode is the one the export fixed in its graphs (`mask_padding` in the manifest).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        threads: int | None = None,
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        calibration: bool | Calibration | None = True,
        **options: Any,
    ) -> None:
        backend = OnnxBackend(folder, threads=threads, label_cache_size=label_cache_size)
        calibrated = choose_calibration(calibration, backend.folder)
        ClassifierEngine.__init__(self, backend, calibration=calibrated, **options)
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
