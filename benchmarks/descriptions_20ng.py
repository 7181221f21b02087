"""Label descriptions: macro-F1 on 20 Newsgroups with descriptions in the label slot, before the text, or ignored.

The model is the few-shot one of `fewshot_20ng.py` (written before the default model existed) (fresh MiniLM-L6 GLiClass model, 8 examples per label, label names only,
same seed), then scored on a seeded sample of the test split in each description mode.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/descriptions_20ng.py [--limit 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from newsgroups_setup import fresh_model, quiet, shots_and_test

    from everylabel import Classifier, Label
    from everylabel.evaluation.datasets import NEWSGROUP_DESCRIPTIONS
    from everylabel.metrics import f1_scores
    from everylabel.training.fewshot import few_shot_fit

    quiet()
    torch.manual_seed(args.seed)
    test, shots, texts, gold = shots_and_test(args.shots, args.limit, args.seed)
    model, tokenizer = fresh_model()
    fitter = Classifier(model, tokenizer, device="cpu", max_length=args.max_length)
    few_shot_fit(fitter, shots, labels=test.labels, epochs=args.epochs, seed=args.seed)
    described = [Label(name, NEWSGROUP_DESCRIPTIONS[name]) for name in test.labels]
    rows = []
    for mode in ("ignore", "label", "text"):
        classifier = Classifier(model, tokenizer, device="cpu", max_length=args.max_length, descriptions=mode)
        start = time.perf_counter()
        results = classifier.classify(texts, described, multi_label=False)
        rows.append(
            {
                "descriptions": mode,
                "macro_f1": round(f1_scores(gold, [r.labels for r in results], test.labels)["macro_f1"], 4),
                "texts": len(texts),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
