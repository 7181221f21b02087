"""Measure a one-pass bi-encoder (recipes/default-model-bi.yaml; the default model).

    .venv/bin/python recipes/eval_bi_encoder.py src/everylabel/default_model [--split test]

Prints single-label macro-F1 on 20 Newsgroups, Reuters R8 and Rotten Tomatoes (`--split train`: the
selection samples, 2,000 texts each; `test`: 20 Newsgroups' seeded 3,000 and the whole R8 and
Rotten Tomatoes tests), then the obvious-cases suite of tests/obvious_cases.py in every mode, with
the model's stored multi-label calibration (recipes/fit_one_label_calibration.py) where it has one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fit_embedding_blend import model_logits
from tests.obvious_cases import measure

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.metrics import f1_scores

SETS = ("20newsgroups", "reuters_r8", "rotten_tomatoes")


def macro_f1s(clf: Classifier, split: str) -> dict[str, float]:
    out = {}
    for name in SETS:
        limit = 2000 if split == "train" else (3000 if name == "20newsgroups" else None)
        data = load_named(name, split=split, limit=limit)
        rows = model_logits(clf, data.texts, [data.labels] * len(data.texts))
        predicted = [[data.labels[int(np.argmax(row))]] for row in rows]
        out[name] = round(f1_scores(data.gold, predicted, data.labels)["macro_f1"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    args = parser.parse_args()
    clf = Classifier.from_pretrained(args.model, device="cpu", backend="torch")
    print(json.dumps({"model": args.model, "split": args.split, **macro_f1s(clf, args.split)}), flush=True)
    print(json.dumps({"model": args.model, **measure(clf)}), flush=True)


if __name__ == "__main__":
    main()
