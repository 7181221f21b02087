"""The obvious cases (`tests/obvious_cases.py`) in every calling mode, for one or more models.

    python benchmarks/obvious_cases.py [--model default] [--backend auto] [--no-blend] [--json out.json]

Per model, on 63 topic texts (9 topics) and 12 sentiment texts:
- single-label: the top label among all topics (and positive/negative) is the text's own;
- one label at a time (multi-label, one candidate): its own topic scores >= 0.5, and an unrelated
  topic (the next one in the list) < 0.5;
- multi-label among all topics (threshold as the model defaults): exactly its own topic predicted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.obvious_cases import SENTIMENT, TOPICS, cases

from everylabel import Classifier


def measure(clf: Classifier) -> dict[str, float]:
    topics = list(TOPICS)
    topic_cases = cases(TOPICS)
    texts = [text for text, _ in topic_cases]
    gold = [label for _, label in topic_cases]
    single = clf.classify(texts, topics, multi_label=False)
    own = clf.classify(texts, [[label] for label in gold])
    unrelated_labels = [topics[(topics.index(label) + 1) % len(topics)] for label in gold]
    unrelated = clf.classify(texts, [[label] for label in unrelated_labels])
    multi = clf.classify(texts, topics)
    sentiment_cases = cases(SENTIMENT)
    sentiment = clf.classify([t for t, _ in sentiment_cases], list(SENTIMENT), multi_label=False)
    n = len(texts)
    return {
        "single_label": sum(r.labels == [g] for r, g in zip(single, gold, strict=True)) / n,
        "one_label_own_at_least_half": sum(r.scores[g] >= 0.5 for r, g in zip(own, gold, strict=True)) / n,
        "one_label_unrelated_under_half": sum(
            r.scores[u] < 0.5 for r, u in zip(unrelated, unrelated_labels, strict=True)
        )
        / n,
        "multi_label_exact_set": sum(r.labels == [g] for r, g in zip(multi, gold, strict=True)) / n,
        "sentiment_single_label": sum(
            r.labels == [g] for r, (_, g) in zip(sentiment, sentiment_cases, strict=True)
        )
        / len(sentiment_cases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeat to compare (default: the default model)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--no-blend", action="store_true", help="score without an embedding blend")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for model in args.model or ["default"]:
        clf = Classifier.from_pretrained(
            model, device="cpu", backend=args.backend, embedding_blend=not args.no_blend
        )
        started = time.perf_counter()
        name = f"{model} without blend" if args.no_blend else model
        row = {"model": name, "backend": clf.backend.kind, **measure(clf)}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row))
    keys = [k for k in rows[0] if k not in ("model", "backend", "seconds")]
    print("| model | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for row in rows:
        print(f"| {row['model']} ({row['backend']}) | " + " | ".join(f"{row[k]:.0%}" for k in keys) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
