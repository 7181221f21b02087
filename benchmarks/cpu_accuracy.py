"""Macro-F1 of the CPU runtimes against torch fp32: torch bf16, ONNX fp32 and ONNX int8.

"onnx-shipped": the default model's packed export as the package ships it (weight-only int8,
`onnx/packed.py`), which the base install runs. int8 four ways: one scale per weight tensor ("onnx-int8"), per output channel ("onnx-int8-pc"),
and per output channel with the 2 or 4 weight nodes of largest int8 error kept fp32
("onnx-int8-pc-keep2", the export's default, and "onnx-int8-pc-keep4"; see onnx/quantize.py).

Two models:
- "default": the embedded default model, with its embedding blend (the int8 export keeps the
  embedding graph in fp32, as `--int8` does);
- "official-format": the default model's GLiClass part alone, its LoRA adapter merged and saved as
  a full checkpoint in the official format (no blend), built by this script.

Each runtime scores the same texts through `everylabel eval`'s evaluation (the same label sets and
decisions): a seeded sample of 20 Newsgroups test, a sample of Reuters R8 test and of Rotten
Tomatoes. Needs `make bench-data`. bf16 runs whether or not the CPU computes it natively (the
numbers are the same; only its speed differs, see `cpu_peak.py`).
The first of `--runtimes` is the reference of the table's differences.
Run: .venv/bin/python benchmarks/cpu_accuracy.py [--news 300] [--r8 800] [--reviews 800] [--out FILE]
     [--runtimes torch-fp32,onnx-int8-pc-keep2]
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

EXPORTS: dict[str, dict[str, Any]] = {
    "onnx-fp32": {},
    "onnx-int8": {"int8": True, "per_channel": False, "keep_fp32": 0},
    "onnx-int8-pc": {"int8": True, "per_channel": True, "keep_fp32": 0},
    "onnx-int8-pc-keep2": {"int8": True, "per_channel": True, "keep_fp32": 2},
    "onnx-int8-pc-keep4": {"int8": True, "per_channel": True, "keep_fp32": 4},
}
RUNTIMES = ("torch-fp32", "torch-bf16", *EXPORTS, "onnx-shipped")


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


def runtime(name: str, model: str | Path, work: Path) -> Any:
    if name.startswith("torch-"):
        return Classifier.from_pretrained(model, device="cpu", dtype=name[6:], backend="torch")
    if name == "onnx-shipped":  # the packed export the package ships (default model only)
        from everylabel.onnx.backend import onnx_folder

        return OnnxClassifier(onnx_folder(model))
    return OnnxClassifier(export_onnx(model, work / name, **EXPORTS[name]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news", type=int, default=300, help="20 Newsgroups test texts")
    parser.add_argument("--r8", type=int, default=800, help="Reuters R8 test texts")
    parser.add_argument("--reviews", type=int, default=800, help="Rotten Tomatoes texts")
    parser.add_argument("--models", default="default,official-format")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"of {', '.join(RUNTIMES)}")
    args = parser.parse_args()
    names = args.runtimes.split(",")
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
        for name in names:
            clf = runtime(name, model, work)
            for set_name, data in sets.items():
                start = time.perf_counter()
                f1 = evaluate(Wrapped(name, clf), data, progress=False)["metrics"]["macro_f1"]
                row = {"model": model_name, "runtime": name, "set": set_name, "texts": len(data.texts),
                       "macro_f1": f1, "seconds": time.perf_counter() - start}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| model | set | texts | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(names))
    for model_name in args.models.split(","):
        for set_name in sets:
            mine = {r["runtime"]: r for r in rows if r["model"] == model_name and r["set"] == set_name}
            base = mine[names[0]]["macro_f1"]
            cells = [f"{base:.4f}"] + [
                f"{mine[r]['macro_f1']:.4f} ({100 * (mine[r]['macro_f1'] - base):+.1f})" for r in names[1:]
            ]
            print(f"| {model_name} | {set_name} | {mine[names[0]]['texts']} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
