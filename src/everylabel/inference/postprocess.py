"""Everything after the model, in one order for every entry point (numpy only).

Logit steps run in place on each call's per-pass logits, for one or many calls at once (the server
finishes the calls that complete together):
  1. the embedding blend (`embedding_blend.py`), one embedding pass over all the calls' texts;
  2. the calibration (`calibration.py`), on calls of the decision mode it was fitted for.
Then `decode` turns each call's logits into results:
  3. windows and label groups merged into one score per label (sigmoid, or softmax over all labels,
     or within each top-level group of a hierarchy, for single-label calls);
  4. label orders averaged (label_order "sorted"/"robust");
  5. decisions: labels at or above their thresholds (multi-label) or the top label (of each group).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ..prompt import RequestPlan
from .calibration import Calibration
from .embedding_blend import EmbeddingBlend
from .prepared import Prepared
from .results import ClassificationResult, Evidence

Call = tuple[Prepared, list[np.ndarray]]  # a call and its per-pass logits (each pass's own labels)


class LogitStep(Protocol):
    name: str

    def __call__(self, calls: Sequence[Call]) -> None:
        """Transform each call's logits in place."""
        ...


class BlendStep:
    """`scale * (logit + weight * (cosine - mean cosine - offset))` per label (see `EmbeddingBlend`).

    A text is embedded once however many requests read it: its label's term does not depend on the
    label order."""

    name = "embedding blend"

    def __init__(self, blend: EmbeddingBlend, label_piece: Callable[[str, str | None], str]) -> None:
        self.blend = blend
        self.label_piece = label_piece

    def __call__(self, calls: Sequence[Call]) -> None:
        keys: dict[tuple[str, tuple[str, ...]], int] = {}  # (text, sorted label pieces) -> unique index
        wanted: list[list[tuple[int, list[str]]]] = []  # per call, per request: (unique index, pieces)
        for prepared, _ in calls:
            wanted.append([])
            for r in prepared.requests:
                pieces = [self.label_piece(n, d) for n, d in zip(r.labels, r.descriptions, strict=True)]
                key = keys.setdefault((r.text, tuple(sorted(pieces))), len(keys))
                wanted[-1].append((key, pieces))
        unique = list(keys)
        terms = self.blend.terms([text for text, _ in unique], [list(labels) for _, labels in unique])
        tables = [
            dict(zip(labels, values.tolist(), strict=True))
            for (_, labels), values in zip(unique, terms, strict=True)
        ]
        for (prepared, logits), per_request in zip(calls, wanted, strict=True):
            for index, item in enumerate(prepared.passes):
                key, pieces = per_request[item.request]
                start, end = prepared.plans[item.request].groups[item.group]
                own = np.array([tables[key][p] for p in pieces[start:end]], dtype=np.float32)
                logits[index] = self.blend.combine(logits[index], own)


class CalibrationStep:
    """Each label's logit -> scale * logit + bias, on calls in the mode the calibration was fitted for
    (a single-label fit is defined only up to a shift shared by a text's labels, so it says nothing
    about sigmoid scores, and a multi-label fit nothing about a softmax)."""

    name = "calibration"

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration

    def __call__(self, calls: Sequence[Call]) -> None:
        for prepared, logits in calls:
            if not self.calibration.applies_to(prepared.multi_label):
                continue
            for index in range(len(prepared.passes)):
                logits[index] = self.calibration.apply(prepared.pass_labels(index), logits[index])


def decode(prepared: Prepared, logits: Sequence[np.ndarray]) -> list[ClassificationResult]:
    """Scores of every label (windows and groups merged, orders averaged) and the decisions."""
    by_request: list[list[list[np.ndarray]]] = [
        [[] for _ in plan.groups] for plan in prepared.plans
    ]  # request -> label group -> windows
    for item, row in zip(prepared.passes, logits, strict=True):
        by_request[item.request][item.group].append(row)
    results = []
    for index, first in enumerate(prepared.request_of_text):
        if first is None:
            hierarchy = prepared.hierarchies[index]
            results.append(ClassificationResult(index, [], {}, empty=True, hierarchy=hierarchy))
            continue
        results.append(_text_result(prepared, by_request, index, first))
    return results


def _text_result(
    prepared: Prepared, by_request: list[list[list[np.ndarray]]], index: int, first: int
) -> ClassificationResult:
    choice = prepared.choice_groups[index] if prepared.choice_groups else None
    count = prepared.orders[index] if prepared.orders else 1
    merged = [
        merge(by_request[r], prepared.plans[r], prepared.requests[r].labels, prepared, choice)
        for r in range(first, first + count)
    ]
    names = prepared.requests[first].labels
    scores, windows = merged[0]
    if prepared.label_names is not None:
        names = prepared.label_names[index]
        orders = [prepared.requests[r].labels for r in range(first, first + count)]
        scores = average_orders(names, orders, [s for s, _ in merged])
    if choice is not None and not prepared.multi_label:  # the best label of each group, best first
        best_of_group: dict[int, str] = {}
        for i in sorted(range(len(names)), key=lambda i: -scores[i]):
            best_of_group.setdefault(choice[names[i]], names[i])
        predicted = list(best_of_group.values())
    else:
        predicted = decide(names, scores, prepared.thresholds[index], prepared.multi_label)
    plan = prepared.plans[first]
    chunked = prepared.truncation == "chunk" and any(len(w) > 1 for w in plan.windows)
    return ClassificationResult(
        index=index,
        labels=predicted,
        scores=dict(zip(names, scores.tolist(), strict=True)),
        text_tokens=plan.text_tokens,
        truncated=plan.cut_tokens > 0,
        cut_tokens=plan.cut_tokens,
        windows=max(len(w) for w in plan.windows),
        label_groups=len(plan.groups),
        evidence=evidence(prepared.requests[first].labels, windows, plan) if chunked else None,
        hierarchy=prepared.hierarchies[index],
        shortlist=prepared.shortlists[index] if prepared.shortlists else None,
    )


def merge(
    groups: list[list[np.ndarray]],
    plan: RequestPlan,
    names: list[str],
    prepared: Prepared,
    choice: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label scores over windows and label groups, and the window that gave each label its score.

    Multi-label: the sigmoid of each window's logit, aggregated ("max" or "mean"). Single-label: the
    logits aggregated, then a softmax over every label whichever pass scored it, or within each
    group of `choice` (label -> group)."""
    parts, best = [], []
    for windows in groups:
        stacked = np.stack(windows)  # (windows, labels in group)
        values = sigmoid(stacked) if prepared.multi_label else stacked
        parts.append(values.max(axis=0) if prepared.aggregation == "max" else values.mean(axis=0))
        best.append(values.argmax(axis=0))
    merged, where = np.concatenate(parts).astype(np.float64), np.concatenate(best)
    if not prepared.multi_label:
        group_of = np.array([choice[name] for name in names]) if choice else np.zeros(len(names), dtype=int)
        for group in np.unique(group_of):
            members = group_of == group
            merged[members] = softmax(merged[members])
    return merged, where


def sigmoid(values: np.ndarray) -> np.ndarray:
    """In float64: in float32 every logit over about 17 scores exactly 1.0, so a blended model's
    confident labels would tie and lose their ranking (float64 keeps it up to about 36)."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(values, dtype=np.float64)))


def softmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def decide(names: list[str], scores: np.ndarray, limits: dict[str, float], multi_label: bool) -> list[str]:
    """The predicted labels, best first: multi-label, those at or over their threshold; single-label,
    the top one."""
    ranked = sorted(range(len(names)), key=lambda i: -scores[i])
    if multi_label:
        return [names[i] for i in ranked if scores[i] >= limits[names[i]]]
    return [names[ranked[0]]]


def average_orders(names: list[str], orders: list[list[str]], scores: list[np.ndarray]) -> np.ndarray:
    """The mean over label orders of each label's score, in the order of `names`."""
    total = np.zeros(len(names))
    where = {name: i for i, name in enumerate(names)}
    for order, values in zip(orders, scores, strict=True):
        total[[where[name] for name in order]] += values
    return total / len(orders)


def evidence(names: list[str], windows: np.ndarray, plan: RequestPlan) -> dict[str, Evidence]:
    """For each label, the window (token and character span) that gave it its score."""
    out = {}
    label_group = [g for g, (a, b) in enumerate(plan.groups) for _ in range(a, b)]
    for name, window, group in zip(names, windows.tolist(), label_group, strict=True):
        start, end = plan.windows[group][window]
        chars = plan.char_spans
        char_start = chars[start][0] if chars else None
        char_end = chars[end - 1][1] if chars else None
        out[name] = Evidence(window, start, end, char_start, char_end)
    return out
