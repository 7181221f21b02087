"""Measure a scorer on a labelled set: accuracy, micro/macro/weighted F1, per-label report, ECE."""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from ..metrics import expected_calibration_error, f1_scores, per_label_report
from .datasets import LabelledSet
from .scorers import Scorer


def evaluate(
    scorer: Scorer,
    data: LabelledSet,
    multi_label: bool | None = None,
    threshold: float = 0.5,
    chunk: int = 256,
    progress: bool | None = None,
    permutations: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Score every text against the set's labels and compare the decisions with the gold labels.

    With `permutations` P >= 2, the texts are scored again with the labels in P - 1 more seeded
    random orders: `label_order` reports how often the top label is not the same in all P orders
    (flip rate) and how far each label's score moves (spread: max - min over the orders).
    """
    multi = data.multi_label if multi_label is None else multi_label
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(data.texts), unit="text", desc=f"eval {data.name}")
    scores: list[dict[str, float]] = []
    start = time.perf_counter()
    for begin in range(0, len(data.texts), chunk):
        part = data.texts[begin : begin + chunk]
        scores += scorer.score(part, data.labels, multi)
        if bar is not None:
            bar.update(len(part))
    elapsed = time.perf_counter() - start
    if bar is not None:
        bar.close()

    if multi:
        predicted = [[label for label in data.labels if row[label] >= threshold] for row in scores]
        confidences = [row[label] for row in scores for label in data.labels]
        outcomes = [
            label in gold for row, gold in zip(scores, data.gold, strict=True) for label in data.labels
        ]
    else:
        predicted = [[max(data.labels, key=row.__getitem__)] for row in scores]
        confidences = [row[p[0]] for row, p in zip(scores, predicted, strict=True)]
        outcomes = [p[0] in gold for p, gold in zip(predicted, data.gold, strict=True)]
    metrics = f1_scores(data.gold, predicted, data.labels)
    metrics["ece"] = expected_calibration_error(confidences, outcomes)
    order_report = None
    if permutations >= 2:
        order_report = label_order_report(scorer, data, multi, scores, permutations, seed, chunk)
    return {
        "model": scorer.name,
        "dataset": data.name,
        "texts": len(data.texts),
        "labels": len(data.labels),
        "multi_label": multi,
        "metrics": metrics,
        "per_label": per_label_report(data.gold, predicted, data.labels),
        "seconds": elapsed,
        "truncated_texts": getattr(scorer, "cut_texts", None),
        "dtype": getattr(scorer, "dtype", None),
        "examples_per_s": len(data.texts) / elapsed if elapsed > 0 else 0.0,
        "label_order": order_report,
    }


def label_order_report(
    scorer: Scorer,
    data: LabelledSet,
    multi: bool,
    first: list[dict[str, float]],
    permutations: int,
    seed: int,
    chunk: int = 256,
) -> dict[str, Any]:
    """Flip rate and score spread over `permutations` orders of the labels (`first`: the given order)."""
    rng = random.Random(seed)
    runs = [first]
    start = time.perf_counter()
    for _ in range(permutations - 1):
        order = list(data.labels)
        rng.shuffle(order)
        rows: list[dict[str, float]] = []
        for begin in range(0, len(data.texts), chunk):
            rows += scorer.score(data.texts[begin : begin + chunk], order, multi)
        runs.append(rows)
    flips = 0
    spreads: list[float] = []
    for per_order in zip(*runs, strict=True):
        tops = {max(data.labels, key=row.__getitem__) for row in per_order}
        flips += len(tops) > 1
        spreads += [max(r[n] for r in per_order) - min(r[n] for r in per_order) for n in data.labels]
    return {
        "permutations": permutations,
        "flip_rate": flips / max(len(data.texts), 1),
        "mean_spread": sum(spreads) / max(len(spreads), 1),
        "max_spread": max(spreads, default=0.0),
        "seconds": time.perf_counter() - start,
    }


def format_report(report: dict[str, Any], per_label: bool = True) -> str:
    """A readable table of one evaluation."""
    m = report["metrics"]
    lines = [
        f"model:   {report['model']}" + (f" ({report['dtype']})" if report.get("dtype") else ""),
        f"dataset: {report['dataset']} ({report['texts']} texts, {report['labels']} labels, "
        f"{'multi' if report['multi_label'] else 'single'}-label)",
        f"macro-F1 {m['macro_f1']:.4f} | micro-F1 {m['micro_f1']:.4f} | weighted-F1 {m['weighted_f1']:.4f} | "
        f"accuracy {m['accuracy']:.4f} | ECE {m['ece']:.4f} | {report['examples_per_s']:.1f} texts/s",
    ]
    order = report.get("label_order")
    if order:
        lines.append(
            f"label order: top label flips on {100 * order['flip_rate']:.1f}% of texts over "
            f"{order['permutations']} orders | score spread mean {order['mean_spread']:.4f}, "
            f"max {order['max_spread']:.4f}"
        )
    if per_label:
        width = max(len(name) for name in report["per_label"])
        lines.append(f"{'label':<{width}}  precision  recall     f1  support")
        for name, row in report["per_label"].items():
            numbers = (
                f"{row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:6.4f} {int(row['support']):8d}"
            )
            lines.append(f"{name:<{width}}  {numbers}")
    return "\n".join(lines)
