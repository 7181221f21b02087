"""Calibration of the default model on 20 Newsgroups, R8 and Rotten Tomatoes: NLL, Brier score and
ECE (15 bins) on the test set before and after fitting on a sample of the training split (Rotten
Tomatoes has none: two disjoint samples of its corpus), and the
macro-F1 of tuned thresholds in multi-label mode.

Each dataset is scored once (train sample and test sample, the embedding blend included, no
calibration); every variant is then fitted on the train logits (`fit_calibration`, nothing held
out) and measured on the test logits. Two decision modes: single-label (softmax over the labels,
each dataset's own task; top-label confidence for ECE) and multi-label (a sigmoid per label; ECE
over every (text, label) pair). Needs `make bench-data`. Run:
    .venv/bin/python benchmarks/calibration_eval.py --out docs/eval/calibration.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

from everylabel import Classifier
from everylabel.evaluation.calibrate import (
    calibrated,
    collect_logits,
    fit_calibration,
    macro_f1,
    scoring_metrics,
)
from everylabel.evaluation.datasets import LabelledSet, load_named
from everylabel.evaluation.throughput import machine_description

DATASETS = {"20newsgroups": (800, 1000), "reuters_r8": (800, 1000), "rotten_tomatoes": (800, 1066)}


def splits(name: str, fit_size: int, test_size: int) -> tuple[LabelledSet, LabelledSet]:
    """A sample of the training split and of the test split; Rotten Tomatoes has no split, so there
    two disjoint seeded samples of the corpus."""
    if name != "rotten_tomatoes":
        return load_named(name, "train", fit_size), load_named(name, "test", test_size, seed=1)
    corpus = load_named(name, "test")
    order = list(range(len(corpus.texts)))
    random.Random(0).shuffle(order)

    def part(indices: list[int]) -> LabelledSet:
        chosen = sorted(indices)
        texts, gold = [corpus.texts[i] for i in chosen], [corpus.gold[i] for i in chosen]
        return LabelledSet(corpus.name, texts, gold, corpus.labels, corpus.multi_label)

    return part(order[:fit_size]), part(order[fit_size : fit_size + test_size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sample sizes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    classifier = Classifier.from_pretrained(args.model, device="cpu", backend="torch", calibration=False)
    rows = []
    print(f"machine: {machine_description('cpu')}")
    print("| dataset | mode | method | NLL before | after | Brier before | after | ECE before | after |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, (fit_size, test_size) in DATASETS.items():
        train, test = splits(name, int(fit_size * args.scale), int(test_size * args.scale))
        started = time.perf_counter()
        fit_logits = collect_logits(classifier, train.texts, [train.labels] * len(train.texts), train.gold)
        test_logits = collect_logits(classifier, test.texts, [test.labels] * len(test.texts), test.gold)
        seconds = time.perf_counter() - started
        for single in (True, False):
            mode = "single-label" if single else "multi-label"
            for method in ("temperature", "platt"):
                for per_label in (False, True):
                    cal = fit_calibration(
                        fit_logits, method=method, per_label=per_label, thresholds=not single,
                        single_label=single, holdout=0.0,
                    )  # fmt: skip
                    before = scoring_metrics(test_logits, single)
                    after_logits = calibrated(test_logits, cal)
                    after = scoring_metrics(after_logits, single)
                    row = {
                        "dataset": name, "mode": mode, "method": method, "per_label": per_label,
                        "fit_texts": len(fit_logits.labels), "test_texts": len(test_logits.labels),
                        "scale": cal.scale, "bias": cal.bias, "before": before, "after": after,
                        "scoring_seconds": seconds,
                    }  # fmt: skip
                    if not single:
                        limits = {n: cal.thresholds.get(n, cal.default_threshold or 0.5) for n in test.labels}
                        row["macro_f1"] = {
                            "uncalibrated_at_0.5": macro_f1(test_logits, 0.5),
                            "calibrated_at_0.5": macro_f1(after_logits, 0.5),
                            "tuned_thresholds": macro_f1(after_logits, limits),
                        }
                    rows.append(row)
                    label = f"{method}{' per label' if per_label else ''}"
                    print(
                        f"| {name} | {mode} | {label} | {before['nll']:.4f} | {after['nll']:.4f} | "
                        f"{before['brier']:.4f} | {after['brier']:.4f} | {before['ece']:.4f} | {after['ece']:.4f} |"
                    )
    print("\nmulti-label decisions, macro-F1 on the test set:")
    print("| dataset | method | uncalibrated at 0.5 | calibrated at 0.5 | tuned thresholds |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        if "macro_f1" in row:
            f1 = row["macro_f1"]
            label = f"{row['method']}{' per label' if row['per_label'] else ''}"
            print(
                f"| {row['dataset']} | {label} | {f1['uncalibrated_at_0.5']:.4f} | {f1['calibrated_at_0.5']:.4f} "
                f"| {f1['tuned_thresholds']:.4f} |"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine_description("cpu"), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
