"""Which backend runs a model: torch (a checkpoint) or onnxruntime (an export), torch-free to decide."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Final

from ..errors import InputError, MissingDependencyError
from ..paths import PathLike, resolve_path
from .manifest import is_onnx_export

BACKENDS: Final = ("auto", "torch", "onnx")


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def pick_backend(model: PathLike, backend: str, device: str = "auto") -> str:
    """ "torch" or "onnx" for `model`: an export always runs on onnxruntime, a checkpoint on torch
    unless `backend="onnx"` (then it is exported once into the cache; see `cache.py`)."""
    if backend not in BACKENDS:
        raise InputError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_onnx_export(resolve_path(model)):
        if backend == "torch":
            raise InputError("backend", f"{model} is an ONNX export; the torch backend needs a checkpoint")
        choice = "onnx"
    else:
        choice = "onnx" if backend == "onnx" else "torch"
    if choice == "onnx":
        if str(device) not in ("auto", "cpu"):
            raise InputError("device", f"the ONNX backend runs on the CPU, got {device!r}")
        if not onnx_available():
            raise MissingDependencyError(
                "backend onnx: needs onnxruntime and tokenizers (pip install 'everylabel[onnx]')"
            )
    return choice


def prefer_onnx(model: PathLike, device: str, dtype: str) -> bool:
    """The command line's `--backend auto` for the default model: the fast path where it applies
    (onnxruntime installed, a CPU run in fp32, no NVIDIA GPU on the machine for device auto)."""
    if str(model) != "default" or not onnx_available() or str(dtype) not in ("auto", "fp32", "float32"):
        return False
    return str(device) == "cpu" or (str(device) == "auto" and shutil.which("nvidia-smi") is None)


def onnx_folder(model: PathLike) -> Path:
    """The export to run: `model` itself if it is one, else its cached export (built on first use)."""
    folder = Path(resolve_path(model))
    if is_onnx_export(folder):
        return folder
    from .cache import cached_export

    return cached_export(model)
