"""Choose a model's embedding blend (see `inference/embedding_blend.py`) and write it to its config.

The weight is chosen on labelled training-split samples by the mean macro-F1 of the top label
(never on a test set); the offset is then fitted by maximum likelihood on held-out records of
the model's own training sources (multi-label, every label a yes/no decision), together with a
scale, so that the blended scores are calibrated probabilities there; neither changes a ranking.
Scores are computed once per set: the model's logits without a blend, and the embedding cosines.

    python recipes/fit_embedding_blend.py src/everylabel/default_model --write
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.inference.embedding_blend import EmbeddingBlend
from everylabel.inference.retrieval import LABEL_TEMPLATE, EmbeddingRetriever
from everylabel.metrics import f1_scores
from everylabel.paths import MINILM_NAME
from everylabel.training.data import load_records

WEIGHTS = (0, 10, 20, 30, 40, 50, 60, 75, 100)
SELECTION = ("20newsgroups:train:2000", "reuters_r8:train:2000")


def model_logits(clf: Classifier, texts: list[str], label_sets: list[list[str]]) -> list[np.ndarray]:
    """The model's own logits (no blend), one array per text over its labels."""
    results = clf.classify(texts, label_sets, multi_label=True, truncation="warn", progress=False)
    out = []
    for result, labels in zip(results, label_sets, strict=True):
        p = np.clip(np.array([result.scores[label] for label in labels], dtype=np.float64), 1e-12, 1 - 1e-12)
        out.append(np.log(p / (1 - p)))
    return out


def macro_f1(logits: list[np.ndarray], cosines: list[np.ndarray], weight: float, gold, labels) -> float:
    predicted = [[labels[int(np.argmax(u + weight * c))]] for u, c in zip(logits, cosines, strict=True)]
    return f1_scores(gold, predicted, labels)["macro_f1"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def fit_calibration(
    logits: np.ndarray, cosines: np.ndarray, targets: np.ndarray, weight: float
) -> tuple[float, float]:
    """(offset, scale) minimising the binary cross-entropy of sigmoid(scale * (u + weight * (c - offset))),
    c the centred cosines: a logistic regression on z = u + weight * c with a slope and an intercept."""
    from scipy.optimize import minimize

    z = logits + weight * cosines

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        x = theta[0] * z + theta[1]
        value = np.mean(np.logaddexp(0.0, x) - targets * x)  # binary cross-entropy, stable
        residual = sigmoid(x) - targets
        return float(value), np.array([np.mean(residual * z), np.mean(residual)])

    fitted = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    slope, intercept = fitted.x
    if not fitted.success or slope <= 0:
        raise SystemExit(f"calibration fit failed ({fitted.message}; scale {slope})")
    return -intercept / (slope * weight) if weight else 0.0, slope


def choose_weight(table: dict[str, list[float]]) -> float:
    """Print the selection table (macro-F1 per sample and weight); the weight of the best mean."""
    print("| weight | " + " | ".join(table) + " | mean |")
    print("|---:|" + "---:|" * (len(table) + 1))
    means = []
    for i, weight in enumerate(WEIGHTS):
        row = [table[spec][i] for spec in table]
        means.append(sum(row) / len(row))
        print(f"| {weight} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {means[-1]:.4f} |")
    return WEIGHTS[int(np.argmax(means))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a GLiClass checkpoint folder (--write updates its config.json)")
    parser.add_argument("--select", nargs="+", default=list(SELECTION), help="NAME:SPLIT:LIMIT samples")
    parser.add_argument("--held-out", default="data/default-eval.jsonl", help="training-source records")
    parser.add_argument("--embedding-model", default=MINILM_NAME)
    parser.add_argument("--weight", type=float, help="skip the selection and fit the offset for this weight")
    parser.add_argument("--write", action="store_true", help="write the chosen blend into config.json")
    parser.add_argument(
        "--background",
        type=Path,
        help="centre against these fixed labels, not the call's: a JSON file with a `background` list"
        " (such as the distillation teacher's data/default-mix.jsonl.teacher.json)",
    )
    args = parser.parse_args()

    background = json.loads(args.background.read_text())["background"] if args.background else None
    clf = Classifier.from_pretrained(args.model, device="cpu", backend="torch", embedding_blend=False)
    embedder = EmbeddingRetriever(args.embedding_model)
    table: dict[str, list[float]] = {}
    for spec in [] if args.weight is not None else args.select:
        name, split, limit = spec.split(":")
        data = load_named(name, split=split, limit=int(limit))
        sets = [data.labels] * len(data.texts)
        logits = model_logits(clf, data.texts, sets)
        cosines = embedder.rank(data.texts, sets)
        table[spec] = [macro_f1(logits, cosines, w, data.gold, data.labels) for w in WEIGHTS]
        cos_only = f1_scores(data.gold, [[data.labels[int(np.argmax(c))]] for c in cosines], data.labels)
        print(f"{spec}: embedding alone {cos_only['macro_f1']:.4f}", flush=True)
    weight = args.weight if args.weight is not None else choose_weight(table)

    records, _ = load_records(args.held_out)
    sets = [r.all_labels for r in records]
    texts = [r.text for r in records]
    logits = np.concatenate(model_logits(clf, texts, sets))
    # The centred cosines as the blend computes them (weight 1, no offset); a ranking does not
    # change with the centring, so the weight chosen above holds for a background too.
    centring = EmbeddingBlend(embedder, weight=1.0, offset=0.0, scale=1.0, background=background)
    cosines = np.concatenate(centring.terms(texts, sets))
    targets = np.array([r.true_labels.get(label, 0.0) for r in records for label in r.all_labels])
    offset, scale = fit_calibration(logits, cosines, targets, weight)
    offset, scale = round(offset, 4), round(scale, 4)
    for name, z in (("model alone", logits), ("blend", scale * (logits + weight * (cosines - offset)))):
        p = sigmoid(z)
        bce = -np.mean(targets * np.log(p + 1e-12) + (1 - targets) * np.log(1 - p + 1e-12))
        decided = p >= 0.5
        tp = float(np.sum(decided * targets))
        f1 = 2 * tp / (decided.sum() + targets.sum()) if decided.sum() + targets.sum() else 0.0
        print(f"held-out {name}: binary cross-entropy {bce:.4f}, micro-F1 at 0.5 {f1:.4f}")
    blend = {
        "model": args.embedding_model,
        "template": LABEL_TEMPLATE,
        "weight": weight,
        "offset": offset,
        "scale": scale,
    }
    if background is not None:
        blend["background"] = background
    print("embedding_blend:", json.dumps(blend))
    if args.write:
        path = Path(args.model) / "config.json"
        config = json.loads(path.read_text())
        config["embedding_blend"] = blend
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        print(f"written to {path}")
    return 0 if math.isfinite(offset) else 1


if __name__ == "__main__":
    raise SystemExit(main())
