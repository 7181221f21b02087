"""Classification metrics over label names, for single- and multi-label decisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def f1_scores(
    gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]], labels: Iterable[str] | None = None
) -> dict[str, float]:
    """Micro, macro and weighted F1 (and precision/recall) over label names.

    Each item is the set of labels of one example (one label for single-label tasks). Macro-F1
    averages per-label F1 over `labels` (default: every label seen in gold or predictions);
    weighted-F1 weights it by the label's gold count. Accuracy is exact-match of the label sets.
    """
    gold_sets = [set(g) for g in gold]
    pred_sets = [set(p) for p in predicted]
    if len(gold_sets) != len(pred_sets):
        raise ValueError(f"gold has {len(gold_sets)} examples, predictions {len(pred_sets)}")
    names = sorted(set(labels) if labels is not None else set().union(*gold_sets, *pred_sets))
    tp = dict.fromkeys(names, 0)
    fp = dict.fromkeys(names, 0)
    fn = dict.fromkeys(names, 0)
    for g, p in zip(gold_sets, pred_sets, strict=True):
        for label in p & g:
            if label in tp:
                tp[label] += 1
        for label in p - g:
            if label in fp:
                fp[label] += 1
        for label in g - p:
            if label in fn:
                fn[label] += 1
    per_label = {name: _f1(tp[name], fp[name], fn[name]) for name in names}
    support = {name: tp[name] + fn[name] for name in names}
    total_support = sum(support.values())
    micro_tp, micro_fp, micro_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "accuracy": sum(g == p for g, p in zip(gold_sets, pred_sets, strict=True)) / max(len(gold_sets), 1),
        "micro_f1": _f1(micro_tp, micro_fp, micro_fn),
        "macro_f1": sum(per_label.values()) / max(len(names), 1),
        "weighted_f1": sum(per_label[n] * support[n] for n in names) / total_support
        if total_support
        else 0.0,
        "micro_precision": micro_tp / (micro_tp + micro_fp) if micro_tp + micro_fp else 0.0,
        "micro_recall": micro_tp / (micro_tp + micro_fn) if micro_tp + micro_fn else 0.0,
    }


def per_label_report(
    gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]], labels: Iterable[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label."""
    out = {}
    gold_sets = [set(g) for g in gold]
    pred_sets = [set(p) for p in predicted]
    for name in labels:
        tp = sum(name in g and name in p for g, p in zip(gold_sets, pred_sets, strict=True))
        fp = sum(name not in g and name in p for g, p in zip(gold_sets, pred_sets, strict=True))
        fn = sum(name in g and name not in p for g, p in zip(gold_sets, pred_sets, strict=True))
        out[name] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": _f1(tp, fp, fn),
            "support": float(tp + fn),
        }
    return out


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins.

    Single-label: one (top score, top label is right) pair per text. Multi-label: one
    (score, label is gold) pair per text and label, with the score as the confidence in "yes".
    """
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences for {len(correct)} outcomes")
    if not confidences:
        return 0.0
    totals = [0] * bins
    confidence_sums = [0.0] * bins
    correct_sums = [0.0] * bins
    for confidence, right in zip(confidences, correct, strict=True):
        index = min(int(confidence * bins), bins - 1)
        totals[index] += 1
        confidence_sums[index] += confidence
        correct_sums[index] += float(right)
    count = len(confidences)
    return sum(abs(confidence_sums[b] - correct_sums[b]) / count for b in range(bins) if totals[b])
