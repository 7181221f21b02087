"""Dynamic int8 quantization of an export's graphs, with its agreement with fp32 measured.

Weights are stored as 8-bit integers and activations quantized on the fly (onnxruntime's
`quantize_dynamic`), after onnxruntime's pre-processing (shape inference and graph
optimisation, so that the fused MatMul/Gemm nodes are the ones quantized). The choice of the
weight type and `reduce_range` is measured on the project's CPU in docs/benchmarks.md.
The fp32 outputs of `parity.npz` are compared with the int8 graphs' on the same inputs; the
largest difference and the top-label agreement go into the manifest.

A few weight nodes carry most of the int8 error (benchmarks/int8_node_sensitivity.py). With
`keep_fp32=k`, each weight node of a graph is quantized alone and the RMS change of the graph's
output on the parity inputs measured; the k nodes that change it most stay fp32. The ranking and
the kept nodes go into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import OnnxManifest
from .runtime import Session

GRAPHS = ("model", "label_encoder", "embedding")
# Graphs left in fp32: an embedding blend multiplies the embedding's cosine error by weight x scale
# (about 24 for the default model v3), which cost 5 points of 20 Newsgroups macro-F1 with it
# quantized (docs/benchmarks.md), so it is int8 only where asked (`embedding=True`); a bi-encoder's
# label graph runs once per distinct label (its vectors are cached), so int8 would buy it no speed,
# and on the default model it cost up to 1.1 points of macro-F1 (docs/benchmarks.md, "It ships").
KEPT_FP32 = ("embedding", "label_encoder")
WEIGHT_TYPES = ("qint8", "quint8")
QUANTIZED_OPS = ("MatMul", "Attention")
# Weight nodes kept fp32 by default: measured in docs/benchmarks.md ("int8 nodes kept fp32").
KEEP_FP32 = 2


def quantize_export(
    folder: Path,
    manifest: OnnxManifest,
    weight_type: str,
    reduce_range: bool,
    embedding: bool = False,
    per_channel: bool = False,
    keep_fp32: int = 0,
) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..errors import InputError

    if weight_type not in WEIGHT_TYPES:
        raise InputError("weight_type", f"expected one of {', '.join(WEIGHT_TYPES)}, got {weight_type!r}")
    if keep_fp32 < 0:
        raise InputError("keep_fp32", f"expected a count of nodes, 0 or more, got {keep_fp32}")
    kind = QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8
    present = [name for name in GRAPHS if (folder / f"{name}.onnx").exists()]
    quantized = [name for name in present if name not in KEPT_FP32 or (embedding and name == "embedding")]
    kept: dict[str, dict[str, float]] = {}
    for name in quantized:
        path = folder / f"{name}.onnx"
        prepared = folder / f"{name}.pre.onnx"
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        quantize = partial(
            quantize_dynamic,
            str(prepared),
            weight_type=kind,
            reduce_range=reduce_range,
            per_channel=per_channel,
            op_types_to_quantize=list(QUANTIZED_OPS),
            # Shape inference does not type the outputs of onnxruntime's fused nodes (fusion.py).
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
        errors = node_errors(folder, name, prepared, quantize) if keep_fp32 else {}
        kept[name] = dict(sorted(errors.items(), key=lambda item: -item[1])[:keep_fp32])
        quantize(str(path), nodes_to_exclude=list(kept[name]))
        prepared.unlink()
    manifest.int8 = True
    manifest.quantization = {
        "weight_type": weight_type,
        "reduce_range": reduce_range,
        "per_channel": per_channel,
        "graphs": quantized,
        "kept_fp32": kept,
    }
    manifest.quantization.update(agreement(folder, manifest))


PARITY_PREFIX = {"model": "model", "label_encoder": "labels", "embedding": "embedding"}


def weight_nodes(path: Path) -> list[str]:
    """The nodes of the graph at `path` that the quantizer would turn to int8: ops with a weight."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {tensor.name for tensor in graph.initializer}
    return [node.name for node in graph.node if node.op_type in QUANTIZED_OPS and set(node.input) & weights]


def node_errors(folder: Path, name: str, prepared: Path, quantize: Callable[..., None]) -> dict[str, float]:
    """RMS change of graph `name`'s output on the parity inputs with each weight node quantized alone.

    `quantize(target, nodes_to_quantize=[...])` writes the quantized graph of `prepared` to `target`.
    """
    feeds, expected = _parity_io(folder, name, Session(prepared, None))
    trial = folder / f"{name}.trial.onnx"
    errors = {}
    try:
        for node in weight_nodes(prepared):
            quantize(str(trial), nodes_to_quantize=[node])
            got = Session(trial, None).run(feeds)
            errors[node] = float(np.sqrt(np.mean((got - expected) ** 2)))
    finally:
        trial.unlink(missing_ok=True)
    return errors


def _parity_io(folder: Path, name: str, session: Session) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The parity inputs of graph `name` (run by `session`) and its fp32 output, as recorded at export."""
    parity = np.load(folder / "parity.npz")
    prefix = PARITY_PREFIX[name]
    feeds = {key: parity[f"{prefix}.{key}"] for key in session.inputs}
    return feeds, parity[f"{prefix}.{session.session.get_outputs()[0].name}"]


def agreement(folder: Path, manifest: OnnxManifest) -> dict[str, Any]:
    """The int8 graphs against the fp32 outputs recorded at export: worst difference, top-1 agreement."""
    report: dict[str, Any] = {}
    for name in PARITY_PREFIX:
        if not (folder / f"{name}.onnx").exists():
            continue
        session = Session(folder / f"{name}.onnx", None)
        feeds, expected = _parity_io(folder, name, session)
        got = session.run(feeds)
        report[f"{name}_max_abs_difference"] = float(np.abs(got - expected).max())
        if name == "model":  # the top label of each row among its real labels
            if "label_index" in feeds:
                counts = (feeds["label_index"] >= 0).sum(1)
            else:  # the <<LABEL>> markers, in the label blocks where they are their own sequence
                marked = feeds.get("class_input_ids", feeds["input_ids"])
                counts = (marked == manifest.special_ids[0]).sum(1)
            same = [got[i, :n].argmax() == expected[i, :n].argmax() for i, n in enumerate(counts)]
            report["model_top1_agreement"] = float(np.mean(same))
    return report
