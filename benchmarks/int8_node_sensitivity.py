"""Which quantized nodes carry the int8 error: each weight node quantized alone, then the worst kept fp32.

Exports `--model` to ONNX fp32 (fused), then, for every MatMul and Attention node with a weight,
quantizes that node alone (dynamic, qint8, per output channel) and measures the RMS change of the
logits on 48 20 Newsgroups test texts against fp32. Then quantizes every node but the k worst, for
each k of `--exclude`, and prints the macro-F1 on a 20 Newsgroups test sample (200) and a Reuters R8
test sample (300) beside fp32's. `--model official-format` builds the checkpoint of
`cpu_accuracy.py`. Needs `make bench-data`.
Run: .venv/bin/python benchmarks/int8_node_sensitivity.py [--model official-format] [--exclude 2,4,8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from cpu_accuracy import official_format
from onnx_vs_torch import Wrapped

from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.runner import evaluate
from everylabel.onnx import OnnxClassifier, export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="official-format")
    parser.add_argument("--exclude", default="2,4,8")
    args = parser.parse_args()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="everylabel-int8-nodes-"))
    model = official_format(work / "checkpoint") if args.model == "official-format" else args.model
    base = export_onnx(model, work / "fp32")
    trial = Path(shutil.copytree(base, work / "trial"))
    prepared = work / "prepared.onnx"
    quant_pre_process(str(base / "model.onnx"), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared)).graph
    weights = {i.name for i in graph.initializer}
    nodes = [n.name for n in graph.node if n.op_type in ("MatMul", "Attention") and set(n.input) & weights]

    def quantize(include: list[str] | None, exclude: list[str]) -> OnnxClassifier:
        quantize_dynamic(
            str(prepared),
            str(trial / "model.onnx"),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=include,
            nodes_to_exclude=exclude,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return OnnxClassifier(trial)

    probe = load_named("20newsgroups", "test", 48, seed=5)

    def logits(clf: OnnxClassifier) -> np.ndarray:
        return np.concatenate([x.ravel() for x in clf.score(clf.prepare(probe.texts, probe.labels))])

    reference = logits(OnnxClassifier(base))
    error = {}
    for node in nodes:
        error[node] = float(np.sqrt(np.mean((logits(quantize([node], [])) - reference) ** 2)))
    ranked = sorted(error, key=lambda n: -error[n])
    print(f"{len(nodes)} weight nodes, RMS logit change when quantized alone:")
    for node in ranked:
        print(f"  {error[node]:.4f}  {node}")
    sets = [load_named("20newsgroups", "test", 200, seed=3), load_named("reuters_r8", "test", 300, seed=3)]
    print("| int8 | 20 Newsgroups test (200) | Reuters R8 test (300) |\n|---|---:|---:|")
    fp32 = [
        evaluate(Wrapped("fp32", OnnxClassifier(base)), d, progress=False)["metrics"]["macro_f1"]
        for d in sets
    ]
    print(f"| fp32 | {fp32[0]:.4f} | {fp32[1]:.4f} |")
    for k in [0, *(int(k) for k in args.exclude.split(","))]:
        clf = quantize(None, ranked[:k])
        f1 = [evaluate(Wrapped("int8", clf), d, progress=False)["metrics"]["macro_f1"] for d in sets]
        cells = " | ".join(f"{f:.4f} ({100 * (f - b):+.1f})" for f, b in zip(f1, fp32, strict=True))
        print(f"| per channel, {k} worst nodes fp32 | {cells} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
