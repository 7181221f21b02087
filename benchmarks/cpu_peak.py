"""CPU throughput of each runtime against the official pipeline and against the CPU's peak.

One run, on one GLiClass checkpoint in the official format (the packaged all-MiniLM-L6-v2 backbone,
head randomly initialised: speed does not depend on the weights; official default `first`
poolings; `prompt_first=True` so that both implementations cut the text, not the labels, at 512
positions). Texts: seeded random words, 20 to 300 words each. For each label count, the systems run
in rotating order, `--repeats` times:

- official: gliclass' `ZeroShotClassificationPipeline` (torch fp32, its default batch size 8,
  `max_length=512`);
- torch fp32, torch bf16, onnx fp32 (the fused export), onnx int8 (dynamic, qint8), and with
  `--plain` onnx fp32 without fusions: `Classifier.classify` with everylabel's defaults.

Per system and label count: texts/s (median and spread), the ratio to the official pipeline, tokens/s,
achieved FLOP/s and the fraction of the peak, and the share of wall time spent outside the model
(tokenization, layout, batching, decoding: wall time minus the time inside the backend's `run`).

FLOPs are the model's work on the real tokens, counted once from everylabel's inputs and used for
every system: per layer and token 2 x (4 h^2 + 2 h i) for the projections and feed-forward, plus
4 L h for the attention scores and context of a sequence of L tokens (embeddings and the head are
under 1% and left out). Padding is not counted; neither is the last layer everylabel skips at the
rows the head does not read, so a system that skips work can show more of the peak than it
executes.

The peak: `cpu_peak_kernels.c`, compiled here with the system's C compiler, runs an FMA loop (fp32)
and the AVX2 int8 dot-product sequence on every core at once, with no memory traffic; the sum is
the peak this machine sustains for that arithmetic. `--peak-gflops` overrides it where no compiler
is present. The best dense GEMM (onnxruntime MatMul, 2048 cubed) is printed beside it.

Run: .venv/bin/python benchmarks/cpu_peak.py [--texts 64] [--labels 1,8,32,128] [--repeats 3]
     [--out docs/cpu-peak]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from classify_vs_official import make_labels, make_texts, minilm_checkpoint

KERNELS = Path(__file__).with_name("cpu_peak_kernels.c")
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def kernel_peak(cores: int, seconds: float = 2.0) -> dict[str, float]:
    """Operations/s of the fp32 and int8 loops, one process per core at once, summed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or platform.machine() not in ("x86_64", "AMD64"):
        return {}
    folder = Path(tempfile.mkdtemp(prefix="everylabel-peak-"))
    binary = folder / "kernels"
    subprocess.run([compiler, "-O2", "-mavx2", "-mfma", str(KERNELS), "-o", str(binary)], check=True)
    peak = {}
    for kind in ("fp32", "int8"):
        runs = [subprocess.Popen([str(binary), kind, str(seconds)], stdout=subprocess.PIPE, text=True)
                for _ in range(cores)]  # fmt: skip
        peak[kind] = sum(float(p.communicate()[0]) for p in runs)
    shutil.rmtree(folder, ignore_errors=True)
    return peak


def gemm_roof(threads: int, size: int = 2048) -> float:
    """FLOP/s of onnxruntime's fp32 MatMul on two size x size matrices, the fastest of 5 runs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])
    weight = numpy_helper.from_array(np.random.rand(size, size).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.random.rand(size, size).astype(np.float32)}
    session.run(None, feed)
    fastest = float("inf")
    for _ in range(5):  # the best run: a roof, not a typical speed
        start = time.perf_counter()
        session.run(None, feed)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest


def model_flops(backbone: Any, lengths: list[int]) -> float:
    """The backbone's forward FLOPs over sequences of these real lengths (see the module docstring)."""
    h, i, layers = backbone.hidden_size, backbone.intermediate_size, backbone.num_hidden_layers
    per_token = 2 * (4 * h * h + 2 * h * i)
    return float(layers * sum(n * per_token + 4 * n * n * h for n in lengths))


class Timed:
    """A classifier whose backend's `run` is timed: the time spent inside the model."""

    def __init__(self, classifier: Any) -> None:
        self.classifier, self.inside = classifier, 0.0
        backend = classifier.backend
        inner = backend.run

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - start

        backend.run = run

    def __call__(self, texts: list[str], labels: list[str]) -> object:
        return self.classifier.classify(texts, labels, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=300)
    parser.add_argument("--labels", default="1,8,32,128")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default="official,torch-fp32,torch-bf16,onnx-fp32,onnx-int8")
    parser.add_argument("--plain", action="store_true", help="also time the ONNX fp32 export without fusions")
    parser.add_argument("--peak-gflops", type=float, help="the fp32 peak, where the kernels cannot be built")
    parser.add_argument("--out", type=Path, help="folder for cpu-peak.json, cpu-peak.md and cpu-peak.png")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging

    from everylabel import Classifier
    from everylabel.onnx import OnnxClassifier, export_onnx
    from everylabel.onnx.runtime import usable_cores
    from everylabel.runtime import cpu_flags, cpu_native_bf16

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    cores = usable_cores()
    flags = set(cpu_flags())
    peak = kernel_peak(cores)
    if args.peak_gflops:
        peak["fp32"] = args.peak_gflops * 1e9
    roof = gemm_roof(cores)
    print(json.dumps({"cores": cores, "flags": sorted(flags & set(FLAGS)), "peak_ops_s": peak,
                      "gemm_roof_flop_s": roof}), flush=True)  # fmt: skip

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="everylabel-cpu-peak-"))
    backbone = minilm_checkpoint(work / "model").config.encoder_config
    wanted = args.systems.split(",") + (["onnx-fp32-plain"] if args.plain else [])

    systems: dict[str, Callable[[list[str], list[str]], object]] = {}
    timed: dict[str, Timed] = {}
    if "official" in wanted:
        from gliclass import GLiClassModel as OfficialModel
        from gliclass import ZeroShotClassificationPipeline
        from transformers import AutoTokenizer

        official_model = OfficialModel.from_pretrained(work / "model").eval()
        tokenizer = AutoTokenizer.from_pretrained(work / "model")
        official = ZeroShotClassificationPipeline(
            official_model, tokenizer, max_length=512, device="cpu", progress_bar=False
        )

        def run_official(texts: list[str], labels: list[str]) -> object:
            with torch.inference_mode():
                return official(texts, labels, batch_size=8)

        systems["official"] = run_official
    for dtype in ("fp32", "bf16"):
        if f"torch-{dtype}" in wanted:
            timed[f"torch-{dtype}"] = Timed(
                Classifier.from_pretrained(work / "model", device="cpu", dtype=dtype)
            )
    exports = {"onnx-fp32": {}, "onnx-int8": {"int8": True}, "onnx-fp32-plain": {"fuse": False}}
    for name, options in exports.items():
        if name in wanted:
            export_onnx(work / "model", work / name, **options)
            timed[name] = Timed(OnnxClassifier(work / name))
    systems.update(timed)
    reference = next(iter(timed.values())).classifier

    texts = make_texts(args.texts, args.min_words, args.max_words, seed=1)
    rows = []
    for count in (int(n) for n in args.labels.split(",")):
        labels = make_labels(count, seed=count)
        lengths = [len(p.input_ids) for p in reference.prepare(texts, labels).passes]
        flops = model_flops(backbone, lengths)
        for fn in systems.values():
            fn(texts[:4], labels)  # warm-up: allocator, caches, lazy set-up
        times: dict[str, list[float]] = {name: [] for name in systems}
        inside: dict[str, list[float]] = {name: [] for name in timed}
        order = list(systems)
        for repeat in range(args.repeats):
            for offset in range(len(order)):  # rotate the order in every round
                name = order[(offset + repeat) % len(order)]
                if name in timed:
                    timed[name].inside = 0.0
                start = time.perf_counter()
                systems[name](texts, labels)
                times[name].append(time.perf_counter() - start)
                if name in timed:
                    inside[name].append(timed[name].inside)
        official_time = statistics.median(times["official"]) if "official" in times else None
        for name, values in times.items():
            wall = statistics.median(values)
            row = {
                "labels": count,
                "system": name,
                "texts": len(texts),
                "tokens": sum(lengths),
                "seconds_median": wall,
                "seconds_min": min(values),
                "seconds_max": max(values),
                "texts_s": len(texts) / wall,
                "tokens_s": sum(lengths) / wall,
                "flop_s": flops / wall,
                "of_peak": flops / wall / peak["fp32"] if "fp32" in peak else None,
                "vs_official": official_time / wall if official_time else None,
                "outside_model": 1 - statistics.median(inside[name]) / wall if name in inside else None,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    meta = {
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "cores": cores,
        "flags": sorted(flags & set(FLAGS)),
        "bf16_native": cpu_native_bf16(),
        "peak_ops_s": peak,
        "gemm_roof_flop_s": roof,
        "torch": torch.__version__,
        "texts": f"{len(texts)} texts of {args.min_words}-{args.max_words} words",
        "repeats": args.repeats,
    }
    table = markdown(rows, meta)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cpu-peak.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        (args.out / "cpu-peak.md").write_text(table + "\n")
        if "fp32" in peak:
            plot(rows, meta, args.out / "cpu-peak.png")
    shutil.rmtree(work, ignore_errors=True)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    peak = meta["peak_ops_s"].get("fp32")
    lines = [
        f"Cores {meta['cores']}, flags {', '.join(meta['flags'])}; fp32 peak "
        f"{peak / 1e9:.1f} GFLOP/s, int8 peak {meta['peak_ops_s'].get('int8', 0) / 1e9:.1f} Gop/s, "
        f"best GEMM {meta['gemm_roof_flop_s'] / 1e9:.1f} GFLOP/s; {meta['texts']}, median of "
        f"{meta['repeats']}"
        if peak
        else f"{meta['texts']}, median of {meta['repeats']}",
        "",
        "| labels | system | texts/s (min-max) | vs official | tokens/s | GFLOP/s | of peak | outside model |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        spread = f"{r['texts'] / r['seconds_max']:.1f}-{r['texts'] / r['seconds_min']:.1f}"
        lines.append(
            f"| {r['labels']} | {r['system']} | {r['texts_s']:.2f} ({spread}) | "
            f"{_fmt(r['vs_official'], '{:.2f}x')} | {r['tokens_s']:.0f} | {r['flop_s'] / 1e9:.1f} | "
            f"{_fmt(r['of_peak'], '{:.0%}')} | {_fmt(r['outside_model'], '{:.1%}')} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def plot(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        counts = [r["labels"] for r in mine]
        left.plot(counts, [r["texts_s"] for r in mine], marker="o", label=system)
        right.plot(
            counts, [100 * r["flop_s"] / meta["peak_ops_s"]["fp32"] for r in mine], marker="o", label=system
        )
    for axis, title in ((left, "texts/s"), (right, "% of the fp32 peak")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("labels")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    right.axhline(100 * meta["gemm_roof_flop_s"] / meta["peak_ops_s"]["fp32"], color="grey", ls="--",
                  label="best dense GEMM")  # fmt: skip
    right.legend(fontsize=8)
    figure.suptitle(f"CPU: {meta['cores']} cores, {meta['texts']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
