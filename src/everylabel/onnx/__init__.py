"""ONNX export and torch-free inference.

`everylabel export onnx` (`export.py`, needs torch) writes a folder that `OnnxClassifier`
(`runtime.py`) runs with onnxruntime, `tokenizers` and numpy alone: neither torch nor
transformers is imported on that path.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["OnnxBackend", "OnnxClassifier", "export_onnx", "is_onnx_export"]

_EXPORTS = {
    "OnnxClassifier": ".classifier",
    "is_onnx_export": ".manifest",
    "OnnxBackend": ".runtime",
    "export_onnx": ".export",
}

if TYPE_CHECKING:
    from .classifier import OnnxClassifier
    from .export import export_onnx
    from .manifest import is_onnx_export
    from .runtime import OnnxBackend


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'everylabel.onnx' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
