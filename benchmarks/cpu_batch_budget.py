"""Texts/s on the CPU for several padded-token budgets per batch, torch and ONNX, one run.

The checkpoint of `cpu_peak.py` (all-MiniLM-L6-v2 backbone, random head, official `first`
poolings), exported to ONNX fp32. Texts: 64 of 20-300 words ("mixed") and 256 of 5-30 words
("short"), seeded random words; 1 and 32 labels. For each point the budgets run in rotating order,
`--repeats` times; the median is printed with the padding the batches carry.
Run: .venv/bin/python benchmarks/cpu_batch_budget.py [--budgets 16384,4096,2048,1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from classify_vs_official import make_labels, make_texts, minilm_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="16384,4096,2048,1024")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    from everylabel import Classifier
    from everylabel.onnx import OnnxClassifier, export_onnx

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="everylabel-budget-"))
    minilm_checkpoint(work / "model")
    export_onnx(work / "model", work / "onnx")
    budgets = [int(b) for b in args.budgets.split(",")]
    print("| runtime | texts | labels | " + " | ".join(f"{b} tokens" for b in budgets) + " |")
    print("|---|---|---:|" + "---:|" * len(budgets))
    sets = {"mixed": make_texts(64, 20, 300, seed=1), "short": make_texts(256, 5, 30, seed=2)}
    for runtime in ("torch", "onnx"):
        for name, texts in sets.items():
            for count in (1, 32):
                labels = make_labels(count, seed=count)
                classifiers = {
                    b: OnnxClassifier(work / "onnx", batch_size=64, max_batch_tokens=b)
                    if runtime == "onnx"
                    else Classifier.from_pretrained(
                        work / "model", dtype="fp32", batch_size=64, max_batch_tokens=b
                    )
                    for b in budgets
                }
                times: dict[int, list[float]] = {b: [] for b in budgets}
                for clf in classifiers.values():
                    clf.classify(texts[:4], labels, progress=False)
                for repeat in range(args.repeats):
                    for offset in range(len(budgets)):
                        budget = budgets[(offset + repeat) % len(budgets)]
                        start = time.perf_counter()
                        classifiers[budget].classify(texts, labels, progress=False)
                        times[budget].append(time.perf_counter() - start)
                cells = []
                for budget, clf in classifiers.items():
                    prepared = clf.prepare(texts, labels)
                    lengths = [len(p.input_ids) for p in prepared.passes]
                    padded = sum(len(b) * max(lengths[i] for i in b) for b in clf.batches(prepared))
                    rate = len(texts) / statistics.median(times[budget])
                    cells.append(f"{rate:.1f} (padding {padded / sum(lengths) - 1:.0%})")
                print(f"| {runtime} | {name} | {count} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
