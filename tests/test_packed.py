"""The packed ONNX export (`onnx/packed.py`): what each weight is stored as, the round trip, and the
default model's shipped export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from everylabel.digests import folder_digest  # noqa: E402
from everylabel.onnx.backend import SHIPPED, onnx_folder  # noqa: E402
from everylabel.onnx.packed import DATA, PACKED, pack, unpack, unpacked  # noqa: E402
from everylabel.paths import resolve_path  # noqa: E402

RNG = np.random.default_rng(0)
VOCAB, WIDTH, HIDDEN = 600, 32, 640


def _graph(path: Path, table: np.ndarray, first: np.ndarray, second: np.ndarray, bias: np.ndarray) -> None:
    """ids (n,) -> Gather(table) (n, WIDTH) -> MatMul(first) + bias -> MatMul(second) (n, WIDTH)."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["x"]),
        helper.make_node("MatMul", ["x", "first"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["hb"]),
        helper.make_node("MatMul", ["hb", "second"], ["y"]),
    ]
    weights = {"table": table, "first": first, "second": second, "bias": bias}
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WIDTH])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run(path: Path, ids: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """Two graphs as an export with an embedding blend has them: the backbone's, and the model's
    (the same table with three more rows, a low-rank delta on one matrix, one matrix of its own)."""
    folder = tmp_path / "export"
    folder.mkdir()
    table = RNG.normal(size=(VOCAB, WIDTH))
    first = RNG.normal(size=(WIDTH, HIDDEN)) / 6
    second = RNG.normal(size=(HIDDEN, WIDTH)) / 25
    bias = RNG.normal(size=HIDDEN)
    _graph(folder / "embedding.onnx", table, first, second, bias)
    delta = RNG.normal(size=(WIDTH, 2)) @ RNG.normal(size=(2, HIDDEN)) / 50  # rank 2, as LoRA merges
    longer = np.concatenate([table, RNG.normal(size=(3, WIDTH))])
    _graph(folder / "model.onnx", longer, first + delta, RNG.normal(size=(HIDDEN, WIDTH)) / 25, bias)
    (folder / "everylabel_onnx.json").write_text("{}")
    return folder


def test_each_weight_is_stored_once_in_its_compact_form(export: Path, tmp_path: Path) -> None:
    plan = pack(export, tmp_path / "packed", source_digest="abc")
    kinds = [entry["how"] for entry in plan["tensors"]]
    # the backbone's table, first, second (int8) and bias (exact); the model's table (rows),
    # first (delta of rank 2), own second (int8); the bias is the same bytes: stored once
    assert kinds == ["int8", "int8", "int8", "raw", "rows", "delta", "int8"]
    assert plan["tensors"][5]["rank"] == 2 and plan["source_digest"] == "abc"
    graph = onnx.load(str(tmp_path / "packed" / "model.onnx"), load_external_data=False)
    offsets = {t.name: {e.key: e.value for e in t.external_data}["offset"] for t in graph.graph.initializer}
    embedding = onnx.load(str(tmp_path / "packed" / "embedding.onnx"), load_external_data=False)
    shared = {
        t.name: {e.key: e.value for e in t.external_data}["offset"] for t in embedding.graph.initializer
    }
    assert offsets["bias"] == shared["bias"] and offsets["first"] != shared["first"]
    packed_bytes = sum(p.stat().st_size for p in (tmp_path / "packed").iterdir())
    original = sum(p.stat().st_size for p in export.iterdir())
    assert packed_bytes < original / 2.5


def test_the_unpacked_graphs_give_the_originals_outputs_within_int8(export: Path, tmp_path: Path) -> None:
    pack(export, tmp_path / "packed")
    out = tmp_path / "out"
    out.mkdir()
    unpack(tmp_path / "packed", out)
    assert (out / DATA).is_file() and not (out / PACKED).exists()
    assert (out / "everylabel_onnx.json").read_text() == "{}"
    ids = np.array([0, 5, VOCAB - 1, VOCAB + 2], dtype=np.int64)
    for name in ("embedding.onnx", "model.onnx"):
        feeds = ids if name == "model.onnx" else ids[:3]
        want, got = _run(export / name, feeds), _run(out / name, feeds)
        error = np.abs(got - want).max() / np.abs(want).max()
        assert 0 < error < 0.02, (name, error)  # int8 weights: close, and not the same bytes


def test_unpacked_builds_once_into_the_cache(export: Path, tmp_path: Path) -> None:
    pack(export, tmp_path / "packed")
    first = unpacked(tmp_path / "packed", "toy")
    stamp = (first / DATA).stat().st_mtime_ns
    again = unpacked(tmp_path / "packed", "toy")
    assert again == first and (again / DATA).stat().st_mtime_ns == stamp
    assert first.name.startswith("toy-packed-")


def test_pack_never_writes_into_an_existing_folder(export: Path, tmp_path: Path) -> None:
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists"):
        pack(export, keep)
    assert (keep / "notes.txt").read_text() == "mine"


def test_the_shipped_export_is_built_from_the_shipped_model() -> None:
    """`make default-model` packs the export after the model; a model changed without it fails here."""
    model = Path(resolve_path("default"))
    plan = json.loads((model / SHIPPED / PACKED).read_text())
    assert plan["source_digest"] == folder_digest(model, exclude=(SHIPPED,))


def test_the_default_model_runs_from_its_shipped_export() -> None:
    folder = onnx_folder("default")
    assert folder.name.startswith("default-packed-") and (folder / DATA).is_file()
