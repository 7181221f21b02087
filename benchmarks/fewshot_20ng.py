"""Few-shot adaptation on 20 Newsgroups: macro-F1 on the test split before and after, and wall time.

Starts from a fresh GLiClass model on the packaged all-MiniLM-L6-v2 backbone (its head untrained),
takes 8 examples per label from the train split (seeded), fits with `few_shot_fit`, and scores
the whole test split single-label with natural label names, before and after.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/fewshot_20ng.py [--shots 8] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8, help="examples per label")
    parser.add_argument(
        "--limit", type=int, help="score a seeded random sample of N test texts (default: all)"
    )
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder-lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    args = parser.parse_args()

    import torch
    from newsgroups_setup import fresh_model, quiet, shots_and_test

    from everylabel import Classifier
    from everylabel.metrics import f1_scores
    from everylabel.training.fewshot import few_shot_fit

    quiet()
    torch.manual_seed(args.seed)
    test, shots, texts, gold = shots_and_test(args.shots, args.limit, args.seed)
    model, tokenizer = fresh_model()
    classifier = Classifier(model, tokenizer, device="cpu", max_length=args.max_length)

    def macro_f1() -> tuple[float, float]:
        start = time.perf_counter()
        results = classifier.classify(texts, test.labels, multi_label=False)
        elapsed = time.perf_counter() - start
        return f1_scores(gold, [r.labels for r in results], test.labels)["macro_f1"], elapsed

    before, score_time = macro_f1()
    start = time.perf_counter()
    result = few_shot_fit(
        classifier,
        shots,
        labels=test.labels,
        epochs=args.epochs,
        seed=args.seed,
        encoder_lr=args.encoder_lr,
        head_lr=args.head_lr,
    )
    fit_time = time.perf_counter() - start
    after, _ = macro_f1()
    row = {
        "shots_per_label": args.shots,
        "train_examples": len(shots),
        "test_texts": len(texts),
        "max_length": args.max_length,
        "epochs": args.epochs,
        "steps": result.steps,
        "macro_f1_before": round(before, 4),
        "macro_f1_after": round(after, 4),
        "fit_seconds": round(fit_time, 1),
        "score_seconds": round(score_time, 1),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
