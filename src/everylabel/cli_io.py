"""What the command line reads and writes for `classify`, as streams (standard library only).

Texts are read lazily from arguments, a file or standard input, so a file of any size is
classified in bounded memory; each result is written (and flushed) as soon as input order allows.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .errors import EverylabelError


class CliError(EverylabelError):
    """A problem with the command line or its input files; printed as one line, exit status 2."""


Row = tuple[str, Any]  # a text and its own labels (None: the shared ones)


def read_rows(args: argparse.Namespace) -> Iterator[Row]:
    """(text, own labels or None) per input, from arguments, --input or stdin, read lazily."""
    sources = bool(args.texts) + (args.input is not None)
    if sources > 1:
        raise CliError("give texts as arguments or with --input, not both")
    if args.texts:
        return ((text, None) for text in args.texts)
    if args.input is not None:
        return read_input_file(args.input, args.text_column)
    if sys.stdin.isatty():
        raise CliError("no texts: give them as arguments, with --input FILE, or on standard input")
    lines = (line.rstrip("\n") for line in sys.stdin)
    first = next(lines, None)
    if first is None:
        raise CliError("no texts on standard input")
    return ((line, None) for line in itertools.chain([first], lines))


def read_input_file(path: Path, column: str) -> Iterator[Row]:
    if not path.exists():
        raise CliError(f"--input: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path, column)
    if suffix == ".csv":
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 (closed by the generator)
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or column not in reader.fieldnames:
            found = ", ".join(reader.fieldnames or [])
            handle.close()
            raise CliError(f"{path}: no column {column!r} (columns: {found}); use --text-column")
        return _closing(handle, ((row[column] or "", None) for row in reader))
    handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed by the generator)
    return _closing(handle, ((line.rstrip("\n"), None) for line in handle))


def _closing(handle: TextIO, rows: Iterator[Row]) -> Iterator[Row]:
    with handle:
        yield from rows


def _jsonl_rows(path: Path, column: str) -> Iterator[Row]:
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
            yield row[column], row.get("labels")


def read_labels(args: argparse.Namespace) -> Any:
    """The shared candidate labels of --labels or --labels-file (None when neither is given)."""
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
            from .jsonfiles import json_labels

            try:
                return json_labels(json.loads(text), f"--labels-file {args.labels_file}")
            except json.JSONDecodeError as error:
                raise CliError(f"{args.labels_file}: not valid JSON ({error.msg})") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def split_rows(rows: Iterator[Row], shared: Any, per_row: bool) -> tuple[Iterator[str], Any, Iterator[str]]:
    """(texts, labels, texts again for the output) from the rows, all read in step.

    With `per_row` (a .jsonl input) labels are one list per row: the row's own, else the shared
    ones; otherwise the shared labels, which must then be given.
    """
    if not per_row and shared is None:
        raise CliError("no labels: use --labels a,b,c, --labels-file, or a 'labels' field per .jsonl row")
    if not per_row:  # no copy for labels: an unread copy of a tee would buffer every row
        for_texts, for_output = itertools.tee(rows, 2)
        return (text for text, _ in for_texts), shared, (text for text, _ in for_output)
    for_texts, for_labels, for_output = itertools.tee(rows, 3)
    texts = (text for text, _ in for_texts)
    return texts, _row_labels(for_labels, shared), (text for text, _ in for_output)


def _row_labels(rows: Iterable[Row], shared: Any) -> Iterator[Any]:
    for index, (_, own) in enumerate(rows):
        if own is None and shared is None:
            raise CliError(f"input row {index}: no 'labels' field and no --labels given")
        yield own if own is not None else shared


def write_jsonl_line(record: dict[str, Any], handle: TextIO) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def write_table_entry(text: str, record: dict[str, Any], handle: TextIO) -> None:
    """One text with its predicted labels and best scores, for people to read."""
    shown = text if len(text) <= 70 else text[:67] + "..."
    lines = [f"[{record['index']}] {shown}"]
    if record.get("empty"):
        lines.append("    (empty text: not scored)")
    else:
        ranked = sorted(record["scores"].items(), key=lambda item: -item[1])
        predicted = set(record["labels"])
        for label, score in ranked[:10]:
            mark = "*" if label in predicted else " "
            lines.append(f"  {mark} {score:6.3f}  {label}")
        if len(ranked) > 10:
            lines.append(f"    ... {len(ranked) - 10} more labels")
        if record.get("truncated"):
            lines.append(f"    (text cut: {record['cut_tokens']} of {record['text_tokens']} tokens not seen)")
    handle.write("\n".join(lines) + "\n")
    handle.flush()
