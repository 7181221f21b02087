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


@pytest.fixture
def model_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A model folder (adapter and head safetensors, float16 as the default model stores them, and a
    tokenizer) and an export of it: the model graph's first matrix is the backbone's plus two LoRA
    modules' merged deltas side by side (as a fused query-key-value matrix is), its second matrix is
    the head's (transposed), and the export holds the folder's tokenizer file."""
    from safetensors.numpy import save_file

    parent, export = tmp_path / "model", tmp_path / "export"
    (parent / "adapter").mkdir(parents=True)
    export.mkdir()
    table = RNG.normal(size=(VOCAB, WIDTH))
    first = RNG.normal(size=(WIDTH, HIDDEN)) / 6
    bias = RNG.normal(size=HIDDEN)
    half = HIDDEN // 2
    adapter = {
        f"m.{name}.lora_A.weight": (RNG.normal(size=(4, WIDTH)) / 10).astype(np.float16)
        for name in ("q", "k")
    } | {
        f"m.{name}.lora_B.weight": (RNG.normal(size=(half, 4)) / 10).astype(np.float16) for name in ("q", "k")
    }
    save_file(adapter, str(parent / "adapter" / "adapter_model.safetensors"))
    head = (RNG.normal(size=(WIDTH, HIDDEN)) / 25).astype(np.float16)
    save_file({"second.weight": head}, str(parent / "head.safetensors"))
    merged = [
        2.0 * (adapter[f"m.{n}.lora_B.weight"].astype(np.float32) @ adapter[f"m.{n}.lora_A.weight"]).T
        for n in ("q", "k")
    ]  # (WIDTH, half) each: scale x (B @ A)^T
    _graph(export / "embedding.onnx", table, first, RNG.normal(size=(HIDDEN, WIDTH)) / 25, bias)
    _graph(export / "model.onnx", table, first + np.concatenate(merged, axis=1), head.T, bias)
    (parent / "tokenizer.json").write_text('{"model": "toy"}')
    (export / "tokenizer.json").write_text('{"model": "toy"}')
    (export / "everylabel_onnx.json").write_text("{}")
    return parent, export


def test_a_packed_export_in_its_model_folder_stores_nothing_the_folder_holds(
    model_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    parent, export = model_folder
    plan = pack(export, parent / "onnx", parent=parent)
    kinds = [entry["how"] for entry in plan["tensors"]]
    assert kinds.count("ref") == 1 and kinds.count("lora") == 1, kinds
    lora = next(entry for entry in plan["tensors"] if entry["how"] == "lora")
    assert [part["columns"] for part in lora["parts"]] == [[0, HIDDEN // 2], [HIDDEN // 2, HIDDEN]]
    assert [part["a"] for part in lora["parts"]] == ["m.q.lora_A.weight", "m.k.lora_A.weight"]
    assert all(abs(part["scale"] - 2.0) < 1e-4 for part in lora["parts"])
    assert plan["parent_files"] == {"tokenizer.json": "tokenizer.json"}
    assert not (parent / "onnx" / "tokenizer.json").exists()
    out = tmp_path / "out"
    out.mkdir()
    unpack(parent / "onnx", out)
    assert (out / "tokenizer.json").read_text() == '{"model": "toy"}'
    ids = np.array([0, 5, VOCAB - 1], dtype=np.int64)
    want, got = _run(export / "model.onnx", ids), _run(out / "model.onnx", ids)
    error = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < error < 0.02, error  # the int8 backbone under exact deltas and head


def test_a_packed_export_refuses_a_model_file_changed_since_packing(model_folder: tuple[Path, Path]) -> None:
    from everylabel.errors import ConfigError

    parent, export = model_folder
    pack(export, parent / "onnx", parent=parent)
    assert unpacked(parent / "onnx", "toy").is_dir()
    raw = (parent / "head.safetensors").read_bytes()
    (parent / "head.safetensors").write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # one value, a little
    with pytest.raises(ConfigError, match=r"head.safetensors changed since this export was packed"):
        unpacked(parent / "onnx", "toy")


def test_a_plan_may_read_only_inside_its_model_folder(
    model_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    from everylabel.errors import ConfigError

    parent, export = model_folder
    pack(export, parent / "onnx", parent=parent)
    plan_path = parent / "onnx" / PACKED
    plan = json.loads(plan_path.read_text())
    plan["parent_files"] = {"tokenizer.json": "../elsewhere/secrets.json"}
    plan_path.write_text(json.dumps(plan))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match=r"reads '../elsewhere/secrets.json' without recording its digest"):
        unpack(parent / "onnx", out)
    plan["parent_digests"]["../elsewhere/secrets.json"] = "0" * 64
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(ConfigError, match=r"'../elsewhere/secrets.json' is not a path inside"):
        unpack(parent / "onnx", out)


def test_safetensors_are_read_without_the_safetensors_package(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from everylabel.onnx.safetensors_numpy import read_tensors

    tensors = {"a": RNG.normal(size=(3, 5)).astype(np.float16), "b": RNG.normal(size=7).astype(np.float32)}
    save_file(tensors, str(tmp_path / "t.safetensors"))
    read = read_tensors(tmp_path / "t.safetensors")
    for name, value in load_file(str(tmp_path / "t.safetensors")).items():
        assert read[name].dtype == np.float32 and np.array_equal(read[name], value.astype(np.float32))


def test_a_text_encoder_is_the_label_encoders_matrix_plus_two_adapters(tmp_path: Path) -> None:
    """A bi-encoder with an adapter on each encoder: the label graph's matrix (merged with the label
    adapter) is stored, and the text graph's is that matrix plus the text adapter's delta less the
    label adapter's, module by module of the same name, both read from the model's folder."""
    from safetensors.numpy import save_file

    parent, export = tmp_path / "model", tmp_path / "export"
    export.mkdir(parents=True)
    table = RNG.normal(size=(VOCAB, WIDTH))
    first = RNG.normal(size=(WIDTH, HIDDEN)) / 6
    second = RNG.normal(size=(HIDDEN, WIDTH)) / 25
    bias = RNG.normal(size=HIDDEN)
    half = HIDDEN // 2
    merged = {}
    for folder in ("adapter", "label_adapter"):
        (parent / folder).mkdir(parents=True)
        factors = {
            f"m.{n}.lora_A.weight": (RNG.normal(size=(4, WIDTH)) / 10).astype(np.float16) for n in ("q", "k")
        } | {f"m.{n}.lora_B.weight": (RNG.normal(size=(half, 4)) / 10).astype(np.float16) for n in ("q", "k")}
        save_file(factors, str(parent / folder / "adapter_model.safetensors"))
        merged[folder] = np.concatenate(
            [
                2.0 * (factors[f"m.{n}.lora_B.weight"].astype(np.float32) @ factors[f"m.{n}.lora_A.weight"]).T
                for n in ("q", "k")
            ],
            axis=1,
        )  # (WIDTH, HIDDEN): scale x (B @ A)^T of both modules side by side
    _graph(export / "label_encoder.onnx", table, first + merged["label_adapter"], second, bias)
    _graph(export / "model.onnx", table, first + merged["adapter"], second, bias)
    (export / "everylabel_onnx.json").write_text("{}")
    plan = pack(export, parent / "onnx", parent=parent)
    lora = [entry for entry in plan["tensors"] if entry["how"] == "lora"]
    assert len(lora) == 1 and len(lora[0]["parts"]) == 4
    by_file = {(part["file"], part["a"]): part["scale"] for part in lora[0]["parts"]}
    for name in ("m.q.lora_A.weight", "m.k.lora_A.weight"):
        assert abs(by_file[("adapter/adapter_model.safetensors", name)] - 2.0) < 1e-3
        assert abs(by_file[("label_adapter/adapter_model.safetensors", name)] + 2.0) < 1e-3
    out = tmp_path / "out"
    out.mkdir()
    unpack(parent / "onnx", out)
    ids = np.array([0, 5, VOCAB - 1], dtype=np.int64)
    for graph in ("label_encoder.onnx", "model.onnx"):
        want, got = _run(export / graph, ids), _run(out / graph, ids)
        error = np.abs(got - want).max() / np.abs(want).max()
        assert 0 < error < 0.02, (graph, error)  # int8 under exact deltas


def test_a_large_table_packs_in_four_bits_with_a_scale_per_group(tmp_path: Path) -> None:
    from everylabel.onnx.packed import INT4_GROUP, INT4_MIN_ROWS

    export = tmp_path / "export"
    export.mkdir()
    table = RNG.normal(size=(INT4_MIN_ROWS, WIDTH))
    _graph(
        export / "model.onnx",
        table,
        RNG.normal(size=(WIDTH, HIDDEN)) / 6,
        np.eye(HIDDEN, WIDTH),
        np.zeros(HIDDEN),
    )
    (export / "everylabel_onnx.json").write_text("{}")
    kinds = {}
    for bits in (8, 4):
        plan = pack(export, tmp_path / f"packed-{bits}", table_bits=bits)
        kinds[bits] = plan["tensors"][0]["how"]
    assert kinds == {8: "int8", 4: "int4"}
    with np.load(tmp_path / "packed-4" / "weights.npz") as stored:
        assert stored["t0.q4"].shape == (INT4_MIN_ROWS, WIDTH // 2)  # two values a byte
        assert stored["t0.scale"].shape == (INT4_MIN_ROWS, WIDTH // INT4_GROUP)
    out = tmp_path / "out"
    out.mkdir()
    unpack(tmp_path / "packed-4", out)
    rebuilt = numpy_helper.to_array(
        next(t for t in onnx.load(str(out / "model.onnx")).graph.initializer if t.name == "table")
    )
    groups = np.abs(table).reshape(INT4_MIN_ROWS, -1, INT4_GROUP).max(axis=2)  # each group's peak
    error = np.abs(rebuilt - table).reshape(INT4_MIN_ROWS, -1, INT4_GROUP).max(axis=2)
    assert np.all(error <= groups / 14 * 1.01)  # half a step of peak / 7 (float16 scales)
    assert error.max() > 0
