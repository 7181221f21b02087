"""Measure the one-pass bi-encoder candidate (recipes/default-model-bi.yaml).

    .venv/bin/python recipes/eval_bi_candidate.py runs/default-model-bi/final [--split test]

Prints single-label macro-F1 on 20 Newsgroups, Reuters R8 and Rotten Tomatoes (`--split train`: the
selection samples, 2,000 texts each; `test`: 20 Newsgroups' seeded 3,000 and the whole R8 and
Rotten Tomatoes tests), then the obvious-cases suite of tests/obvious_cases.py in every mode. The
bi-encoder's scores are `sigmoid(logit_scale * cosine)`, uncalibrated; for the one-label and
multi-label modes a Platt scale and bias are fitted on the fit texts' one-label calls
(recipes/obvious-dev.json, yeses and noes weighing the same), as the blend's offset is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fit_embedding_blend import model_logits, one_label_calls, sigmoid
from tests.obvious_cases import SENTIMENT, TOPICS, cases

from everylabel import Classifier
from everylabel.data_recipes.distillation import fit_calibration
from everylabel.evaluation.datasets import load_named
from everylabel.metrics import f1_scores

SETS = ("20newsgroups", "reuters_r8", "rotten_tomatoes")
DEV = Path(__file__).resolve().parent / "obvious-dev.json"


def macro_f1s(clf: Classifier, split: str) -> dict[str, float]:
    out = {}
    for name in SETS:
        limit = 2000 if split == "train" else (3000 if name == "20newsgroups" else None)
        data = load_named(name, split=split, limit=limit)
        rows = model_logits(clf, data.texts, [data.labels] * len(data.texts))
        predicted = [[data.labels[int(np.argmax(row))]] for row in rows]
        out[name] = round(f1_scores(data.gold, predicted, data.labels)["macro_f1"], 4)
    return out


def share(hits: list) -> float:
    return round(float(np.mean(hits)), 3)


def obvious_cases(clf: Classifier) -> dict[str, float]:
    texts, sets, targets = one_label_calls(DEV)
    slope, bias = fit_calibration(np.concatenate(model_logits(clf, texts, sets)), targets, balanced=True)
    topics = list(TOPICS)
    pairs = cases(TOPICS)
    texts, gold = [t for t, _ in pairs], [g for _, g in pairs]
    unrelated = [topics[(topics.index(g) + 1) % len(topics)] for g in gold]
    every = model_logits(clf, texts, [topics] * len(texts))
    own = sigmoid(slope * np.concatenate(model_logits(clf, texts, [[g] for g in gold])) + bias)
    other = sigmoid(slope * np.concatenate(model_logits(clf, texts, [[u] for u in unrelated])) + bias)
    said = [[topics[j] for j in np.flatnonzero(sigmoid(slope * row + bias) >= 0.5)] for row in every]
    feelings, sentiment = cases(SENTIMENT), list(SENTIMENT)
    polarity = model_logits(clf, [t for t, _ in feelings], [sentiment] * len(feelings))
    return {
        "platt_slope": round(slope, 3),
        "platt_bias": round(bias, 3),
        "single_label": share([topics[int(np.argmax(r))] == g for r, g in zip(every, gold, strict=True)]),
        "one_label_own_at_least_half": share(list(own >= 0.5)),
        "one_label_unrelated_under_half": share(list(other < 0.5)),
        "multi_label_exact_set": share([s == [g] for s, g in zip(said, gold, strict=True)]),
        "sentiment_single_label": share(
            [sentiment[int(np.argmax(r))] == g for r, (_, g) in zip(polarity, feelings, strict=True)]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    args = parser.parse_args()
    clf = Classifier.from_pretrained(args.model, device="cpu", backend="torch")
    print(json.dumps({"model": args.model, "split": args.split, **macro_f1s(clf, args.split)}), flush=True)
    print(json.dumps({"model": args.model, **obvious_cases(clf)}), flush=True)


if __name__ == "__main__":
    main()
