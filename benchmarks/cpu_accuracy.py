"""Macro-F1 of the CPU runtimes against torch fp32: torch bf16, ONNX fp32 and ONNX int8.

int8 twice: one scale per weight tensor ("onnx-int8") and per output channel ("onnx-int8-pc",
the export's default since this measurement).

Two models:
- "default": the embedded default model, with its embedding blend (the int8 export keeps the
  embedding graph in fp32, as `--int8` does);
- "official-format": the default model's GLiClass part alone, its LoRA adapter merged and saved as
  a full checkpoint in the official format (no blend), built by this script.

Each runtime scores the same texts through `everylabel eval`'s evaluation (the same label sets and
decisions): a seeded sample of 20 Newsgroups test, a sample of Reuters R8 test and of Rotten
Tomatoes. Needs `make bench-data`. bf16 runs whether or not the CPU computes it natively (the
numbers are the same; only its speed differs, see `cpu_peak.py`).
Run: .venv/bin/python benchmarks/cpu_accuracy.py [--news 300] [--r8 800] [--reviews 800] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from onnx_vs_torch import Wrapped

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.runner import evaluate
from everylabel.onnx import OnnxClassifier, export_onnx

RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-pc")
EXPORTS = {
    "onnx-fp32": {},
    "onnx-int8": {"int8": True, "per_channel": False},
    "onnx-int8-pc": {"int8": True, "per_channel": True},
}


def official_format(folder: Path) -> Path:
    """The default model's GLiClass part, LoRA merged, saved as a full checkpoint without the blend."""
    from everylabel.adapters import merge_lora
    from everylabel.loading import load_model

    model, tokenizer = load_model("default")
    merge_lora(model)
    model.config.embedding_blend = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def runtimes(model: str | Path, work: Path) -> dict[str, Any]:
    built: dict[str, Any] = {
        "torch-fp32": Classifier.from_pretrained(model, device="cpu", dtype="fp32", backend="torch"),
        "torch-bf16": Classifier.from_pretrained(model, device="cpu", dtype="bf16", backend="torch"),
    }
    for name, options in EXPORTS.items():
        built[name] = OnnxClassifier(export_onnx(model, work / name, **options))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news", type=int, default=300, help="20 Newsgroups test texts")
    parser.add_argument("--r8", type=int, default=800, help="Reuters R8 test texts")
    parser.add_argument("--reviews", type=int, default=800, help="Rotten Tomatoes texts")
    parser.add_argument("--models", default="default,official-format")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sets = {
        "20 Newsgroups test": load_named("20newsgroups", "test", args.news, seed=3),
        "Reuters R8 test": load_named("reuters_r8", "test", args.r8, seed=3),
        "Rotten Tomatoes": load_named("rotten_tomatoes", limit=args.reviews, seed=3),
    }
    rows = []
    for model_name in args.models.split(","):
        work = Path(tempfile.mkdtemp(prefix="everylabel-accuracy-"))
        model: str | Path = "default" if model_name == "default" else official_format(work / "checkpoint")
        for runtime, clf in runtimes(model, work).items():
            for set_name, data in sets.items():
                start = time.perf_counter()
                f1 = evaluate(Wrapped(runtime, clf), data, progress=False)["metrics"]["macro_f1"]
                row = {"model": model_name, "runtime": runtime, "set": set_name, "texts": len(data.texts),
                       "macro_f1": f1, "seconds": time.perf_counter() - start}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| model | set | texts | " + " | ".join(RUNTIMES) + " |")
    print("|---|---|---:|" + "---:|" * len(RUNTIMES))
    for model_name in args.models.split(","):
        for set_name in sets:
            mine = {r["runtime"]: r for r in rows if r["model"] == model_name and r["set"] == set_name}
            base = mine["torch-fp32"]["macro_f1"]
            cells = [f"{base:.4f}"] + [
                f"{mine[r]['macro_f1']:.4f} ({100 * (mine[r]['macro_f1'] - base):+.1f})" for r in RUNTIMES[1:]
            ]
            print(
                f"| {model_name} | {set_name} | {mine['torch-fp32']['texts']} | " + " | ".join(cells) + " |"
            )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
