"""Few-shot in context: does showing one or two labelled examples per label help a model?

    python benchmarks/fewshot_in_context.py [--model default] [--draws 3] [--texts 300] [--json out.json]

Single-label, on four sets: the obvious-cases topics (63 texts, 9 labels) and sentiment (12
texts, 2 labels) of `tests/obvious_cases.py`, a seeded sample of Rotten Tomatoes (sentiment) and
of Reuters R8 test (topics). For each text, 0, 1 or 2 examples per label are drawn (seeded, one
draw per seed) from texts that are not scored: for the suite, the other texts of the suite (never
the text itself); for Rotten Tomatoes, other snippets; for R8, its training split. An example
text is cut to 30 words (what a user would paste). Each draw's accuracy and macro-F1 are printed
against the same texts with no examples.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.obvious_cases import SENTIMENT, TOPICS, cases

from everylabel import Classifier
from everylabel.evaluation.datasets import load_named
from everylabel.metrics import f1_scores

EXAMPLE_WORDS = 30


def cut(text: str) -> str:
    return " ".join(text.split()[:EXAMPLE_WORDS])


def suite_set(groups: dict[str, list[str]]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    pairs = cases(groups)
    return [t for t, _ in pairs], [g for _, g in pairs], pairs


def dataset_set(
    name: str, texts: int, pool_split: str | None
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """`texts` scored texts and a pool of (text, label) to draw examples from (other texts)."""
    if pool_split is None:  # one split: the pool is the rest of it
        data = load_named(name)
        order = list(range(len(data.texts)))
        random.Random(0).shuffle(order)
        scored, rest = order[:texts], order[texts : texts + 2000]
        pool = [(data.texts[i], data.gold[i][0]) for i in rest]
        return [data.texts[i] for i in scored], [data.gold[i][0] for i in scored], pool
    data = load_named(name, limit=texts, seed=0)
    train = load_named(name, split=pool_split, limit=2000, seed=0)
    return (
        data.texts,
        [g[0] for g in data.gold],
        list(zip(train.texts, [g[0] for g in train.gold], strict=True)),
    )


def draw_examples(
    texts: list[str], labels: list[str], pool: list[tuple[str, str]], shots: int, seed: int
) -> list[list[dict]]:
    """Per text, `shots` examples of every label from the pool, never the text itself."""
    rng = random.Random(f"{seed}:{shots}")
    by_label: dict[str, list[str]] = {label: [] for label in labels}
    for text, label in pool:
        if label in by_label:
            by_label[label].append(text)
    out = []
    for text in texts:
        shown = []
        for label in labels:
            choices = [t for t in by_label[label] if t != text]
            shown += [
                {"text": cut(t), "labels": [label]} for t in rng.sample(choices, min(shots, len(choices)))
            ]
        rng.shuffle(shown)
        out.append(shown)
    return out


def score(clf: Classifier, texts: list[str], gold: list[str], labels: list[str], examples=None) -> dict:
    results = clf.classify(texts, labels, multi_label=False, examples=examples)
    predicted = [r.labels for r in results]
    metrics = f1_scores([[g] for g in gold], predicted, labels)
    return {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeat to compare (default: the default model)")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--texts", type=int, default=300, help="scored texts of each dataset")
    parser.add_argument(
        "--sets", help="comma-separated: suite-topics, suite-sentiment, rotten-tomatoes, reuters-r8"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sets = {
        "suite topics": (*suite_set(TOPICS)[:2], suite_set(TOPICS)[2], list(TOPICS)),
        "suite sentiment": (*suite_set(SENTIMENT)[:2], suite_set(SENTIMENT)[2], list(SENTIMENT)),
        "rotten tomatoes": (*dataset_set("rotten_tomatoes", args.texts, None), ["positive", "negative"]),
        "reuters r8": (*dataset_set("reuters_r8", args.texts, "train"), None),
    }  # fmt: skip
    if args.sets:
        wanted = {name.replace("-", " ") for name in args.sets.split(",")}
        sets = {name: value for name, value in sets.items() if name in wanted}
    rows = []
    for model in args.model or ["default"]:
        clf = Classifier.from_pretrained(model, device="cpu")
        for name, (texts, gold, pool, labels) in sets.items():
            labels = labels or sorted(set(gold))
            base = score(clf, texts, gold, labels)
            row = {"model": model, "set": name, "texts": len(texts), "shots": 0, **base}
            rows.append(row)
            print(json.dumps(row), flush=True)
            for shots in (1, 2):
                for seed in range(args.draws):
                    examples = draw_examples(texts, labels, pool, shots, seed)
                    got = score(clf, texts, gold, labels, examples)
                    row = {
                        "model": model,
                        "set": name,
                        "texts": len(texts),
                        "shots": shots,
                        "draw": seed,
                        **got,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print("| model | set | shots | accuracy (draws) | macro-F1 mean | vs 0 shots |")
    print("|---|---|---:|---|---:|---:|")
    for model in args.model or ["default"]:
        for name in sets:
            zero = next(r for r in rows if r["model"] == model and r["set"] == name and r["shots"] == 0)
            print(f"| {model} | {name} | 0 | {zero['accuracy']:.3f} | {zero['macro_f1']:.4f} | |")
            for shots in (1, 2):
                drawn = [r for r in rows if r["model"] == model and r["set"] == name and r["shots"] == shots]
                accuracy = ", ".join(f"{r['accuracy']:.3f}" for r in drawn)
                mean = sum(r["macro_f1"] for r in drawn) / len(drawn)
                print(
                    f"| {model} | {name} | {shots} | {accuracy} | {mean:.4f} | {mean - zero['macro_f1']:+.4f} |"
                )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
