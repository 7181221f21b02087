"""Fit a model's multi-label calibration on plainly worded texts and store it beside the model.

    python recipes/fit_one_label_calibration.py src/everylabel/default_model \
        --one-label recipes/obvious-dev.json [recipes/obvious-dev-more.json] --write

The texts of topic -> texts files (recipes/obvious-dev.json, 8 texts of each of 9 topics, as
`make default-model` fits the shipped model; recipes/obvious-dev-more.json, 8 more of each, for a
steadier fit of candidates; none of them in the obvious-cases suite) are asked about each
topic alone (one-label calls: its own topic a yes, every other a no) and about all topics at once. A Platt
scale and bias are fitted on the one-label calls' logits, the yeses weighing as much as the noes;
then the bias is moved to where the worst of the three shares the obvious-cases suite measures is
best on these texts: own topic alone >= 0.5, another topic alone < 0.5, and exactly the own topic
at 0.5 among all (of tied biases, the nearest the fit). The calibration is stored as the model's
`everylabel_calibration.json` for multi-label calls (`inference/calibration.py`), which every
runtime applies; single-label calls keep the model's own softmax. Without `--write` it prints the
fit and writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from fit_embedding_blend import model_logits, one_label_calls, worded_texts

from everylabel import Classifier
from everylabel.data_recipes.distillation import fit_calibration
from everylabel.data_recipes.one_label import most_even_bias
from everylabel.inference.calibration import Calibration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model folder")
    parser.add_argument(
        "--one-label", type=Path, nargs="+", required=True, help="topic -> plainly worded texts (files)"
    )
    parser.add_argument("--write", action="store_true", help="store the calibration in the model's folder")
    args = parser.parse_args(argv)

    clf = Classifier.from_pretrained(args.model, device="cpu", backend="torch", calibration=False)
    texts, label_sets, targets = one_label_calls(args.one_label)
    alone = np.concatenate(model_logits(clf, texts, label_sets))  # (calls,)
    scale, fitted = fit_calibration(alone, targets, balanced=True)
    topics, dev, own = worded_texts(args.one_label)
    gold = np.array([topics.index(topic) for topic in own])
    together = np.stack(model_logits(clf, dev, [topics] * len(dev)))  # (texts, topics)
    bias, shares = most_even_bias(scale, fitted, alone, targets, together, gold)
    files = " + ".join(path.name for path in args.one_label)
    report = {
        "fitted_on": f"{files}: {len(dev)} texts, one-label calls and all topics at once",
        "platt_bias": round(fitted, 4),
        **shares,
    }
    calibration = Calibration("platt", "multi-label", round(scale, 4), bias, report=report)
    print(json.dumps(calibration.to_dict()))
    if args.write:
        print(f"wrote {calibration.save(args.model)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
