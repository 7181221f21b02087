"""`everylabel calibrate`: fit a calibration on labelled data and store it with a copy of the model."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError


def add_calibrate_parser(commands: Any) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="fit score calibration (and thresholds) on labelled data, stored with the model",
        description="Scores labelled texts once, holds out a share of them, fits temperature or Platt "
        "scaling (global or per label) and optionally per-label F1 thresholds, and writes the model with "
        "its calibration to --out. Classifier, the ONNX runtime and the server then apply it.",
    )
    calibrate.add_argument("--model", default="default", help="checkpoint folder or hub id")
    calibrate.add_argument(
        "--data",
        required=True,
        help="official-format records (.jsonl/.json with text, all_labels, true_labels), an eval file "
        "(.jsonl/.csv) or a dataset name (20newsgroups, reuters_r8, rotten_tomatoes, ...)",
    )
    calibrate.add_argument("--split", default="train", help="the split of a named dataset (default train)")
    calibrate.add_argument("--limit", type=int, help="a seeded random sample of N texts")
    calibrate.add_argument("--out", type=Path, required=True, help="folder for the calibrated model")
    calibrate.add_argument("--method", choices=("temperature", "platt"), default="temperature")
    calibrate.add_argument("--per-label", action="store_true", help="a scale (and bias) per label")
    calibrate.add_argument("--thresholds", action="store_true", help="tune per-label thresholds for F1")
    calibrate.add_argument("--holdout", type=float, default=0.2, help="share of texts held out to measure")
    calibrate.add_argument(
        "--single-label",
        action="store_true",
        help="fit the softmax over each text's labels (default: sigmoids)",
    )
    calibrate.add_argument(
        "--force",
        action="store_true",
        help="write the calibration even when the held-out texts score worse with it than without",
    )
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--device", default="auto")
    calibrate.add_argument("--dtype", default="auto")
    calibrate.add_argument("--batch-size", type=int, default=32)
    calibrate.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


def read_labelled(
    data: str, split: str, limit: int | None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(texts, candidate labels per text, gold labels per text) from official records or an eval set."""
    path = Path(data)
    if path.suffix.lower() in (".jsonl", ".json") and path.is_file() and _official(path):
        from ..training.data import load_records

        records, _ = load_records(path)
        if limit is not None:
            import random

            records = [
                records[i]
                for i in sorted(random.Random(0).sample(range(len(records)), min(limit, len(records))))
            ]
        gold = [[label for label, target in r.true_labels.items() if target >= 0.5] for r in records]
        return [r.text for r in records], [r.all_labels for r in records], gold
    from .datasets import load_named

    named = load_named(data, split, limit)
    return named.texts, [list(named.labels)] * len(named.texts), [list(g) for g in named.gold]


def _official(path: Path) -> bool:
    from ..jsonfiles import read_rows

    for _, row in read_rows(path):
        return isinstance(row, dict) and "all_labels" in row
    return False


def copy_model(model: str, out: Path) -> Path:
    """The model's folder copied to `out` (or `out` itself when it is that folder)."""
    from ..paths import resolve_path

    source = Path(resolve_path(model))
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(model))
    if out.exists() and out.resolve() == source.resolve():
        return out
    if out.exists() and any(out.iterdir()):
        raise InputError("out", f"{out} exists and is not empty; give a new folder (or the model's own)")
    shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return out


def calibrate_command(args: argparse.Namespace) -> int:
    from transformers.utils import logging

    from ..inference.classifier import Classifier
    from .calibrate import collect_logits, fit_calibration, worse_than_uncalibrated

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    texts, label_sets, gold = read_labelled(args.data, args.split, args.limit)
    classifier = Classifier.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size, backend="torch"
    )
    scored = collect_logits(classifier, texts, label_sets, gold, progress=args.progress)
    calibration = fit_calibration(
        scored,
        method=args.method,
        per_label=args.per_label,
        thresholds=args.thresholds,
        single_label=args.single_label,
        holdout=args.holdout,
        seed=args.seed,
    )
    worse = worse_than_uncalibrated(calibration)
    if worse and not args.force:
        print(json.dumps({"written": False, **calibration.report}))
        raise InputError(
            "calibrate",
            f"not written: the calibration makes the model's scores worse on the held-out texts ({worse}); "
            "give more labelled texts, or --force to write it anyway",
        )
    folder = copy_model(args.model, args.out)
    path = calibration.save(folder)
    summary = {
        "written": True,
        "out": os.fspath(folder),
        "file": path.name,
        "scale": calibration.scale,
        "bias": calibration.bias,
    }
    summary |= {
        "labels_with_own_scale": len(calibration.per_label),
        "thresholds": len(calibration.thresholds),
    }
    print(json.dumps({**summary, **calibration.report}))
    return 0
