"""`everylabel batch`: its options, and the command that turns them into a `BatchJob`.

Standard library only at import, so `everylabel --help` stays fast; the run imports the rest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_batch_parser", "batch_command"]


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `batch` command to the command line's sub-parsers; returns its parser."""
    parser = subparsers.add_parser(
        "batch",
        help="label big files exactly once, into Parquet parts (locally or on Ray)",
        description="Classify every row of a .jsonl, .csv or .parquet file (or a folder of them) into "
        "Parquet part files and a manifest. A killed run continues with --resume: every row ends up in "
        "the output exactly once. Prints a one-line JSON summary.",
    )
    parser.add_argument(
        "--input", type=Path, required=True, help="a .jsonl, .csv or .parquet file, or a folder of them"
    )
    parser.add_argument("--output", type=Path, required=True, help="folder for the parts and _manifest.json")
    parser.add_argument("--labels", help="comma-separated candidate labels")
    parser.add_argument("--labels-file", type=Path, help="labels, one a line, or a .json list or hierarchy")
    parser.add_argument(
        "--text-column", default="text", help="column or field holding the text (default: text)"
    )
    parser.add_argument("--id-column", help="a column to keep with each result, as the string column 'id'")
    parser.add_argument("--keep-text", action="store_true", help="store the text in the output too")
    parser.add_argument(
        "--model", default="default", help="checkpoint folder or hub id (default: the embedded model)"
    )
    parser.add_argument("--single-label", action="store_true", help="pick exactly one label per text")
    parser.add_argument(
        "--threshold",
        type=float,
        help="multi-label decision threshold (default: the model's tuned ones if calibrated so, else 0.5)",
    )
    parser.add_argument("--prompt", help="task prompt given to the model with every text")
    parser.add_argument("--truncation", choices=("warn", "error", "chunk"), default="warn")
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="as for classify: auto runs the default model on onnxruntime on a CPU when it is installed",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--batch-size", type=int, default=32, help="most inputs per model call")
    parser.add_argument("--max-length", type=int, help="token window (default: the model's)")
    parser.add_argument(
        "--part-rows", type=int, default=1000, help="rows per output part (default 1000); fixed for a run"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: a Ray Data actor pool (RAY_ADDRESS, or a local Ray instance)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="Ray actors, each with its own model (default 1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads of each classifier (local default: the backend's choice; ray: CPUs each actor "
        "reserves, default 1)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue a run in --output (its settings must match)"
    )
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return parser


def batch_command(args: argparse.Namespace) -> int:
    from ..cli_io import read_labels
    from .runner import BatchJob, run_batch

    job = BatchJob(
        input=args.input,
        output=args.output,
        labels=read_labels(args),
        text_column=args.text_column,
        id_column=args.id_column,
        keep_text=args.keep_text,
        model=args.model,
        multi_label=not args.single_label,
        threshold=args.threshold,
        prompt=args.prompt,
        truncation=args.truncation,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_length=args.max_length,
        part_rows=args.part_rows,
        engine=args.engine,
        workers=args.workers,
        threads=args.threads,
        resume=args.resume,
        progress=args.progress,
    )
    print(json.dumps(run_batch(job)))
    return 0
