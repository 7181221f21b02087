"""The export's int8 default (text graph int8, the embedding blend's graph fp32) on the sets of
`benchmarks/onnx_vs_torch.py`: texts/s at 8 labels against torch fp32 side by side, and macro-F1.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/onnx_int8_text_graph.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.runner import evaluate
from everylabel.onnx import OnnxClassifier, export_onnx

sys.path.insert(0, str(Path(__file__).parent))
from onnx_vs_torch import Wrapped, mixed_texts, texts_per_second


def main() -> None:
    warnings.filterwarnings("ignore", message=".*were cut to fit")
    folder = export_onnx("default", Path(tempfile.mkdtemp()) / "qint8", int8=True)
    clf = OnnxClassifier(folder)
    torch_clf = Classifier.from_pretrained("default", device="cpu", backend="torch")
    out: dict = {"quantization": json.loads((folder / "everylabel_onnx.json").read_text())["quantization"]}
    mixed = mixed_texts(64)
    r8 = load_named("reuters_r8", "test")
    labels = r8.labels[:8]
    for warm in (clf, torch_clf):
        warm.classify(mixed[:4], labels)
    torch_speeds, onnx_speeds = [], []
    for _ in range(3):
        torch_speeds.append(texts_per_second(torch_clf, mixed, labels))
        onnx_speeds.append(texts_per_second(clf, mixed, labels))
    torch_speed, onnx_speed = statistics.median(torch_speeds), statistics.median(onnx_speeds)
    out["texts_per_s_8_labels"] = {
        "torch": torch_speed,
        "onnx_int8": onnx_speed,
        "ratio": onnx_speed / torch_speed,
    }
    for data in (load_named("20newsgroups", "test", 500), r8, load_named("rotten_tomatoes", limit=2000)):
        out[data.name] = evaluate(Wrapped("qint8", clf), data, progress=False)["metrics"]["macro_f1"]
    print(json.dumps(out, indent=2))
    Path("docs/onnx/int8-fp32-embedding.json").write_text(json.dumps({"qint8": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
