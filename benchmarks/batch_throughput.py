"""`everylabel batch` against `Classifier.classify`: texts/s of each engine on the same texts, one run.

Texts: Rotten Tomatoes snippets (12,808 short reviews, `load_named("rotten_tomatoes")`), a seeded
sample; past 12,808 the set is filled up with Reuters R8 business news (train and test, medium
length, slower), shuffled in, and the labels are both sets' names (else Rotten Tomatoes' own:
positive, negative). The default model, with the backend given by --backend (onnx by default:
what `--backend auto` picks on a CPU).

Measured, in this order, on the same texts and labels:
  classify      `Classifier.from_pretrained(...).classify(texts, labels)` in this process, the
                model already loaded (loading is timed apart);
  batch local   `everylabel batch --engine local` as a process: wall time, start-up included;
  batch ray     `everylabel batch --engine ray --workers W` as a process, a fresh local Ray
                instance: wall time, Ray's start and each actor's model load included;
  classify CLI  with --classify-cli: `everylabel classify --input FILE --output FILE` as a process.
For the batch engines the summary's `steady_texts_per_second` is also reported: the rows of every
part after the first over the time from the first part's write to the last's (start-up left out).

Needs `make bench-data` and the ray extra. Run:
    .venv/bin/python benchmarks/batch_throughput.py [--texts 20000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named


def load_texts(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`count` real texts and the label names of the sets they come from (see the module)."""
    reviews = load_named("rotten_tomatoes")
    if count <= len(reviews.texts):
        return load_named("rotten_tomatoes", limit=count, seed=seed).texts, list(reviews.labels)
    news = load_named("reuters_r8", "train").texts + load_named("reuters_r8", "test").texts
    needed = count - len(reviews.texts)
    if needed > len(news):
        raise SystemExit(f"--texts: at most {len(reviews.texts) + len(news)} texts are available")
    texts = reviews.texts + random.Random(seed).sample(news, needed)
    random.Random(seed).shuffle(texts)
    return texts, list(reviews.labels) + list(load_named("reuters_r8", "test").labels)


def everylabel_command() -> list[str]:
    return [sys.executable, "-m", "everylabel"]


def run_process(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole process, and its standard output."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["HF_HUB_OFFLINE"] = "1"
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (one CPU each)")
    parser.add_argument("--part-rows", type=int, default=1000)
    parser.add_argument("--classify-cli", action="store_true", help="also time `everylabel classify`")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    texts, labels = load_texts(args.texts)
    lengths = sorted(len(t) for t in texts)
    print(
        f"{len(texts)} texts (median {lengths[len(lengths) // 2]} characters), {len(labels)} labels",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "texts.jsonl"
        source.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))

        start = time.perf_counter()
        classifier = Classifier.from_pretrained("default", backend=args.backend)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        classifier.classify(texts, labels, progress=False)
        seconds = time.perf_counter() - start
        rows.append({"method": "Classifier.classify (in-process)", "seconds": seconds, "load_seconds": loaded,
                     "steady": round(len(texts) / seconds, 1)})  # fmt: skip
        print(f"classify: {len(texts) / seconds:.1f} texts/s", flush=True)
        del classifier

        common = ["--input", str(source), "--labels", ",".join(labels), "--model", "default",
                  "--backend", args.backend, "--id-column", "id", "--part-rows", str(args.part_rows)]  # fmt: skip
        engines = [("local", []), ("ray", ["--workers", str(args.workers)])]
        for engine, extra in engines:
            output = Path(folder) / f"out-{engine}"
            command = [
                *everylabel_command(),
                "batch",
                *common,
                "--output",
                str(output),
                "--engine",
                engine,
                *extra,
            ]
            wall, stdout = run_process(command)
            summary = json.loads(stdout.strip().splitlines()[-1])
            assert summary["rows_written"] == len(texts), summary
            name = f"batch --engine {engine}" + (f" --workers {args.workers}" if engine == "ray" else "")
            rows.append({"method": name, "seconds": wall, "steady": summary["steady_texts_per_second"]})
            print(f"{name}: {len(texts) / wall:.1f} texts/s", flush=True)
        if args.classify_cli:
            command = [sys.executable, "-m", "everylabel", "classify", "--input", str(source), "--labels", ",".join(labels),
                       "--backend", args.backend, "--output", str(Path(folder) / "out.jsonl")]  # fmt: skip
            wall, _ = run_process(command)
            rows.append({"method": "classify CLI (process)", "seconds": wall})

    base = len(texts) / rows[0]["seconds"]
    for row in rows:
        row["texts_per_second"] = round(len(texts) / row["seconds"], 1)
        row["ratio_to_classify"] = round(row["texts_per_second"] / base, 2)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    packages = {name: version(name) for name in ("onnxruntime", "torch", "ray", "pyarrow")}
    print(f"\n{len(texts)} texts, {len(labels)} labels, default model, backend {args.backend}; {machine}; "
          + ", ".join(f"{k} {v}" for k, v in packages.items()) + "\n")  # fmt: skip
    print("| method | seconds | texts/s | vs classify | steady texts/s (start-up excluded) | vs classify |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        steady = row.get("steady")
        versus = f"{steady / base:.2f}x" if steady else "-"
        print(f"| {row['method']} | {row['seconds']:.1f} | {row['texts_per_second']:.1f} | "
              f"{row['ratio_to_classify']:.2f}x | {steady or '-'} | {versus} |")  # fmt: skip
    if args.out is not None:
        result = {"texts": len(texts), "labels": labels, "backend": args.backend, "workers": args.workers,
                  "part_rows": args.part_rows, "machine": machine, "packages": packages, "rows": rows}  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
