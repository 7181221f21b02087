"""The `everylabel` command line. Thin: it parses arguments, reads inputs and calls the library.

Only the standard library is imported at start-up, so `everylabel --help` answers at once;
torch and transformers load when a command runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO


class CliError(Exception):
    """A problem with the command line or its input files; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everylabel", description="GLiClass zero-shot text classification.")
    commands = parser.add_subparsers(dest="command", required=True)
    classify = commands.add_parser(
        "classify",
        help="classify texts against candidate labels",
        description="Classify texts (arguments, --input FILE, or standard input: one text a line).",
    )
    classify.add_argument("texts", nargs="*", help="texts to classify")
    classify.add_argument("--input", type=Path, help=".txt (one text a line), .jsonl (field 'text') or .csv")
    classify.add_argument(
        "--text-column", default="text", help="column or field holding the text (default: text)"
    )
    classify.add_argument("--labels", help="comma-separated candidate labels")
    classify.add_argument("--labels-file", type=Path, help="labels, one a line, or a .json list or hierarchy")
    classify.add_argument(
        "--model", default="default", help="checkpoint folder or hub id (default: the embedded model)"
    )
    classify.add_argument("--single-label", action="store_true", help="pick exactly one label per text")
    classify.add_argument("--threshold", type=float, default=0.5, help="multi-label decision threshold")
    classify.add_argument("--prompt", help="task prompt given to the model with every text")
    classify.add_argument("--batch-size", type=int, default=32, help="most inputs per model call")
    classify.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    classify.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    classify.add_argument("--max-length", type=int, help="token window (default: the model's)")
    classify.add_argument("--truncation", choices=("warn", "error", "chunk"), default="warn")
    classify.add_argument("--output", type=Path, help="write JSONL here, one line per input, in input order")
    classify.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output on stdout")
    classify.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
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
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--json", type=Path, help="write the reports (a JSON list) here")
    evaluate.add_argument("--format", choices=("table", "json"), default="table", help="output on stdout")
    evaluate.add_argument(
        "--no-per-label", action="store_true", help="leave the per-label report out of the table"
    )
    evaluate.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
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
    build.add_argument("--seed", type=int, default=0)
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
        train.add_argument("--skip-invalid", action="store_true", help="leave bad records out, count them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    # Deprecation notices from the libraries under us are not the user's business on the command line.
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        if args.command == "classify":
            return classify_command(args)
        if args.command in ("train", "train-rl"):
            return train_command(args)
        if args.command == "eval":
            return eval_command(args)
        if args.command == "bench":
            return bench_command(args)
        if args.command == "build-data":
            return build_data_command(args)
    except CliError as error:
        print(f"everylabel: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # InputError and ConfigError name the field and the item
        print(f"everylabel: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"everylabel: error: {error}", file=sys.stderr)
        return 2
    return 0


def classify_command(args: argparse.Namespace) -> int:
    texts, row_labels = read_texts(args)
    shared = read_labels(args)
    labels = merge_labels(shared, row_labels)

    import warnings

    from transformers.utils import logging

    from .inference.classifier import Classifier, TruncationWarning

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    classifier = Classifier.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        results = classifier.classify(
            texts,
            labels,
            multi_label=not args.single_label,
            threshold=args.threshold,
            prompt=args.prompt,
            truncation=args.truncation,
            progress=args.progress,
        )
    for warning in caught:
        print(f"everylabel: warning: {warning.message}", file=sys.stderr)
    records = [r.to_dict() for r in results]
    if args.output is not None:
        with open(args.output, "w", encoding="utf-8") as handle:
            write_jsonl(records, handle)
    if args.format == "table":
        write_table(texts, records, sys.stdout)
    elif args.output is None:
        write_jsonl(records, sys.stdout)
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from transformers.utils import logging

    from .evaluation.datasets import load_named
    from .evaluation.runner import evaluate, format_report
    from .evaluation.scorers import build_scorer

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    data = load_named(args.dataset, args.split, args.limit)
    multi = True if args.multi_label else False if args.single_label else None
    reports = []
    for spec in args.model:
        scorer = build_scorer(spec, device=args.device, batch_size=args.batch_size)
        reports.append(evaluate(scorer, data, multi, args.threshold, progress=args.progress))
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
    from .inference.classifier import Classifier, resolve_device, resolve_dtype

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    classifier = Classifier.from_pretrained(args.model, device=device, dtype=dtype)
    systems: dict[str, Any] = {
        "everylabel": lambda texts, labels, batch: classifier.classify(
            texts, labels, batch_size=batch, progress=False
        )
    }
    if not args.no_official:
        from gliclass import GLiClassModel, ZeroShotClassificationPipeline

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


def build_data_command(args: argparse.Namespace) -> int:
    from collections import Counter

    from .training.corpus import build_records, write_records

    records = build_records(
        args.limit_per_source,
        seed=args.seed,
        documents_per_source=args.documents_per_source,
        opinions=args.opinions,
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
    result = trainer.train(resume=not args.no_resume)
    summary = {
        "steps": result.steps,
        "best_metric": result.best_metric,
        "best_step": result.best_step,
        "final_model": str(Path(result.output_dir) / "final"),
        "last_eval": result.last_eval,
    }
    print(json.dumps(summary))
    return 0


def read_texts(args: argparse.Namespace) -> tuple[list[str], list[Any] | None]:
    """Texts from arguments, --input or stdin; per-row labels from a .jsonl input when present."""
    sources = bool(args.texts) + (args.input is not None)
    if sources > 1:
        raise CliError("give texts as arguments or with --input, not both")
    if args.texts:
        return list(args.texts), None
    if args.input is not None:
        return read_input_file(args.input, args.text_column)
    if sys.stdin.isatty():
        raise CliError("no texts: give them as arguments, with --input FILE, or on standard input")
    lines = [line.rstrip("\n") for line in sys.stdin]
    if not lines:
        raise CliError("no texts on standard input")
    return lines, None


def read_input_file(path: Path, column: str) -> tuple[list[str], list[Any] | None]:
    if not path.exists():
        raise CliError(f"--input: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, column)
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or column not in reader.fieldnames:
                found = ", ".join(reader.fieldnames or [])
                raise CliError(f"{path}: no column {column!r} (columns: {found}); use --text-column")
            return [row[column] or "" for row in reader], None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle], None


def _read_jsonl(path: Path, column: str) -> tuple[list[str], list[Any] | None]:
    texts: list[str] = []
    labels: list[Any] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CliError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get(column), str):
                raise CliError(f"{path}:{number}: field {column!r} missing or not a string")
            texts.append(row[column])
            labels.append(row.get("labels"))
    return texts, labels if any(item is not None for item in labels) else None


def read_labels(args: argparse.Namespace) -> Any:
    if args.labels is not None and args.labels_file is not None:
        raise CliError("give --labels or --labels-file, not both")
    if args.labels is not None:
        names = [name.strip() for name in args.labels.split(",")]
        if not any(names):
            raise CliError("--labels: no label names given")
        return names
    if args.labels_file is not None:
        if not args.labels_file.exists():
            raise CliError(f"--labels-file: {args.labels_file} does not exist")
        text = args.labels_file.read_text(encoding="utf-8")
        if args.labels_file.suffix.lower() == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise CliError(f"{args.labels_file}: not valid JSON ({error.msg})") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def merge_labels(shared: Any, per_row: list[Any] | None) -> Any:
    """Shared labels, or one label list per row (rows without their own take the shared ones)."""
    if per_row is None:
        if shared is None:
            raise CliError("no labels: use --labels a,b,c, --labels-file, or a 'labels' field per .jsonl row")
        return shared
    merged = []
    for index, own in enumerate(per_row):
        if own is None and shared is None:
            raise CliError(f"input row {index}: no 'labels' field and no --labels given")
        merged.append(own if own is not None else shared)
    return merged


def write_jsonl(records: list[dict[str, Any]], handle: TextIO) -> None:
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_table(texts: list[str], records: list[dict[str, Any]], handle: TextIO) -> None:
    """A readable table: each text with its predicted labels and the best scores."""
    out = io.StringIO()
    for text, record in zip(texts, records, strict=True):
        shown = text if len(text) <= 70 else text[:67] + "..."
        out.write(f"[{record['index']}] {shown}\n")
        if record.get("empty"):
            out.write("    (empty text: not scored)\n")
            continue
        ranked = sorted(record["scores"].items(), key=lambda item: -item[1])
        predicted = set(record["labels"])
        for label, score in ranked[:10]:
            mark = "*" if label in predicted else " "
            out.write(f"  {mark} {score:6.3f}  {label}\n")
        if len(ranked) > 10:
            out.write(f"    ... {len(ranked) - 10} more labels\n")
        if record.get("truncated"):
            out.write(f"    (text cut: {record['cut_tokens']} of {record['text_tokens']} tokens not seen)\n")
    handle.write(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
