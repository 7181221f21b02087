"""The export an ONNX run reads: the model itself if it is one, the packed export it ships with
(the default model's, `packed.py`), else its cached export."""

from __future__ import annotations

from pathlib import Path

from ..paths import DEFAULT_MODEL_NAME, PathLike, resolve_path
from .manifest import is_onnx_export
from .packed import is_packed, unpacked

SHIPPED: str = "onnx"  # a model folder's packed export, built with the model (`make default-model`)


def onnx_folder(model: PathLike) -> Path:
    """The export to run: `model` itself if it is one; the packed export shipped in its folder,
    unpacked once into the cache (numpy only); else its cached export (built on first use, needs
    torch)."""
    folder = Path(resolve_path(model))
    if is_onnx_export(folder):
        return folder
    if is_packed(folder / SHIPPED):
        name = DEFAULT_MODEL_NAME if str(model) == DEFAULT_MODEL_NAME else folder.name
        return unpacked(folder / SHIPPED, name)
    from .cache import cached_export

    return cached_export(model)
