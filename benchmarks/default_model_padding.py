"""The default model served with and without padding inside its mean pooling.

The shipped default model was trained before the trainer pooled as the Classifier serves: its
`avg` pooling saw the padding of each training batch. This scores it both ways on the same texts:
`mask_padding=True` (real tokens only, batch-independent; the Classifier's default) and
`mask_padding=False` (padding in the mean, as trained; scores then depend on the batch mates).
Needs `make bench-data`. Run: .venv/bin/python benchmarks/default_model_padding.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.runner import evaluate
from everylabel.evaluation.scorers import EverylabelScorer

DATASETS = (("reuters_r8", None), ("rotten_tomatoes", None), ("20newsgroups", 3000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for name, limit in DATASETS:
        data = load_named(name, "test", limit)  # the same seeded sample as `everylabel eval --limit`
        for mask in (True, False):
            scorer = EverylabelScorer.__new__(EverylabelScorer)
            scorer.name, scorer.cut_texts, scorer.dtype = f"default mask_padding={mask}", 0, "float32"
            scorer.classifier = Classifier.from_pretrained(
                "default", device="cpu", backend="torch", mask_padding=mask
            )
            report = evaluate(scorer, data, progress=False)
            rows.append({"dataset": name, "mask_padding": mask, "macro_f1": report["metrics"]["macro_f1"],
                         "texts": report["texts"]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
