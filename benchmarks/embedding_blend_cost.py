"""What the default model's embedding blend costs: texts/s with and without it, side by side.

The blend adds one encoder pass per text over the text alone (labels are embedded once and
cached). Both classifiers share one model; rounds alternate between them and the median of each
is reported, with the ratio. Texts: a seeded sample of 20 Newsgroups test posts (mixed lengths,
cut to the model's window as `everylabel eval` does), with the first 8 or all 20 of its labels.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/embedding_blend_cost.py [--texts N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.throughput import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*were cut to fit")
    data = load_named("20newsgroups", "test", args.texts, seed=1)
    blended = Classifier.from_pretrained("default", device="cpu", backend="torch")
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    rows = []
    print(f"machine: {machine_description('cpu')}")
    print("| labels | texts | with blend texts/s | model alone texts/s | alone / blend |")
    print("|---:|---:|---:|---:|---:|")
    for count in (8, 20):
        labels = data.labels[:count]
        blended.classify(data.texts[:8], labels)  # warm up; the blend's label vectors get cached
        alone.classify(data.texts[:8], labels)
        timings: dict[str, list[float]] = {"blend": [], "alone": []}
        for _ in range(args.rounds):
            for name, clf in (("blend", blended), ("alone", alone)):
                start = time.perf_counter()
                clf.classify(data.texts, labels, progress=False)
                timings[name].append(len(data.texts) / (time.perf_counter() - start))
        blend, model = statistics.median(timings["blend"]), statistics.median(timings["alone"])
        rows.append({"labels": count, "texts": len(data.texts), "blend_texts_per_s": blend,
                     "alone_texts_per_s": model, "ratio": model / blend})  # fmt: skip
        print(
            f"| {count} | {len(data.texts)} | {blend:.1f} | {model:.1f} | {model / blend:.2f}x |", flush=True
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
