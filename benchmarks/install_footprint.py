"""Installed size and `classify` cold start: the base install (no torch) against the one with torch.

Makes two fresh venvs from this checkout, `pip install .` and `pip install '.[torch]'` (torch pinned by
constraints.txt), and measures:
- the size of each venv's site-packages, and whether torch is importable there;
- the wall time of `echo TEXT | everylabel classify --labels ...` as a whole new process, the first
  run (which unpacks the default model's shipped export into an empty cache) and the median of the
  next `--runs` (the cache warm), each venv with its own cache folder.
Run: .venv/bin/python benchmarks/install_footprint.py [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The striker scored twice and the home side won the cup.\n"
LABELS = "sports,cooking,politics"


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def install(venv: Path, target: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), target], check=True, cwd=ROOT)
    return time.monotonic() - started


def cold_start(venv: Path, cache: Path) -> float:
    env = {**os.environ, "EVERYLABEL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [str(venv / "bin" / "everylabel"), "classify", "--labels", LABELS, "--single-label"],
        input=TEXT,
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0 or json.loads(done.stdout)["labels"] != ["sports"]:
        raise SystemExit(f"{venv}: classify failed: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="make the venvs here and keep them")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="everylabel-footprint-"))
    rows = []
    for name, target in (("base: pip install .", "."), ("with torch: pip install '.[torch]'", ".[torch]")):
        venv = work / ("base" if target == "." else "torch")
        seconds = install(venv, target)
        site = next((venv / "lib").glob("python*/site-packages"))
        python = str(venv / "bin" / "python")
        has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
        cache = work / f"cache-{venv.name}"
        first = cold_start(venv, cache)
        warm = statistics.median(cold_start(venv, cache) for _ in range(args.runs))
        rows.append((name, size(site) / 2**20, has_torch, first, warm, seconds))
    print(
        f"| install | site-packages | torch | classify, first run | classify, median of {args.runs} | install time |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for name, mib, has_torch, first, warm, seconds in rows:
        print(
            f"| {name} | {mib:.0f} MiB | {'yes' if has_torch else 'no'} | {first:.2f} s | {warm:.2f} s | {seconds:.0f} s |"
        )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
