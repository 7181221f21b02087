"""Which classifier a command runs: torch or onnxruntime, as `--backend` picks it (torch-free here).

`open_classifier` is shared by `classify`, `serve` and batch mode: "auto" runs the default model on
onnxruntime when it is installed and the run is on a CPU (exported once into the cache), any other
checkpoint on torch; the ONNX path imports neither torch nor transformers once the export exists.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError


def resolve_backend(model: str, backend: str = "auto", device: str = "auto", dtype: str = "auto") -> str:
    """ "torch" or "onnx", as the command line picks it: "auto" runs the default model on onnxruntime
    when it is installed and the run is on a CPU, any other checkpoint on torch."""
    from .onnx.backend import pick_backend, prefer_onnx

    if backend == "auto" and prefer_onnx(model, device, dtype):
        backend = "onnx"
    return pick_backend(model, backend, device)


def open_classifier(
    model: str,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 32,
    max_length: int | None = None,
    threads: int | None = None,
) -> Any:
    """A torch `Classifier` or an `OnnxClassifier` (see `resolve_backend`); the ONNX path imports no
    torch. `threads`: onnxruntime's intra-op threads (torch's are set per call by `ClassifyBatch`)."""
    if resolve_backend(model, backend, device, dtype) == "onnx":
        from .onnx.backend import onnx_folder
        from .onnx.runtime import OnnxClassifier

        if dtype not in ("auto", "fp32", "float32"):
            raise InputError("dtype", f"the ONNX backend runs in the export's precision, got {dtype!r}")
        return OnnxClassifier(
            onnx_folder(model), max_length=max_length, batch_size=batch_size, threads=threads
        )
    from transformers.utils import logging

    from .inference.classifier import Classifier

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return Classifier.from_pretrained(
        model, device=device, dtype=dtype, backend="torch", batch_size=batch_size, max_length=max_length
    )
