"""A packed ONNX export: an export folder small enough to ship inside the package, unpacked on first
use with numpy alone (no torch, no `onnx` package).

The default model's export is two graphs of about 90 MB each (its GLiClass model and the embedding
blend's backbone) that share most of their weights' shapes and, but for the LoRA deltas merged into
the first, most of their values. `pack` (needs `onnx`, at build time) stores every weight once:

- a float matrix whose values equal an earlier matrix's first rows plus some new rows (the model's
  word embeddings: the backbone's and three special tokens) is those rows of the earlier one and the
  new rows;
- a float matrix that differs from an earlier matrix of the same shape by a matrix of low rank (a
  merged LoRA delta) is the earlier one plus the two factors of the delta (float16);
- any other large float matrix is int8, symmetric, with one float32 scale per row (tables a Gather
  reads) or per column (the weights of a MatMul, one per output);
- everything else is kept exactly.

The graphs are kept with every large initializer pointing into one external data file
(`weights.bin`) at its own offset, so unpacking only rebuilds that file's bytes: the same offsets
serve both graphs where they share a tensor. `unpacked(folder)` builds the runnable export once
into the ONNX cache (`cache_home()/onnx`, named by a digest of the packed files) and returns it;
two processes may build at once, the first rename wins. Weight-only int8 changes the scores a
little (docs/benchmarks.md measures how little); the arithmetic stays fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final, cast

import numpy as np

from ..errors import ConfigError
from .manifest import MANIFEST

PACKED: Final = "everylabel_packed.json"
WEIGHTS: Final = "weights.npz"
DATA: Final = "weights.bin"
FORMAT: Final = 1
# The graphs of an export, bases first: a later graph's weights are stored against earlier ones.
GRAPHS: Final = ("embedding.onnx", "label_encoder.onnx", "model.onnx")
# Initializers below this many bytes stay inside their graph; float matrices of at least
# `QUANTIZE_MIN` values are stored compactly.
EXTERNAL_MIN_BYTES: Final = 1024
QUANTIZE_MIN: Final = 16384
ALIGN: Final = 64
# A delta counts as low-rank when this rank reproduces it within `DELTA_TOLERANCE` (relative, the
# largest value) and the factors are smaller than the matrix.
MAX_DELTA_RANK: Final = 64
DELTA_TOLERANCE: Final = 1e-2


# -- unpacking (numpy only) ---------------------------------------------------------------------------


def is_packed(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / PACKED).is_file()


def unpacked(folder: str | os.PathLike[str], name: str = "packed") -> Path:
    """The runnable export of a packed folder, built into the ONNX cache on first use."""
    from ..digests import folder_digest
    from .cache import cache_root, evict, max_bytes

    folder = Path(folder)
    target = cache_root() / f"{name}-packed-{folder_digest(folder)[:16]}"
    if (target / MANIFEST).is_file():
        with contextlib.suppress(OSError):
            (target / ".last-used").touch()
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        unpack(folder, build)
        try:
            build.rename(target)
        except OSError:  # another process finished first: use its copy
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    evict(max_bytes(), keep=target)
    return target


def unpack(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the runnable export of packed `folder` into the existing folder `out`."""
    folder, out = Path(folder), Path(out)
    plan = json.loads((folder / PACKED).read_text())
    if plan.get("format") != FORMAT:
        raise ConfigError(f"{folder / PACKED}: format {plan.get('format')!r}, this version reads {FORMAT}")
    data = np.zeros(plan["size"], dtype=np.uint8)
    built: dict[int, np.ndarray] = {}
    with np.load(folder / WEIGHTS) as stored:
        for index, entry in enumerate(plan["tensors"]):
            array = _rebuild(entry, stored, built)
            if entry.get("base_of_later"):
                built[index] = array
            raw = np.ascontiguousarray(array.astype(entry["dtype"], copy=False)).view(np.uint8).ravel()
            if raw.size != entry["length"]:
                raise ConfigError(
                    f"{folder / PACKED}: tensor {index} rebuilt to {raw.size} bytes, not {entry['length']}"
                )
            data[entry["offset"] : entry["offset"] + raw.size] = raw
    data.tofile(out / DATA)
    for path in folder.iterdir():
        if path.is_file() and path.name not in (PACKED, WEIGHTS) and not path.name.startswith("."):
            shutil.copy2(path, out / path.name)
    return out


def _rebuild(entry: dict[str, Any], stored: Any, built: dict[int, np.ndarray]) -> np.ndarray:
    key, how = entry["key"], entry["how"]
    if how == "raw":
        return np.asarray(stored[key])
    if how == "int8":
        values = stored[f"{key}.q"].astype(np.float32)
        return values * stored[f"{key}.scale"]  # (rows, 1) or (1, columns) scales broadcast
    if how == "rows":
        return np.concatenate([built[entry["base"]], stored[f"{key}.rows"]], axis=0)
    if how == "delta":
        left = stored[f"{key}.left"].astype(np.float32)
        right = stored[f"{key}.right"].astype(np.float32)
        return built[entry["base"]] + left @ right
    raise ConfigError(f"packed tensor {key}: unknown encoding {how!r}")


# -- packing (needs onnx, at build time) --------------------------------------------------------------


def pack(
    export: str | os.PathLike[str], out: str | os.PathLike[str], source_digest: str = ""
) -> dict[str, Any]:
    """Pack the export folder `export` into the new folder `out`; returns the plan written.

    `source_digest` records what the export was built from (the checkpoint's files), so a test can
    tell a packed export that is older than its model."""
    import onnx
    from onnx import numpy_helper

    export, out = Path(export), Path(out)
    if out.exists():
        raise FileExistsError(f"out: {out} exists; pack writes a new folder")
    out.mkdir(parents=True)
    store = _Store()
    for name in GRAPHS:
        if not (export / name).is_file():
            continue
        graph = onnx.load(str(export / name))
        gathered = {node.input[0] for node in graph.graph.node if node.op_type == "Gather"}
        for tensor in graph.graph.initializer:
            array = numpy_helper.to_array(tensor)
            if array.nbytes < EXTERNAL_MIN_BYTES:
                continue
            offset, length = store.add(array, rows=tensor.name in gathered)
            for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(field)
            del tensor.external_data[:]
            for entry_key, value in (("location", DATA), ("offset", offset), ("length", length)):
                entry = tensor.external_data.add()
                entry.key, entry.value = entry_key, str(value)
            tensor.data_location = onnx.TensorProto.EXTERNAL
        onnx.save(graph, str(out / name))
    for path in export.iterdir():
        if path.is_file() and path.name not in GRAPHS and not path.name.startswith("."):
            shutil.copy2(path, out / path.name)
    plan = {"format": FORMAT, "size": store.size, "source_digest": source_digest, "tensors": store.plan}
    np.savez_compressed(out / WEIGHTS, **cast(dict[str, Any], store.arrays))
    (out / PACKED).write_text(json.dumps(plan, indent=1) + "\n")
    _embed_background_again(out)
    return plan


def _embed_background_again(out: Path) -> None:
    """An embedding blend's stored background vectors, embedded again by the packed graph (its
    int8 weights move them a little), so a fresh process scores as one that embedded them itself."""
    from .export import write_background_vectors
    from .manifest import OnnxManifest
    from .runtime import BACKGROUND_FILE

    if not (out / BACKGROUND_FILE).is_file():
        return
    with tempfile.TemporaryDirectory() as work:
        runnable = unpack(out, Path(work))
        (runnable / BACKGROUND_FILE).unlink()
        write_background_vectors(runnable, OnnxManifest.load(runnable))
        shutil.copy2(runnable / BACKGROUND_FILE, out / BACKGROUND_FILE)


class _Store:
    """The tensors of all graphs, each stored once, in offset order."""

    def __init__(self) -> None:
        self.plan: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0
        self._by_bytes: dict[str, tuple[int, int]] = {}
        self._matrices: list[tuple[int, np.ndarray]] = []  # (plan index, exact values) of bases

    def add(self, array: np.ndarray, rows: bool) -> tuple[int, int]:
        """(offset, length) of `array` in the data file, storing it unless an equal one is stored."""
        fingerprint = hashlib.sha256(array.tobytes()).hexdigest() + str(array.dtype) + str(array.shape)
        if fingerprint in self._by_bytes:
            return self._by_bytes[fingerprint]
        index, key = len(self.plan), f"t{len(self.plan)}"
        entry: dict[str, Any] = {"key": key, "dtype": str(array.dtype), "shape": list(array.shape)}
        entry.update(self._encode(key, array, rows))
        entry["offset"] = self.size
        entry["length"] = array.nbytes
        self.plan.append(entry)
        self.size += -(-array.nbytes // ALIGN) * ALIGN
        if array.dtype == np.float32 and array.ndim == 2 and array.size >= QUANTIZE_MIN:
            self._matrices.append((index, array))
        self._by_bytes[fingerprint] = (entry["offset"], entry["length"])
        return entry["offset"], entry["length"]

    def _encode(self, key: str, array: np.ndarray, rows: bool) -> dict[str, Any]:
        if array.dtype != np.float32 or array.ndim != 2 or array.size < QUANTIZE_MIN:
            self.arrays[key] = array
            return {"how": "raw"}
        for index, base in self._matrices:
            extra = array.shape[0] - base.shape[0]
            if array.shape[1] == base.shape[1] and extra > 0 and np.array_equal(array[: base.shape[0]], base):
                self.plan[index]["base_of_later"] = True
                self.arrays[f"{key}.rows"] = array[base.shape[0] :]
                return {"how": "rows", "base": index}
        delta = self._low_rank_delta(key, array)
        if delta is not None:
            return delta
        axis = 1 if rows else 0  # the max runs along this axis: one scale per row, or per column
        peak = np.abs(array).max(axis=axis, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        self.arrays[f"{key}.q"] = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
        self.arrays[f"{key}.scale"] = scale
        return {"how": "int8"}

    def _low_rank_delta(self, key: str, array: np.ndarray) -> dict[str, Any] | None:
        same = [(index, base) for index, base in self._matrices if base.shape == array.shape]
        if not same:
            return None
        index, base = min(same, key=lambda item: float(np.linalg.norm(array - item[1])))
        delta = (array - base).astype(np.float64)
        peak = np.abs(delta).max()
        if peak == 0:
            return None  # equal values are caught before (same bytes)
        u, s, vt = np.linalg.svd(delta, full_matrices=False)
        first = max(1, int((s > s[0] * 1e-4).sum()) - 2)  # the numerical rank, nearly
        for rank in range(first, min(MAX_DELTA_RANK, len(s)) + 1):
            left = (u[:, :rank] * s[:rank]).astype(np.float16)
            right = vt[:rank].astype(np.float16)
            error = np.abs(delta - left.astype(np.float64) @ right.astype(np.float64)).max()
            if error <= DELTA_TOLERANCE * peak:
                if rank * sum(array.shape) * 2 >= array.size:  # the factors would not be smaller
                    return None
                self.plan[index]["base_of_later"] = True
                self.arrays[f"{key}.left"] = left
                self.arrays[f"{key}.right"] = right
                return {"how": "delta", "base": index, "rank": rank}
        return None
