"""Texts/s of two or more models side by side: rounds alternate between them, medians are reported.

    .venv/bin/python benchmarks/model_throughput.py --model OLD --model NEW [--texts 100] [--labels 8]
    .venv/bin/python benchmarks/model_throughput.py --model default --unmerged

Texts: a seeded sample of 20 Newsgroups test posts (long, cut to the model's window as `everylabel
eval` does) and as many Rotten Tomatoes snippets (one sentence each), with the first `--labels`
of 20 Newsgroups' labels; each model's own options (an embedding blend included) apply. The last
column is each model's texts/s over the first model's. `--unmerged` also times each LoRA model (torch)
with its adapters left unmerged, as torch served them before they were folded in at load
("NAME (unmerged)"). Needs `make bench-data`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

from everylabel import Classifier
from everylabel.adapters import is_adapter_folder
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.throughput import machine_description
from everylabel.loading import load_model
from everylabel.paths import resolve_model_source, resolve_path
from everylabel.runtime import resolve_dtype
from everylabel.tokenization import load_label_tokenizer


def unmerged(name: str) -> Classifier:
    """The model on torch as `from_pretrained` opens it, but with its LoRA modules left unmerged."""
    model, tokenizer = load_model(name, dtype=resolve_dtype("auto", torch.device("cpu")))
    label_tokenizer = None
    if model.config.is_bi_encoder:
        label_tokenizer = load_label_tokenizer(model.config, str(resolve_path(name)))
    return Classifier(model, tokenizer, device="cpu", label_tokenizer=label_tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeat: two or more models")
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--unmerged", action="store_true", help="also each LoRA model with unmerged adapters")
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*were cut to fit")
    news = load_named("20newsgroups", "test", args.texts, seed=1)
    short = load_named("rotten_tomatoes", "test", args.texts, seed=1)
    labels = news.labels[: args.labels]
    models = {
        name: Classifier.from_pretrained(name, device="cpu", backend=args.backend) for name in args.model
    }
    if args.unmerged:
        for name in args.model:
            if is_adapter_folder(resolve_model_source(name)):
                models[f"{name} (unmerged)"] = unmerged(name)
    rows = []
    print(f"machine: {machine_description('cpu')}")
    print("| texts | labels | model | texts/s | vs first |")
    print("|---|---:|---|---:|---:|")
    for kind, texts in (("20 Newsgroups posts", news.texts), ("Rotten Tomatoes snippets", short.texts)):
        timings: dict[str, list[float]] = {name: [] for name in models}
        for clf in models.values():
            clf.classify(texts[:8], labels, progress=False)  # warm up (label caches, first-call setup)
        for _ in range(args.rounds):
            for name, clf in models.items():
                start = time.perf_counter()
                clf.classify(texts, labels, progress=False)
                timings[name].append(len(texts) / (time.perf_counter() - start))
        first = statistics.median(timings[args.model[0]])
        for name in models:
            speed = statistics.median(timings[name])
            rows.append({"texts": kind, "count": len(texts), "labels": len(labels), "model": name,
                         "texts_per_s": round(speed, 2), "vs_first": round(speed / first, 2)})  # fmt: skip
            print(
                f"| {kind} ({len(texts)}) | {len(labels)} | {name} | {speed:.1f} | {speed / first:.2f}x |",
                flush=True,
            )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
