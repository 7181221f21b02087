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

from tests.obvious_cases import measure

from everylabel import Classifier


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
