"""The export's transformer fusions: applied to BERT-family graphs, kept only when exact."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

import onnx
from onnx import helper

from everylabel import Classifier, create_model
from everylabel.onnx import OnnxClassifier, export_onnx
from everylabel.onnx import export as export_module
from everylabel.onnx.manifest import OnnxManifest
from tests import oracle
from tests.test_cli import run
from tests.test_onnx import assert_same_logits, save_checkpoint


def node_types(path: Path) -> collections.Counter[str]:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def bert_checkpoint(backbone_dir, tmp_path_factory) -> Path:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)  # official `first` poolings
    oracle.spread_weights(model, std=0.05)
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("bert") / "model")


def test_a_bert_graph_is_fused_and_gives_the_torch_logits(bert_checkpoint, tmp_path) -> None:
    out = export_onnx(bert_checkpoint, tmp_path / "fused")
    fusion = OnnxManifest.load(out).fusion["model"]
    assert fusion["fused"]["Attention"] >= 1  # the layers before the last (which runs at read rows)
    assert fusion["fused"]["SkipLayerNormalization"] >= 2
    assert fusion["max_abs_difference"] <= 1e-4
    types = node_types(out / "model.onnx")
    assert types["Attention"] == fusion["fused"]["Attention"]
    assert types["Softmax"] <= 1  # only the last layer's attention stays unfused
    assert_same_logits(Classifier.from_pretrained(bert_checkpoint, device="cpu"), OnnxClassifier(out))


def test_fuse_false_keeps_the_traced_graph(bert_checkpoint, tmp_path) -> None:
    out = export_onnx(bert_checkpoint, tmp_path / "plain", fuse=False)
    assert OnnxManifest.load(out).fusion["model"] == {"kept_plain": "not asked (fuse=False)"}
    types = node_types(out / "model.onnx")
    assert types["Attention"] == 0 and types["SkipLayerNormalization"] == 0
    assert_same_logits(Classifier.from_pretrained(bert_checkpoint, device="cpu"), OnnxClassifier(out))


def test_a_fused_graph_that_changes_the_outputs_is_not_kept(bert_checkpoint, tmp_path, monkeypatch) -> None:
    def wrong_fusion(source: Path, target: Path, backbone: object) -> dict[str, int]:
        model = onnx.load(str(source))
        output = model.graph.output[0].name
        for node in model.graph.node:  # the graph's output now comes out 1% too large
            node.output[:] = [f"{name}.before" if name == output else name for name in node.output]
        scale = helper.make_tensor("scale", onnx.TensorProto.FLOAT, [], [1.01])
        model.graph.initializer.append(scale)
        model.graph.node.append(helper.make_node("Mul", [f"{output}.before", "scale"], [output]))
        onnx.save(model, str(target))
        return {"Attention": 1}

    monkeypatch.setattr(export_module, "fuse_graph", wrong_fusion)
    out = export_onnx(bert_checkpoint, tmp_path / "refused")
    assert OnnxManifest.load(out).fusion["model"]["kept_plain"].startswith("the fused graph differs by")
    assert not (out / "model.fused.onnx").exists()
    assert_same_logits(Classifier.from_pretrained(bert_checkpoint, device="cpu"), OnnxClassifier(out))


def test_backbones_without_the_bert_layout_are_kept_plain(backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(backbone_dir("deberta-v2"), dropout=0.0)
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    out = export_onnx(folder, tmp_path / "onnx")
    assert OnnxManifest.load(out).fusion["model"] == {"kept_plain": "no fusions for 'deberta-v2' backbones"}


def test_a_bi_encoders_label_graph_is_fused_too(backbone_dir, tmp_path) -> None:
    backbone = backbone_dir("bert")
    model, tokenizer = create_model(
        backbone, architecture_type="bi-encoder", label_model=backbone, pooling_strategy="avg", dropout=0.0
    )
    oracle.spread_weights(model, std=0.05)
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    out = export_onnx(folder, tmp_path / "onnx")
    fusion = OnnxManifest.load(out).fusion
    assert fusion["label_encoder"]["fused"]["Attention"] >= 1
    assert fusion["model"]["fused"]["Attention"] >= 1
    assert_same_logits(Classifier.from_pretrained(folder, device="cpu"), OnnxClassifier(out))


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_quantizes_the_fused_graph_per_tensor_or_per_channel(
    bert_checkpoint, tmp_path, per_channel
) -> None:
    out = export_onnx(bert_checkpoint, tmp_path / "int8", int8=True, per_channel=per_channel)
    manifest = OnnxManifest.load(out)
    assert manifest.quantization["per_channel"] is per_channel
    assert manifest.quantization["model_max_abs_difference"] < 0.5
    graph = onnx.load(str(out / "model.onnx")).graph
    kept = manifest.quantization["kept_fp32"]["model"]
    assert len(kept) == 2 and all(error > 0 for error in kept.values())  # the default: the 2 worst nodes
    nodes = {node.name: node.op_type for node in graph.node}
    assert all(nodes[name] in ("MatMul", "Attention") for name in kept)  # kept fp32, by name
    types = collections.Counter(op for name, op in nodes.items() if name not in kept)
    assert types["QAttention"] >= 1 and types["Attention"] == 0  # the fused attention, quantized
    scales = [
        len(t.float_data) or len(t.raw_data) // 4 for t in graph.initializer if t.name.endswith("_scale")
    ]
    assert scales and (max(scales) > 1) is per_channel  # one scale per output channel, or one per weight
    results = OnnxClassifier(out).classify(["The striker scored twice."], ["sports", "politics"])
    assert len(results[0].scores) == 2


def test_the_command_line_passes_no_fuse_per_tensor_and_keep_fp32(capsys, bert_checkpoint, tmp_path) -> None:
    out = tmp_path / "onnx"
    args = ["export", "onnx", "--model", str(bert_checkpoint), "--out", str(out), "--int8", "--per-tensor"]
    code, _, err = run(capsys, *args, "--no-fuse", "--keep-fp32", "0")
    assert code == 0, err
    manifest = OnnxManifest.load(out)
    assert manifest.fusion["model"] == {"kept_plain": "not asked (fuse=False)"}
    assert manifest.quantization["per_channel"] is False
    assert manifest.quantization["kept_fp32"] == {"model": {}}  # --keep-fp32 0: every weight node int8
