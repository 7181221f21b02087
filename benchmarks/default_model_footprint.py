"""Load time and peak memory of `everylabel classify` with the embedded default model.

Runs the command in fresh processes (cold Python each time) and reports the wall time and the
peak resident memory of each, plus the in-process time of `Classifier.from_pretrained("default")`.
Run: .venv/bin/python benchmarks/default_model_footprint.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMAND = ["-m", "everylabel", "classify", "The striker scored twice in the final.", "--labels",
           "sports,politics,cooking", "--format", "table"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    walls, peaks = [], []
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run([sys.executable, *COMMAND], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB, the largest child so far
        assert peaks[-1] >= before
    code = (
        "import time, warnings; warnings.simplefilter('ignore'); s = time.perf_counter()\n"
        "from everylabel import Classifier\nc = Classifier.from_pretrained('default', device='cpu', backend='torch')\n"
        "l = time.perf_counter() - s; c.classify('warm up', ['a', 'b']); s = time.perf_counter()\n"
        "c.classify('The striker scored twice in the final.', ['sports', 'politics', 'cooking'])\n"
        "print(l, time.perf_counter() - s)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    load, classify = map(float, out.split())
    size = sum(
        p.stat().st_size for p in (Path(__file__).parents[1] / "src/everylabel/default_model").rglob("*")
    )
    print(json.dumps({
        "cli_wall_s_median": round(statistics.median(walls), 2),
        "cli_peak_rss_mib": round(max(peaks) / 1024, 1),
        "load_s_in_process": round(load, 2),
        "classify_one_text_s": round(classify, 3),
        "artifact_mib": round(size / 2**20, 2),
        "runs": args.runs,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
