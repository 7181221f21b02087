"""Dynamic int8 quantization of an export's graphs, with its agreement with fp32 measured.

Weights are stored as 8-bit integers and activations quantized on the fly (onnxruntime's
`quantize_dynamic`), after onnxruntime's pre-processing (shape inference and graph
optimisation, so that the fused MatMul/Gemm nodes are the ones quantized). The choice of the
weight type and `reduce_range` is measured on the project's CPU in docs/benchmarks.md.
The fp32 outputs of `parity.npz` are compared with the int8 graphs' on the same inputs; the
largest difference and the top-label agreement go into the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .manifest import OnnxManifest

GRAPHS = ("model", "label_encoder", "embedding")
# Graphs left in fp32 unless asked: an embedding blend multiplies the embedding's cosine error by
# weight x scale (about 24 for the default model), which cost 5 points of 20 Newsgroups macro-F1
# with it quantized (docs/benchmarks.md).
KEPT_FP32 = ("embedding",)
WEIGHT_TYPES = ("qint8", "quint8")


def quantize_export(
    folder: Path,
    manifest: OnnxManifest,
    weight_type: str,
    reduce_range: bool,
    embedding: bool = False,
    per_channel: bool = False,
) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if weight_type not in WEIGHT_TYPES:
        from ..errors import InputError

        raise InputError("weight_type", f"expected one of {', '.join(WEIGHT_TYPES)}, got {weight_type!r}")
    kind = QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8
    present = [name for name in GRAPHS if (folder / f"{name}.onnx").exists()]
    quantized = [name for name in present if embedding or name not in KEPT_FP32]
    for name in quantized:
        path = folder / f"{name}.onnx"
        prepared = folder / f"{name}.pre.onnx"
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        # Shape inference does not type the outputs of onnxruntime's fused nodes (fusion.py): they are float.
        extra = {"DefaultTensorType": TensorProto.FLOAT}
        quantize_dynamic(
            str(prepared),
            str(path),
            weight_type=kind,
            reduce_range=reduce_range,
            per_channel=per_channel,
            extra_options=extra,
        )
        prepared.unlink()
    manifest.int8 = True
    manifest.quantization = {
        "weight_type": weight_type,
        "reduce_range": reduce_range,
        "per_channel": per_channel,
        "graphs": quantized,
    }
    manifest.quantization.update(agreement(folder, manifest))


PARITY_PREFIX = {"model": "model", "label_encoder": "labels", "embedding": "embedding"}


def agreement(folder: Path, manifest: OnnxManifest) -> dict[str, Any]:
    """The int8 graphs against the fp32 outputs recorded at export: worst difference, top-1 agreement."""
    import onnxruntime as ort

    parity = np.load(folder / "parity.npz")
    report: dict[str, Any] = {}
    for name, prefix in PARITY_PREFIX.items():
        if not (folder / f"{name}.onnx").exists():
            continue
        session = ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        feeds = {i.name: parity[f"{prefix}.{i.name}"] for i in session.get_inputs()}
        expected = parity[f"{prefix}.{session.get_outputs()[0].name}"]
        got = session.run(None, feeds)[0]
        report[f"{name}_max_abs_difference"] = float(np.abs(got - expected).max())
        if name == "model":  # the top label of each row among its real labels
            if "label_index" in feeds:
                counts = (feeds["label_index"] >= 0).sum(1)
            else:
                counts = (feeds["input_ids"] == manifest.special_ids[0]).sum(1)
            same = [got[i, :n].argmax() == expected[i, :n].argmax() for i, n in enumerate(counts)]
            report["model_top1_agreement"] = float(np.mean(same))
    return report
