"""A packed ONNX export: an export folder small enough to ship inside the package, unpacked on first
use with numpy alone (no torch, no `onnx` package).

An export of a LoRA model on a known backbone holds graphs that share most of their weights' shapes
and, but for the LoRA deltas merged into them, most of their values: the default model's two
encoders (text and label, about 60 MB each), or a GLiClass model and its embedding blend's backbone.
`pack` (needs `onnx`, at build time) stores every weight once:

- a float matrix whose values equal an earlier matrix's first rows plus some new rows (the model's
  word embeddings: the backbone's and three special tokens) is those rows of the earlier one and the
  new rows;
- a float matrix that differs from an earlier matrix of the same shape by a matrix of low rank (a
  merged LoRA delta) is the earlier one plus the two factors of the delta (float16);
- any other large float matrix is int8, symmetric, with one float32 scale per row (tables a Gather
  reads) or per column (the weights of a MatMul, one per output); with `table_bits=4`, a table a
  Gather reads of at least `INT4_MIN_ROWS` rows (the word embeddings) is 4-bit instead, two values
  a byte, one float16 scale per `INT4_GROUP` values of a row;
- everything else is kept exactly.

A packed export that sits inside its model's folder (`parent`, the default model's `onnx/`) stores
nothing the folder already holds: a weight equal to one of the folder's safetensors tensors (or its
transpose; the head) is a reference to it, a merged LoRA delta is a reference to the adapter's
factors (several side by side where the export fused the query, key and value matrices; for a
bi-encoder whose two encoders each have an adapter, the text encoder's matrix is the label
encoder's plus its own module's delta less the label adapter's module of the same name), and a
file equal to one of the folder's (the tokenizer) is a reference to that file. The model's torch
checkpoint and its packed export then share one copy of what training changed.

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
from .safetensors_numpy import read_tensors

PACKED: Final = "everylabel_packed.json"
WEIGHTS: Final = "weights.npz"
DATA: Final = "weights.bin"
FORMAT: Final = 2
READS: Final = (1, 2)  # format 1 is format 2 without references to the model's folder
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
# Gather tables of at least this many rows are 4-bit where packed with `table_bits=4`, one scale per
# group of this many values of a row.
INT4_MIN_ROWS: Final = 4096
INT4_GROUP: Final = 32


# -- unpacking (numpy only) ---------------------------------------------------------------------------


def is_packed(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / PACKED).is_file()


def unpacked(folder: str | os.PathLike[str], name: str = "packed") -> Path:
    """The runnable export of a packed folder, built into the ONNX cache on first use."""
    from ..digests import folder_digest
    from .cache import cache_root, evict, max_bytes

    folder = Path(folder)
    _check_references(folder, folder.parent)  # so the plan's digests name all the export is
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


def _plan(folder: Path) -> dict[str, Any]:
    plan = json.loads((folder / PACKED).read_text())
    if plan.get("format") not in READS:
        raise ConfigError(f"{folder / PACKED}: format {plan.get('format')!r}, this version reads {READS}")
    return cast(dict[str, Any], plan)


def _inside(parent: Path, relative: str, where: Path) -> Path:
    """`relative` (a path the plan names inside the model's folder) under `parent`, if it exists."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise ConfigError(f"{where / PACKED}: {relative!r} is not a path inside the model's folder")
    path = parent.joinpath(*parts)
    if not path.is_file():
        raise ConfigError(f"{where / PACKED}: it reads {relative!r} from {parent}, which has no such file")
    return path


def _check_references(folder: Path, parent: Path) -> None:
    """Every file of the model's folder that the plan reads, with the bytes it was packed against."""
    from ..digests import file_digests

    plan = _plan(folder)
    recorded = plan.get("parent_digests", {})
    unrecorded = sorted(set(_referenced(plan)) - set(recorded))
    if unrecorded:
        raise ConfigError(f"{folder / PACKED}: it reads {unrecorded[0]!r} without recording its digest")
    paths = [_inside(parent, name, folder) for name in recorded]
    for (name, digest), found in zip(recorded.items(), file_digests(paths), strict=True):
        if found != digest:
            raise ConfigError(
                f"{folder / PACKED}: {parent / name} changed since this export was packed from it; "
                "pack the export again (for the default model: recipes/pack_default_onnx.py)"
            )


def _referenced(plan: dict[str, Any]) -> list[str]:
    """The paths inside the model's folder that a plan reads: its referenced tensors' and files'."""
    names = set(plan.get("parent_files", {}).values())
    for entry in plan["tensors"]:
        names.update(part["file"] for part in entry.get("parts", [entry]) if "file" in part)
    return sorted(names)


def unpack(
    folder: str | os.PathLike[str], out: str | os.PathLike[str], parent: str | os.PathLike[str] | None = None
) -> Path:
    """Write the runnable export of packed `folder` into the existing folder `out`; references are
    read from `parent` (default: the packed folder's parent, the model's folder)."""
    folder, out = Path(folder), Path(out)
    parent = Path(parent) if parent is not None else folder.parent
    plan = _plan(folder)
    _check_references(folder, parent)
    sources = _Sources(parent, folder)
    data = np.zeros(plan["size"], dtype=np.uint8)
    built: dict[int, np.ndarray] = {}
    with np.load(folder / WEIGHTS) as stored:
        for index, entry in enumerate(plan["tensors"]):
            array = _rebuild(entry, stored, built, sources)
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
    for name, relative in plan.get("parent_files", {}).items():
        if Path(name).name != name:
            raise ConfigError(f"{folder / PACKED}: parent_files: {name!r} is not a file name")
        shutil.copy2(_inside(parent, relative, folder), out / name)
    return out


class _Sources:
    """The model folder's safetensors files a plan reads, each read once (numpy alone)."""

    def __init__(self, parent: Path, folder: Path) -> None:
        self.parent, self.folder = parent, folder
        self._files: dict[str, dict[str, np.ndarray]] = {}

    def tensor(self, file: str, name: str) -> np.ndarray:
        if file not in self._files:
            self._files[file] = read_tensors(_inside(self.parent, file, self.folder))
        tensors = self._files[file]
        if name not in tensors:
            raise ConfigError(f"{self.folder / PACKED}: {file} has no tensor {name!r}")
        return tensors[name]


def _rebuild(
    entry: dict[str, Any], stored: Any, built: dict[int, np.ndarray], sources: _Sources
) -> np.ndarray:
    key, how = entry["key"], entry["how"]
    if how == "raw":
        return np.asarray(stored[key])
    if how == "int8":
        values = stored[f"{key}.q"].astype(np.float32)
        return values * stored[f"{key}.scale"]  # (rows, 1) or (1, columns) scales broadcast
    if how == "int4":
        packed = stored[f"{key}.q4"]  # (rows, columns / 2) uint8: two values a byte, low nibble first
        values = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.float32)
        values[:, 0::2] = (packed & 0x0F).astype(np.float32) - 8.0
        values[:, 1::2] = (packed >> 4).astype(np.float32) - 8.0
        rows, groups = stored[f"{key}.scale"].shape  # one float16 scale per group of a row
        grouped = values.reshape(rows, groups, -1) * stored[f"{key}.scale"].astype(np.float32)[..., None]
        return grouped.reshape(rows, -1)
    if how == "rows":
        return np.concatenate([built[entry["base"]], stored[f"{key}.rows"]], axis=0)
    if how == "delta":
        left = stored[f"{key}.left"].astype(np.float32)
        right = stored[f"{key}.right"].astype(np.float32)
        return built[entry["base"]] + left @ right
    if how == "ref":
        tensor = sources.tensor(entry["file"], entry["tensor"])
        return tensor.T if entry["transpose"] else tensor
    if how == "lora":  # the base plus, per block of columns, scale x (B @ A)^T of one adapter module
        array = built[entry["base"]].copy()
        for part in entry["parts"]:
            down = sources.tensor(part["file"], part["a"])  # (rank, in)
            up = sources.tensor(part["file"], part["b"])  # (out, rank)
            start, end = part["columns"]
            array[:, start:end] += np.float32(part["scale"]) * (down.T @ up.T)  # (in, out)
        return array
    raise ConfigError(f"packed tensor {key}: unknown encoding {how!r}")


# -- packing (needs onnx, at build time) --------------------------------------------------------------


def pack(
    export: str | os.PathLike[str],
    out: str | os.PathLike[str],
    source_digest: str = "",
    parent: str | os.PathLike[str] | None = None,
    table_bits: int = 8,
) -> dict[str, Any]:
    """Pack the export folder `export` into the new folder `out`; returns the plan written.

    `source_digest` records what the export was built from (the checkpoint's files), so a test can
    tell a packed export that is older than its model. `parent` is the model folder the packed
    export will sit in (as its child): what that folder holds is referenced, not stored again.
    `table_bits`: 8, or 4 for the large tables a Gather reads (the word embeddings)."""
    import onnx
    from onnx import numpy_helper

    from ..digests import file_digest

    export, out = Path(export), Path(out)
    if table_bits not in (4, 8):
        raise ValueError(f"table_bits: 4 or 8, not {table_bits!r}")
    if out.exists():
        raise FileExistsError(f"out: {out} exists; pack writes a new folder")
    parent = Path(parent) if parent is not None else None
    store = _Store(_source_tensors(parent) if parent is not None else {}, table_bits)
    out.mkdir(parents=True)
    for name in GRAPHS:
        if not (export / name).is_file():
            continue
        graph = onnx.load(str(export / name))
        gathered = _tables(graph)
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
    parent_files: dict[str, str] = {}
    for path in sorted(export.iterdir()):
        if not path.is_file() or path.name in GRAPHS or path.name.startswith("."):
            continue
        same = _same_file(path, parent) if parent is not None else None
        if same is not None:
            parent_files[path.name] = same
        else:
            shutil.copy2(path, out / path.name)
    plan: dict[str, Any] = {"format": FORMAT, "size": store.size, "source_digest": source_digest}
    if parent is not None:
        read = _referenced({"parent_files": parent_files, "tensors": store.plan})
        plan["parent_files"] = parent_files
        plan["parent_digests"] = {name: file_digest(parent / name) for name in read}
    plan["tensors"] = store.plan
    np.savez_compressed(out / WEIGHTS, **cast(dict[str, Any], store.arrays))
    (out / PACKED).write_text(json.dumps(plan, indent=1) + "\n")
    _embed_background_again(out, parent)
    return plan


def _tables(graph: Any) -> set[str]:
    """The names of the tables a graph reads rows of: a Gather's data, and the word, position and
    segment tables of onnxruntime's fused EmbedLayerNormalization (inputs 2 to 4)."""
    names: set[str] = set()
    for node in graph.graph.node:
        if node.op_type == "Gather":
            names.add(node.input[0])
        elif node.op_type == "EmbedLayerNormalization":
            names.update(name for name in node.input[2:5] if name)
    return names


def _source_tensors(parent: Path) -> dict[str, dict[str, np.ndarray]]:
    """The float tensors of the model folder's safetensors files, by path inside the folder."""
    files = sorted(p for p in parent.rglob("*.safetensors") if not (p.parent / PACKED).is_file())
    return {p.relative_to(parent).as_posix(): read_tensors(p) for p in files}


def _same_file(path: Path, parent: Path) -> str | None:
    """The name of a top-level file of `parent` with `path`'s bytes, if there is one."""
    content = path.read_bytes()
    for candidate in sorted(parent.iterdir()):
        if (
            candidate.is_file()
            and candidate.stat().st_size == len(content)
            and candidate.read_bytes() == content
        ):
            return candidate.name
    return None


def _embed_background_again(out: Path, parent: Path | None) -> None:
    """An embedding blend's stored background vectors, embedded again by the packed graph (its
    int8 weights move them a little), so a fresh process scores as one that embedded them itself."""
    from .export import write_background_vectors
    from .manifest import OnnxManifest
    from .runtime import BACKGROUND_FILE

    if not (out / BACKGROUND_FILE).is_file():
        return
    with tempfile.TemporaryDirectory() as work:
        runnable = unpack(out, Path(work), parent)
        (runnable / BACKGROUND_FILE).unlink()
        write_background_vectors(runnable, OnnxManifest.load(runnable))
        shutil.copy2(runnable / BACKGROUND_FILE, out / BACKGROUND_FILE)


class _Store:
    """The tensors of all graphs, each stored once, in offset order."""

    def __init__(self, sources: dict[str, dict[str, np.ndarray]], table_bits: int = 8) -> None:
        self.table_bits = table_bits
        self.plan: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0
        self._by_bytes: dict[str, tuple[int, int]] = {}
        self._matrices: list[tuple[int, np.ndarray]] = []  # (plan index, exact values) of bases
        # The model folder's tensors, by the bytes of each and of its transpose.
        self._references: dict[str, dict[str, Any]] = {}
        # Its LoRA modules: (file, A's name, B's name, (B @ A)^T (in, out)), the delta they merge.
        self._lora: list[tuple[str, str, str, np.ndarray]] = []
        for file, tensors in sources.items():
            for name, tensor in tensors.items():
                self._references.setdefault(
                    _fingerprint(tensor), {"how": "ref", "file": file, "tensor": name, "transpose": False}
                )
                if tensor.ndim == 2:
                    turned = np.ascontiguousarray(tensor.T)
                    self._references.setdefault(
                        _fingerprint(turned), {"how": "ref", "file": file, "tensor": name, "transpose": True}
                    )
                partner = name.replace("lora_A", "lora_B")
                if name.endswith(".lora_A.weight") and partner in tensors:
                    self._lora.append((file, name, partner, (tensors[partner] @ tensor).T))
        # Modules of the same name in two adapter files (a bi-encoder's text and label adapters).
        self._lora_pairs = [
            (one, two)
            for i, one in enumerate(self._lora)
            for two in self._lora[i + 1 :]
            if one[0] != two[0] and one[1] == two[1] and one[3].shape == two[3].shape
        ]

    def add(self, array: np.ndarray, rows: bool) -> tuple[int, int]:
        """(offset, length) of `array` in the data file, storing it unless an equal one is stored."""
        fingerprint = _fingerprint(array)
        if fingerprint in self._by_bytes:
            return self._by_bytes[fingerprint]
        index, key = len(self.plan), f"t{len(self.plan)}"
        entry: dict[str, Any] = {"key": key, "dtype": str(array.dtype), "shape": list(array.shape)}
        entry.update(self._references.get(fingerprint) or self._encode(key, array, rows))
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
        delta = self._lora_delta(array) or self._low_rank_delta(key, array)
        if delta is not None:
            return delta
        if (
            rows
            and self.table_bits == 4
            and array.shape[0] >= INT4_MIN_ROWS
            and array.shape[1] % INT4_GROUP == 0
        ):
            return self._int4(key, array)
        axis = 1 if rows else 0  # the max runs along this axis: one scale per row, or per column
        peak = np.abs(array).max(axis=axis, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        self.arrays[f"{key}.q"] = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
        self.arrays[f"{key}.scale"] = scale
        return {"how": "int8"}

    def _int4(self, key: str, array: np.ndarray) -> dict[str, Any]:
        """Symmetric 4-bit values in [-7, 7], one float16 scale per group of `INT4_GROUP` of a row."""
        grouped = array.reshape(array.shape[0], -1, INT4_GROUP)  # (rows, groups, group)
        peak = np.abs(grouped).max(axis=2)
        scale = np.where(peak > 0, peak / 7.0, 1.0).astype(np.float16)
        q = np.clip(np.round(grouped / scale.astype(np.float32)[..., None]), -7, 7).astype(np.int16) + 8
        nibbles = q.reshape(array.shape[0], -1).astype(np.uint8)  # (rows, columns) in [1, 15]
        self.arrays[f"{key}.q4"] = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)
        self.arrays[f"{key}.scale"] = scale
        return {"how": "int4"}

    def _closest_base(self, array: np.ndarray) -> tuple[int, np.ndarray] | None:
        same = [(index, base) for index, base in self._matrices if base.shape == array.shape]
        if not same:
            return None
        return min(same, key=lambda item: float(np.linalg.norm(array - item[1])))

    def _lora_delta(self, array: np.ndarray) -> dict[str, Any] | None:
        """`array` as an earlier matrix plus the merged deltas of the model folder's LoRA modules,
        one (or a pair) per block of columns, if they reproduce it."""
        found = self._closest_base(array) if self._lora else None
        if found is None:
            return None
        index, base = found
        delta = array - base  # (in, out)
        parts: list[dict[str, Any]] = []
        while not parts or parts[-1]["columns"][1] < delta.shape[1]:
            block = self._lora_part(delta, parts[-1]["columns"][1] if parts else 0)
            if block is None:
                return None
            parts += block
        self.plan[index]["base_of_later"] = True
        return {"how": "lora", "base": index, "parts": parts}

    def _lora_part(self, delta: np.ndarray, start: int) -> list[dict[str, Any]] | None:
        """The parts (adapter modules and scales, summed) that give `delta`'s block of columns from
        `start`: one module, or two of the same name from two adapter files."""

        def part(module: tuple[str, str, str, np.ndarray], scale: float) -> dict[str, Any]:
            file, down, up, product = module
            return {
                "file": file,
                "a": down,
                "b": up,
                "scale": scale,
                "columns": [start, start + product.shape[1]],
            }

        def block_of(product: np.ndarray) -> np.ndarray | None:
            width = product.shape[1]
            if product.shape[0] != delta.shape[0] or start + width > delta.shape[1]:
                return None
            block = delta[:, start : start + width]
            return block if np.abs(block).max() > 0 else None

        for module in self._lora:
            product = module[3]
            block = block_of(product)
            norm = float((product * product).sum())
            if block is None or norm == 0:
                continue
            scale = float((block * product).sum()) / norm
            if np.abs(block - scale * product).max() <= DELTA_TOLERANCE * np.abs(block).max():
                return [part(module, scale)]
        for one, two in self._lora_pairs:
            block = block_of(one[3])
            if block is None:
                continue
            basis = np.stack([one[3].ravel(), two[3].ravel()], axis=1).astype(np.float64)  # (values, 2)
            scales, *_ = np.linalg.lstsq(basis, block.ravel().astype(np.float64), rcond=None)
            fitted = (basis @ scales).reshape(block.shape)
            if np.abs(block - fitted).max() <= DELTA_TOLERANCE * np.abs(block).max():
                return [part(one, float(scales[0])), part(two, float(scales[1]))]
        return None

    def _low_rank_delta(self, key: str, array: np.ndarray) -> dict[str, Any] | None:
        found = self._closest_base(array)
        if found is None:
            return None
        index, base = found
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


def _fingerprint(array: np.ndarray) -> str:
    return (
        hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        + str(array.dtype)
        + str(array.shape)
    )
