"""Choose a model's embedding blend (see `inference/embedding_blend.py`) and write it to its config.

The weight is chosen on labelled training-split samples by the mean macro-F1 of the top label
(never on a test set): the largest weight within half a point of the best mean, since the
embedding term is the label-independent part of the score (it does not move with the other
candidates or their order). The offset is then fitted by maximum likelihood, together with a
scale; neither changes a ranking. With `--one-label FILE` (topic -> plainly worded texts, such as
recipes/obvious-dev.json) it is fitted on one-label calls: every text asked about each topic alone,
its own topic a yes and every other a no, the yeses weighing as much as the noes, so that "is this
text about X?" is answered at 0.5 at even odds; the same texts asked about all topics at once then
give the share of exact label sets at 0.5. Without it, on held-out records of the model's own
training sources (multi-label, every label a yes/no decision). Scores are computed once per set:
the model's logits without a blend, and the embedding cosines.

    python recipes/fit_embedding_blend.py src/everylabel/default_model \
        --background recipes/blend-background.json --one-label recipes/obvious-dev.json --write
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from everylabel import Classifier
from everylabel.data_recipes.distillation import fit_calibration
from everylabel.evaluation.datasets import load_named
from everylabel.inference.embedding_blend import EmbeddingBlend
from everylabel.inference.retrieval import LABEL_TEMPLATE, EmbeddingRetriever
from everylabel.metrics import f1_scores
from everylabel.paths import MINILM_NAME
from everylabel.training.data import load_records

WEIGHTS = (0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100)
# Weights whose mean macro-F1 on the selection samples is within this of the best count as tied.
TIED = 0.005
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


def blended(
    logits: np.ndarray, cosines: np.ndarray, weight: float, offset: float, scale: float
) -> np.ndarray:
    """The blend's logits from the model's logits and the centred cosines (weight 1, no offset)."""
    return scale * (logits + weight * (cosines - offset))


def fit_blend_calibration(
    logits: np.ndarray, cosines: np.ndarray, targets: np.ndarray, weight: float, balanced: bool
) -> tuple[float, float]:
    """(offset, scale) of the maximum-likelihood sigmoid(scale * (u + weight * (c - offset))), c the
    centred cosines: a logistic regression on z = u + weight * c (slope = scale, intercept =
    -scale * weight * offset)."""
    slope, intercept = fit_calibration(logits + weight * cosines, targets, balanced=balanced)
    if slope <= 0:
        raise SystemExit(f"calibration fit failed (scale {slope})")
    return -intercept / (slope * weight) if weight else 0.0, slope


def held_out_calls(path: str) -> tuple[list[str], list[list[str]], np.ndarray]:
    """(texts, label sets, targets) of held-out training-source records, every label a decision."""
    records, _ = load_records(path)
    targets = np.array([r.true_labels.get(label, 0.0) for r in records for label in r.all_labels])
    return [r.text for r in records], [r.all_labels for r in records], targets


def worded_texts(path: Path | Sequence[Path]) -> tuple[list[str], list[str], list[str]]:
    """(topics, texts, each text's own topic) of a topic -> texts file, texts in the file's order;
    of several files, each topic's texts from the first file on (topics in the first file's order)."""
    groups: dict[str, list[str]] = {}
    for one in [path] if isinstance(path, Path) else path:
        for topic, items in json.loads(one.read_text()).items():
            groups.setdefault(topic, []).extend(items)
    texts = [text for items in groups.values() for text in items]
    gold = [topic for topic, items in groups.items() for _ in items]
    return list(groups), texts, gold


def one_label_calls(path: Path | Sequence[Path]) -> tuple[list[str], list[list[str]], np.ndarray]:
    """(texts, label sets, targets): every text of a topic -> texts file asked about each topic alone."""
    topics, texts, gold = worded_texts(path)
    calls = [
        (text, topic, float(topic == own)) for text, own in zip(texts, gold, strict=True) for topic in topics
    ]
    return [c[0] for c in calls], [[c[1]] for c in calls], np.array([c[2] for c in calls])


def exact_sets(
    clf: Classifier, centring: EmbeddingBlend, path: Path, weight: float, offset: float, scale: float
) -> float:
    """The share of texts of a topic -> texts file whose blended labels at 0.5, all topics asked at
    once, are exactly their own topic."""
    topics, texts, gold = worded_texts(path)
    sets = [topics] * len(texts)
    logits, cosines = model_logits(clf, texts, sets), centring.terms(texts, sets)
    said = [
        [topics[i] for i in np.flatnonzero(blended(u, c, weight, offset, scale) >= 0)]
        for u, c in zip(logits, cosines, strict=True)
    ]
    return float(np.mean([labels == [own] for labels, own in zip(said, gold, strict=True)]))


def weight_table(clf: Classifier, embedder: EmbeddingRetriever, specs: list[str]) -> dict[str, list[float]]:
    """Macro-F1 of the top label for every weight of `WEIGHTS`, per NAME:SPLIT:LIMIT sample."""
    table: dict[str, list[float]] = {}
    for spec in specs:
        name, split, limit = spec.split(":")
        data = load_named(name, split=split, limit=int(limit))
        sets = [data.labels] * len(data.texts)
        logits = model_logits(clf, data.texts, sets)
        cosines = embedder.rank(data.texts, sets)
        table[spec] = [macro_f1(logits, cosines, w, data.gold, data.labels) for w in WEIGHTS]
        cos_only = f1_scores(data.gold, [[data.labels[int(np.argmax(c))]] for c in cosines], data.labels)
        print(f"{spec}: embedding alone {cos_only['macro_f1']:.4f}", flush=True)
    return table


def print_table(table: dict[str, list[float]]) -> list[float]:
    """Print a weight table (macro-F1 per sample and weight); the mean of each weight's row."""
    print("| weight | " + " | ".join(table) + " | mean |")
    print("|---:|" + "---:|" * (len(table) + 1))
    means = []
    for i, weight in enumerate(WEIGHTS):
        row = [table[spec][i] for spec in table]
        means.append(sum(row) / len(row))
        print(f"| {weight} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {means[-1]:.4f} |")
    return means


def choose_weight(table: dict[str, list[float]]) -> float:
    """Print the selection table; the largest weight whose mean is within `TIED` of the best mean."""
    means = print_table(table)
    return max(w for w, mean in zip(WEIGHTS, means, strict=True) if mean >= max(means) - TIED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a GLiClass checkpoint folder (--write updates its config.json)")
    parser.add_argument("--select", nargs="+", default=list(SELECTION), help="NAME:SPLIT:LIMIT samples")
    parser.add_argument(
        "--report",
        nargs="+",
        default=[],
        help="NAME:SPLIT:LIMIT sets to print the weight table on",
    )
    parser.add_argument("--held-out", default="data/default-eval.jsonl", help="training-source records")
    parser.add_argument(
        "--one-label", type=Path, help="fit the offset on one-label calls: a JSON file, topic -> texts"
    )
    parser.add_argument("--embedding-model", default=MINILM_NAME)
    parser.add_argument("--template", default=LABEL_TEMPLATE, help="the label's sentence for the embedding")
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
    embedder = EmbeddingRetriever(args.embedding_model, template=args.template)
    if args.weight is not None:
        weight = args.weight
    else:
        weight = choose_weight(weight_table(clf, embedder, args.select))
    if args.report:
        print("for the record, not for choosing:")
        print_table(weight_table(clf, embedder, args.report))

    # The centred cosines as the blend computes them (weight 1, no offset); a ranking does not
    # change with the centring, so the weight chosen above holds for a background too.
    centring = EmbeddingBlend(embedder, weight=1.0, offset=0.0, scale=1.0, background=background)
    if args.one_label is not None:
        what, (texts, sets, targets) = "one-label calls", one_label_calls(args.one_label)
    else:
        what, (texts, sets, targets) = "held-out", held_out_calls(args.held_out)
    logits = np.concatenate(model_logits(clf, texts, sets))
    cosines = np.concatenate(centring.terms(texts, sets))
    offset, scale = fit_blend_calibration(logits, cosines, targets, weight, args.one_label is not None)
    offset, scale = round(offset, 4), round(scale, 4)
    for name, z in (("model alone", logits), ("blend", blended(logits, cosines, weight, offset, scale))):
        p = sigmoid(z)
        bce = -np.mean(targets * np.log(p + 1e-12) + (1 - targets) * np.log(1 - p + 1e-12))
        decided = p >= 0.5
        tp = float(np.sum(decided * targets))
        f1 = 2 * tp / (decided.sum() + targets.sum()) if decided.sum() + targets.sum() else 0.0
        yes, no = np.mean(decided[targets > 0.5]), np.mean(~decided[targets < 0.5])
        print(
            f"{what}, {name}: binary cross-entropy {bce:.4f}, micro-F1 at 0.5 {f1:.4f}, "
            f"yes at >= 0.5 {yes:.1%}, no under 0.5 {no:.1%}"
        )
    if args.one_label is not None:
        share = exact_sets(clf, centring, args.one_label, weight, offset, scale)
        print(f"all topics at once, blend: exact label sets at 0.5 {share:.1%}")
    blend = {
        "model": args.embedding_model,
        "template": args.template,
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
