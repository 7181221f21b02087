"""Exports built on first use, kept in a cache folder (the default model's ONNX form).

The folder is `$EVERYLABEL_CACHE/onnx` (default `~/.cache/everylabel/onnx`, under
`$XDG_CACHE_HOME` when set), one sub-folder per source model, everylabel version and int8
choice, named by a hash of the source files' names, sizes and modification times. Two processes
that start at once both build, and the first to finish wins: each writes a private folder and
renames it into place (atomic); the other's copy is dropped. Finding a finished export needs no
torch; building one does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import __version__
from ..paths import PathLike, resolve_path
from .manifest import FORMAT, is_onnx_export


def cache_root() -> Path:
    if os.environ.get("EVERYLABEL_CACHE"):
        return Path(os.environ["EVERYLABEL_CACHE"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "everylabel" / "onnx"


def cache_folder(model: PathLike, int8: bool = False) -> Path:
    """Where the export of `model` lives in the cache (whether built or not)."""
    source = Path(resolve_path(model))
    if not source.is_dir():
        raise FileNotFoundError(f"model {model}: the ONNX cache builds exports of local folders only")
    digest = hashlib.sha256(f"{__version__}|{FORMAT}|{int8}".encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"|{path.relative_to(source)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    name = "default" if str(model) == "default" else source.name
    return cache_root() / f"{name}-{'int8-' if int8 else ''}{digest.hexdigest()[:16]}"


def cached_export(model: PathLike, int8: bool = False) -> Path:
    """The cached export of `model`, built now if missing (needs torch for the build)."""
    folder = cache_folder(model, int8)
    if not is_onnx_export(folder):
        from .export import export_onnx

        export_onnx(model, folder, int8=int8, replace=False)
    return folder
