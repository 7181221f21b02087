"""Content digests of models: what an ONNX export's cache key and a batch run's fingerprint rest on.

A model is more than its folder: an adapter folder (the default model) applies to a base backbone
stored elsewhere (another package), a bi-encoder adapter also to a label backbone, and a model
with an embedding blend reads a second backbone. `model_sources` names every folder whose files
decide the model's outputs; `model_digest` hashes their contents (names and bytes, not
modification times, so a fresh clone or a reinstall of the same files keeps its digest). File
digests are remembered by (size, modification time, inode) in `digests.json` under the cache
folder, so the bytes are read once per file version, not at every start. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .paths import PathLike, cache_home, resolve_path

ADAPTER_MARKER = "everylabel_adapter.json"  # as `adapters.py` writes it
_MEMO_FILE = "digests.json"
_MEMO_LOCK = threading.Lock()


def model_sources(model: PathLike) -> list[Path]:
    """The local folders whose files decide `model`'s outputs: its own, an adapter's base and label
    backbones, an embedding blend's backbone. A name that is no local folder (a hub id) has none."""
    found: list[Path] = []
    pending = [str(model)]
    while pending:
        name = pending.pop(0)
        folder = Path(resolve_path(name))
        if not folder.is_dir() or folder.resolve() in found:
            continue
        found.append(folder.resolve())
        pending += _referenced(folder)
    return found


def _referenced(folder: Path) -> list[str]:
    """The other models a model folder names: an adapter's bases, an embedding blend's backbone."""
    names: list[str] = []
    marker = folder / ADAPTER_MARKER
    if marker.is_file():
        meta = _json(marker)
        names += [str(meta[key]) for key in ("base", "label_base") if meta.get(key)]
    config = folder / "config.json"
    if config.is_file():
        blend = _json(config).get("embedding_blend")
        if isinstance(blend, dict) and blend.get("model"):
            names.append(str(blend["model"]))
    return names


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_digest(model: PathLike, extra: Iterable[str] = ()) -> str:
    """A sha256 over the contents of every file of `model_sources(model)` (a hub id: its name),
    and `extra` strings (settings that also decide the output)."""
    digest = hashlib.sha256()
    sources = model_sources(model)
    if not sources:
        digest.update(f"name|{model}".encode())
    for folder in sources:
        digest.update(folder_digest(folder).encode())
    for item in extra:
        digest.update(f"|{item}".encode())
    return digest.hexdigest()


def folder_digest(folder: Path, exclude: Iterable[str] = ()) -> str:
    """A sha256 over the relative names and contents of a folder's files (caches like
    `__pycache__`, dot files, and the top-level files or subfolders named in `exclude` left out)."""
    skipped = {"__pycache__"}
    top = set(exclude)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not skipped & set(p.relative_to(folder).parts)
        and p.relative_to(folder).parts[0] not in top
    )
    digest = hashlib.sha256()
    for path, known in zip(files, file_digests(files), strict=True):
        digest.update(f"{path.relative_to(folder).as_posix()}|{known}|".encode())
    return digest.hexdigest()


def file_digests(files: list[Path]) -> list[str]:
    """Each file's content digest, read again only when its size, time or inode changed."""
    memo = _load_memo()
    changed = False
    out = []
    for path in files:
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        known = memo.get(key)
        if known is None or known[:3] != stamp:
            known = [*stamp, file_digest(path)]
            memo[key] = known
            changed = True
        out.append(str(known[3]))
    if changed:
        _save_memo(memo)
    return out


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _memo_path() -> Path:
    return cache_home() / _MEMO_FILE


def _load_memo() -> dict[str, list[Any]]:
    with _MEMO_LOCK:
        data = _json(_memo_path())
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 4}


def _save_memo(memo: dict[str, list[Any]]) -> None:
    """Written whole and renamed into place; a concurrent writer may win, which only costs a re-read."""
    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with _MEMO_LOCK:
            temporary.write_text(json.dumps(memo), encoding="utf-8")  # the user's umask applies
            os.replace(temporary, path)
    except OSError:  # a read-only cache: digests are recomputed next time, nothing else is lost
        pass
