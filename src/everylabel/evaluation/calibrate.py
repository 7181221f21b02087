"""Fit a score calibration on labelled texts: temperature or Platt scaling, global or per label, and
per-label thresholds tuned for F1; measured on a held-out split of the texts.

`calibrate(classifier, texts, label_sets, gold, ...)` scores the texts once (uncalibrated logits,
the embedding blend included), holds out `holdout` of the texts, fits on the rest by maximum
likelihood (sigmoid per pair in multi-label mode, softmax over each text's labels in
single-label mode), and returns a `Calibration` whose `report` has NLL, Brier score and ECE
(15 bins) on the held-out texts before and after, and the macro-F1 of threshold tuning.
The global pair is pulled towards the identity (scale 1, bias 0; a Gaussian prior on log scale and
bias worth `IDENTITY_PRIOR_WEIGHT` observations), so a few dozen texts, separable or not, cannot
push the scale far: on little data the fit stays near the model's own scores, on much data the
likelihood decides. Per-label pairs are pulled towards the global pair the same way
(`PRIOR_WEIGHT`), so a rare label stays near the global fit.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..inference.calibration import Calibration, Method
from ..inference.engine import ClassifierEngine, TruncationWarning
from ..metrics import expected_calibration_error, f1_scores

PRIOR_WEIGHT = 5.0  # pseudo-observations pulling a label's (log scale, bias) to the global pair
IDENTITY_PRIOR_WEIGHT = 20.0  # pseudo-observations pulling the global (log scale, bias) to (0, 0)
THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
MIN_POSITIVES = 3  # a label gets its own threshold with at least this many gold texts in the fit split


@dataclass
class Scored:
    """Uncalibrated logits of labelled texts: per text, its labels, their logits and its gold labels."""

    labels: list[list[str]]
    logits: list[np.ndarray]  # (labels of the text,) float
    gold: list[set[str]]

    def subset(self, indices: Sequence[int]) -> Scored:
        return Scored(
            [self.labels[i] for i in indices],
            [self.logits[i] for i in indices],
            [self.gold[i] for i in indices],
        )


def collect_logits(
    classifier: ClassifierEngine,
    texts: Sequence[str],
    label_sets: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Scored:
    """Score every text against its labels once, without any calibration (empty texts are left out)."""
    prepared = classifier.prepare(list(texts), [list(labels) for labels in label_sets], truncation="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        logits = classifier.score(prepared, batch_size, progress, calibrated=False)
    per_request: list[list[np.ndarray]] = [[] for _ in prepared.requests]
    for item, row in zip(prepared.passes, logits, strict=True):  # truncation="warn": one window each
        per_request[item.request].append(row)  # passes come in group order
    kept = [(i, r) for i, r in enumerate(prepared.request_of_text) if r is not None]
    return Scored(
        [list(prepared.requests[r].labels) for _, r in kept],
        [np.concatenate(per_request[r]).astype(np.float64) for _, r in kept],
        [set(gold[i]) for i, _ in kept],
    )


def probabilities(logits: np.ndarray, single_label: bool) -> np.ndarray:
    if single_label:
        shifted = np.exp(logits - logits.max())
        return shifted / shifted.sum()
    return 1.0 / (1.0 + np.exp(-logits))


def scoring_metrics(data: Scored, single_label: bool, bins: int = 15) -> dict[str, float]:
    """NLL, Brier score and ECE: per (text, label) pair with sigmoids, per text (top label) with softmax."""
    nll, brier, confidences, outcomes = [], [], [], []
    for labels, logits, gold in zip(data.labels, data.logits, data.gold, strict=True):
        targets = np.array([name in gold for name in labels], dtype=np.float64)
        probs = np.clip(probabilities(logits, single_label), 1e-12, 1 - 1e-12)
        if single_label:
            if not targets.any():
                continue
            nll.append(-np.log(probs[targets.argmax()]))
            brier.append(((probs - targets) ** 2).sum())
            confidences.append(float(probs.max()))
            outcomes.append(bool(targets[probs.argmax()]))
        else:
            nll.extend(-(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)))
            brier.extend((probs - targets) ** 2)
            confidences.extend(probs.tolist())
            outcomes.extend(targets.astype(bool).tolist())
    return {
        "nll": float(np.mean(nll)) if nll else 0.0,
        "brier": float(np.mean(brier)) if brier else 0.0,
        "ece": expected_calibration_error(confidences, outcomes, bins),
    }


def fit_scaling(
    data: Scored, method: Method, per_label: bool, single_label: bool
) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """(scale, bias, per label (scale, bias)) minimising the NLL of the calibrated logits."""
    names = sorted({name for labels in data.labels for name in labels})
    index = {name: i for i, name in enumerate(names)}
    width = max(len(labels) for labels in data.labels)
    count = len(data.labels)
    z = torch.zeros(count, width, dtype=torch.float64)  # (texts, most labels)
    y = torch.zeros(count, width, dtype=torch.float64)
    mask = torch.zeros(count, width, dtype=torch.bool)
    ids = torch.zeros(count, width, dtype=torch.long)
    for row, (labels, logits, gold) in enumerate(zip(data.labels, data.logits, data.gold, strict=True)):
        n = len(labels)
        z[row, :n] = torch.from_numpy(logits)
        y[row, :n] = torch.tensor([name in gold for name in labels], dtype=torch.float64)
        mask[row, :n] = True
        ids[row, :n] = torch.tensor([index[name] for name in labels])
    if single_label:  # texts without a gold label among their candidates say nothing to a softmax
        keep = (y * mask).sum(dim=1) > 0
        z, y, mask, ids = z[keep], y[keep], mask[keep], ids[keep]
    log_scale = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=method == "platt")
    own_scale = torch.zeros(len(names), dtype=torch.float64, requires_grad=per_label)
    own_bias = torch.zeros(len(names), dtype=torch.float64, requires_grad=per_label and method == "platt")
    params = [p for p in (log_scale, bias, own_scale, own_bias) if p.requires_grad]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=500, line_search_fn="strong_wolfe")
    observations = float(mask.sum()) if not single_label else float(len(z))

    def loss_fn() -> torch.Tensor:
        optimizer.zero_grad()
        calibrated = torch.exp(log_scale + own_scale[ids]) * z + bias + own_bias[ids]  # (texts, labels)
        if single_label:
            log_probs = torch.log_softmax(calibrated.masked_fill(~mask, float("-inf")), dim=1)
            nll = -(log_probs.masked_fill(~mask, 0.0) * y).sum() / observations
        else:
            pairs = torch.nn.functional.binary_cross_entropy_with_logits(calibrated, y, reduction="none")
            nll = (pairs * mask).sum() / observations
        prior = PRIOR_WEIGHT * (own_scale.pow(2).sum() + own_bias.pow(2).sum()) / observations
        prior = prior + IDENTITY_PRIOR_WEIGHT * (log_scale.pow(2).sum() + bias.pow(2).sum()) / observations
        loss = nll + prior
        loss.backward()
        return loss

    optimizer.step(loss_fn)
    log_scale, bias, own_scale, own_bias = (p.detach() for p in (log_scale, bias, own_scale, own_bias))
    scale, shift = float(torch.exp(log_scale)), float(bias)
    own: dict[str, tuple[float, float]] = {}
    if per_label:
        for name, i in index.items():
            own[name] = (float(torch.exp(log_scale + own_scale[i])), float(bias + own_bias[i]))
    return scale, shift, own


def tune_thresholds(data: Scored) -> tuple[dict[str, float], float]:
    """Per-label thresholds maximising each label's F1 (labels with `MIN_POSITIVES` gold texts), and a
    default one maximising micro-F1 over all pairs. Ties go to the threshold nearest 0.5."""
    by_label: dict[str, tuple[list[float], list[bool]]] = {}
    for labels, logits, gold in zip(data.labels, data.logits, data.gold, strict=True):
        for name, prob in zip(labels, probabilities(logits, False), strict=True):
            scores, truth = by_label.setdefault(name, ([], []))
            scores.append(float(prob))
            truth.append(name in gold)
    every = ([s for v in by_label.values() for s in v[0]], [t for v in by_label.values() for t in v[1]])
    default = _best_threshold(*every)
    tuned = {
        name: _best_threshold(*pairs) for name, pairs in by_label.items() if sum(pairs[1]) >= MIN_POSITIVES
    }
    return tuned, default


def _best_threshold(scores: list[float], truth: list[bool]) -> float:
    s = np.asarray(scores)[:, None]  # (pairs, 1)
    t = np.asarray(truth)[:, None]
    predicted = s >= THRESHOLD_GRID[None, :]  # (pairs, grid)
    tp = (predicted & t).sum(axis=0)
    fp = (predicted & ~t).sum(axis=0)
    fn = (~predicted & t).sum(axis=0)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    return float(THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]])


def calibrated(data: Scored, calibration: Calibration) -> Scored:
    return Scored(
        data.labels,
        [
            calibration.apply(names, z).astype(np.float64)
            for names, z in zip(data.labels, data.logits, strict=True)
        ],
        data.gold,
    )


def macro_f1(data: Scored, thresholds: float | dict[str, float]) -> float:
    """Multi-label decisions (sigmoid >= threshold) against the gold sets."""
    predicted = []
    for labels, logits in zip(data.labels, data.logits, strict=True):
        probs = probabilities(logits, False)
        limits = [thresholds if isinstance(thresholds, float) else thresholds[n] for n in labels]
        predicted.append([n for n, p, t in zip(labels, probs, limits, strict=True) if p >= t])
    names = {name for labels in data.labels for name in labels}
    return f1_scores([sorted(g) for g in data.gold], predicted, names)["macro_f1"]


def fit_calibration(
    scored: Scored,
    *,
    method: Method = "temperature",
    per_label: bool = False,
    thresholds: bool = False,
    single_label: bool = False,
    holdout: float = 0.2,
    seed: int = 0,
) -> Calibration:
    """Fit on all but a seeded `holdout` share of the texts; the report measures the held-out ones."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout: expected a share in [0, 1), got {holdout!r}")
    order = list(range(len(scored.labels)))
    random.Random(seed).shuffle(order)
    held = sorted(order[: round(holdout * len(order))])
    fit = scored.subset(sorted(order[len(held) :]))
    if not fit.labels:
        raise ValueError("no labelled texts to fit on")
    scale, bias, own = fit_scaling(fit, method, per_label, single_label)
    mode = "single-label" if single_label else "multi-label"
    calibration = Calibration(method, mode, scale, bias, own)
    tuned: dict[str, float] = {}
    default: float | None = None
    if thresholds:
        tuned, default = tune_thresholds(calibrated(fit, calibration))
    report: dict[str, Any] = {"texts_fit": len(fit.labels), "texts_held_out": len(held), "seed": seed}
    if held:
        test = scored.subset(held)
        after = calibrated(test, calibration)
        report["before"] = scoring_metrics(test, single_label)
        report["after"] = scoring_metrics(after, single_label)
        report["macro_f1_multi_label"] = {
            "uncalibrated_at_0.5": macro_f1(test, 0.5),
            "calibrated_at_0.5": macro_f1(after, 0.5),
        }
        if thresholds:
            limits = {n: tuned.get(n, default or 0.5) for labels in test.labels for n in labels}
            report["macro_f1_multi_label"]["tuned_thresholds"] = macro_f1(after, limits)
    return Calibration(method, mode, scale, bias, own, tuned, default, report)


def worse_than_uncalibrated(calibration: Calibration) -> str | None:
    """Why the held-out report says the calibration hurts (a higher NLL than the model's own
    scores), or None: it helps, or there was no held-out share to tell."""
    before, after = calibration.report.get("before"), calibration.report.get("after")
    if not before or not after or after["nll"] <= before["nll"]:
        return None
    nll = f"held-out NLL rose from {before['nll']:.4g} to {after['nll']:.4g}"
    return f"{nll} (ECE {before['ece']:.3g} -> {after['ece']:.3g})"
