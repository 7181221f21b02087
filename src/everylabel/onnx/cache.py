"""Exports built on first use (the default model's ONNX form), kept in a bounded cache folder.

The folder is `cache_home()/onnx` (`$EVERYLABEL_CACHE`, else `~/.cache/everylabel`), one entry
per source model and int8 choice, named by a key over everything that decides the graphs: the
contents of every folder the model reads (its own, an adapter's base backbone, an embedding blend's
backbone: `digests.model_sources`), the export code's own source, the package version and the
export format. A reinstall or a fresh clone of the same files finds the same entry; a change to any
of them builds a new one. Each use stamps the entry, and when a build takes the cache past
`EVERYLABEL_CACHE_MAX_BYTES` (default 2 GiB) the least recently used entries go. Two processes that
start at once both build, and the first to finish wins: each writes a private folder and renames it
into place (atomic).
Finding a finished export needs no torch; building one does. `everylabel cache list|clear`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .. import __version__
from ..digests import model_digest
from ..paths import PathLike, cache_home, resolve_path
from .manifest import FORMAT, MANIFEST, is_onnx_export

DEFAULT_MAX_BYTES: Final = 2 * 2**30
LAST_USED: Final = ".last-used"
# The code whose change changes the graphs: the export itself and the model it traces.
_CODE: Final = (
    "onnx/export.py",
    "onnx/fusion.py",
    "onnx/quantize.py",
    "onnx/manifest.py",
    "config.py",
    "modeling",
)
# Private build folders older than this are a killed build's leftovers.
_STALE_BUILD_SECONDS: Final = 3600


@dataclass(frozen=True)
class Entry:
    """One cached export."""

    path: Path
    bytes: int
    last_used: float  # seconds since the epoch
    source: str  # the model it was exported from, as the manifest records it
    int8: bool


def cache_root() -> Path:
    return cache_home() / "onnx"


def max_bytes() -> int:
    """The cache's bound: `$EVERYLABEL_CACHE_MAX_BYTES`, else 2 GiB."""
    raw = os.environ.get("EVERYLABEL_CACHE_MAX_BYTES")
    return int(raw) if raw and raw.isdigit() else DEFAULT_MAX_BYTES


def export_code_digest() -> str:
    """A sha256 over the source of the code that decides an export's graphs."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _CODE:
        target = package / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(f"{path.relative_to(package).as_posix()}|".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_folder(model: PathLike, int8: bool = False) -> Path:
    """Where the export of `model` lives in the cache (whether built or not)."""
    source = Path(resolve_path(model))
    if not source.is_dir():
        raise FileNotFoundError(f"model {model}: the ONNX cache builds exports of local folders only")
    key = model_digest(model, [__version__, str(FORMAT), f"int8={int8}", export_code_digest()])
    name = "default" if str(model) == "default" else source.name
    return cache_root() / f"{name}-{'int8-' if int8 else ''}{key[:16]}"


def cached_export(model: PathLike, int8: bool = False) -> Path:
    """The cached export of `model`, built now if missing (needs torch for the build; the cache is
    then trimmed to its bound, never this entry), and stamped as used."""
    folder = cache_folder(model, int8)
    if not is_onnx_export(folder):
        from .export import export_onnx

        if sys.stderr.isatty():  # long work, once: say so on a terminal
            print(f"everylabel: exporting {model} to ONNX once, into {folder} ...", file=sys.stderr)
        export_onnx(model, folder, int8=int8, replace=False)
        evict(max_bytes(), keep=folder)  # only a build adds to the cache
    _stamp(folder)
    return folder


def entries() -> list[Entry]:
    """The finished exports in the cache, least recently used first."""
    root = cache_root()
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if not folder.is_dir() or not (folder / MANIFEST).is_file():
            continue
        stamp = folder / LAST_USED
        used = (stamp if stamp.exists() else folder / MANIFEST).stat().st_mtime
        try:
            from .manifest import OnnxManifest

            manifest = OnnxManifest.load(folder)
            source, int8 = manifest.source, manifest.int8
        except Exception:  # an export of another format version: listed, and evicted like any other
            source, int8 = "?", False
        found.append(Entry(folder, _size(folder), used, source, int8))
    return sorted(found, key=lambda entry: entry.last_used)


def evict(limit: int, keep: Path | None = None) -> list[Entry]:
    """Remove the least recently used exports until the cache holds at most `limit` bytes (`keep`
    stays whatever its size), and builds left behind by killed processes; returns what went."""
    _remove_stale_builds()
    listed = entries()
    total = sum(entry.bytes for entry in listed)
    gone = []
    for entry in listed:
        if total <= limit:
            break
        if keep is not None and entry.path.resolve() == keep.resolve():
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        total -= entry.bytes
        gone.append(entry)
    return gone


def clear() -> list[Entry]:
    """Remove every cached export; returns what went."""
    return evict(0)


def _stamp(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves its exports
        (folder / LAST_USED).touch()


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _remove_stale_builds() -> None:
    root = cache_root()
    if not root.is_dir():
        return
    now = time.time()
    for folder in root.glob(".export-*"):
        if folder.is_dir() and now - folder.stat().st_mtime > _STALE_BUILD_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
