"""The export an ONNX run reads: the model itself if it is one, else its cached export."""

from __future__ import annotations

from pathlib import Path

from ..paths import PathLike, resolve_path
from .manifest import is_onnx_export


def onnx_folder(model: PathLike) -> Path:
    """The export to run: `model` itself if it is one, else its cached export (built on first use)."""
    folder = Path(resolve_path(model))
    if is_onnx_export(folder):
        return folder
    from .cache import cached_export

    return cached_export(model)
