"""How often the default model's top label flips when the same candidate labels come in another order,
at K = 8, 16 and 64 candidates, with `label_order` "given", "sorted" and "robust"; macro-F1 and time.

Texts: a seeded sample of 20 Newsgroups test posts. Candidates per text: its gold label plus K - 1
others, drawn from the other 19 newsgroup names and, beyond them, from distractor topic names that
are no newsgroup. Each text is scored with its candidates in `--orders` seeded random orders; a
flip is a text whose top label is not the same in all of them. Macro-F1 is of the top label
(single-label), averaged over the orders. Needs `make bench-data`. Run:
    .venv/bin/python benchmarks/label_order.py --out docs/eval/label-order.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.throughput import machine_description
from everylabel.metrics import f1_scores

DISTRACTORS = [
    "agriculture", "architecture", "astrology", "aviation", "banking", "beauty", "biology", "chemistry",
    "childcare", "climate", "comics", "dance", "dentistry", "diet", "economics", "education", "employment",
    "energy", "fashion", "film", "fishing", "gardening", "geology", "history", "housing", "insurance",
    "journalism", "languages", "law", "literature", "mathematics", "military", "mining", "mythology",
    "painting", "parenting", "pets", "philosophy", "photography", "poetry", "psychology", "real estate",
    "shipping", "tourism", "weather", "wine",
]  # fmt: skip


def candidates(gold: str, labels: list[str], k: int, rng: random.Random) -> list[str]:
    others = [name for name in labels if name != gold]
    rng.shuffle(others)
    pool = others + [name for name in DISTRACTORS if name not in labels]
    return [gold, *pool[: k - 1]]


def run(
    clf: Classifier,
    texts: list[str],
    sets: list[list[str]],
    gold: list[str],
    mode: str,
    orders: int,
    seed: int,
) -> dict:
    rng = random.Random(seed)
    tops: list[list[str]] = [[] for _ in texts]
    started = time.perf_counter()
    for _ in range(orders):
        shuffled = [rng.sample(labels, len(labels)) for labels in sets]
        for i, result in enumerate(
            clf.classify(texts, shuffled, multi_label=False, label_order=mode, progress=False)
        ):
            tops[i].append(result.labels[0])
    seconds = time.perf_counter() - started
    flips = sum(len(set(t)) > 1 for t in tops) / len(texts)
    names = sorted(set(gold))
    f1 = [f1_scores([[g] for g in gold], [[t[o]] for t in tops], names)["macro_f1"] for o in range(orders)]
    return {
        "mode": mode,
        "orders": orders,
        "flip_rate": flips,
        "macro_f1": sum(f1) / len(f1),
        "seconds_per_text": seconds / (orders * len(texts)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--texts", type=int, default=150)
    parser.add_argument("--orders", type=int, default=4, help="random orders per text")
    parser.add_argument("--ks", default="8,16,64")
    parser.add_argument("--modes", default="given,sorted,robust")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data = load_named("20newsgroups", "test", args.texts, seed=4)
    clf = Classifier.from_pretrained(args.model, device="cpu", backend="torch")
    gold = [g[0] for g in data.gold]
    rows = []
    print(
        f"machine: {machine_description('cpu')}; {args.texts} 20 Newsgroups test posts, {args.orders} orders each"
    )
    print("| K | label_order | flip rate | macro-F1 | s per text and order | cost vs given |")
    print("|---:|---|---:|---:|---:|---:|")
    for k in (int(x) for x in args.ks.split(",")):
        rng = random.Random(k)
        sets = [candidates(g, data.labels, k, rng) for g in gold]
        clf.classify(data.texts[:4], sets[:4], multi_label=False)  # warm up (label caches)
        base = None
        for mode in args.modes.split(","):
            row = {"k": k, **run(clf, data.texts, sets, gold, mode, args.orders, seed=k)}
            base = base or row["seconds_per_text"]
            rows.append(row)
            print(
                f"| {k} | {mode} | {100 * row['flip_rate']:.1f}% | {row['macro_f1']:.4f} | "
                f"{row['seconds_per_text']:.3f} | {row['seconds_per_text'] / base:.2f}x |"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"machine": machine_description("cpu"), "texts": args.texts, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
