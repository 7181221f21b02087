"""What the command line reads and writes for `classify`, as streams (standard library only).

Texts are read lazily from arguments, a file or standard input, so a file of any size is
classified in bounded memory; each result is written (and flushed) as soon as input order allows.
An --id-column is read as `batch` reads it (`require_columns`, `row_id`), and a file's rows can be
counted first (`count_rows`) so that a progress bar shows a total and the time left.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

from .errors import EverylabelError


class CliError(EverylabelError):
    """A problem with the command line or its input files; printed as one line, exit status 2."""


class Row(NamedTuple):
    """One input: its text, its own labels (None: the shared ones) and its id (with --id-column)."""

    text: str
    labels: Any = None
    id: str | None = None


InputKind = Literal["txt", "jsonl", "csv", "tsv"]
DELIMITERS = {"csv": ",", "tsv": "\t"}


def input_kind(path: Path) -> InputKind:
    """How an --input file is read, by its suffix: .jsonl, .csv, .tsv, else one text a line."""
    kinds: dict[str, InputKind] = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}
    return kinds.get(path.suffix.lower(), "txt")


def read_rows(args: argparse.Namespace) -> Iterator[Row]:
    """The inputs, from arguments, --input or stdin, read lazily."""
    sources = bool(args.texts) + (args.input is not None)
    if sources > 1:
        raise CliError("give texts as arguments or with --input, not both")
    if args.input is None and args.id_column is not None:
        given = "texts given as arguments have" if args.texts else "standard input (one text a line) has"
        raise CliError(f"--id-column: {given} no columns; give a .jsonl, .csv or .tsv file with --input")
    if args.texts:
        return (Row(text) for text in args.texts)
    if args.input is not None:
        return read_input_file(args.input, args.text_column, args.id_column)
    if sys.stdin.isatty():
        raise CliError("no texts: give them as arguments, with --input FILE, or on standard input")
    lines = (line.rstrip("\n") for line in sys.stdin)
    first = next(lines, None)
    if first is None:
        raise CliError("no texts on standard input")
    return (Row(line) for line in itertools.chain([first], lines))


def read_input_file(path: Path, column: str, id_column: str | None = None) -> Iterator[Row]:
    """The rows of a .jsonl, .csv, .tsv or text file, read lazily; a table's header is checked now."""
    if not path.exists():
        raise CliError(f"--input: {path} does not exist")
    kind = input_kind(path)
    if kind == "jsonl":
        return _jsonl_rows(path, column, id_column)
    if kind == "txt":
        if id_column is not None:
            raise CliError(
                f"--id-column: {path} is read as one text a line, with no columns; "
                "give a .jsonl, .csv or .tsv file"
            )
        handle = open(path, encoding="utf-8-sig")  # noqa: SIM115 (closed by the generator)
        return _reading(path, handle, (Row(line.rstrip("\n")) for line in handle))
    handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed by the generator)
    records = csv.reader(handle, delimiter=DELIMITERS[kind])
    try:
        header = next(records, None) or []
        require_columns(path, header, {"--text-column": column, "--id-column": id_column})
    except csv.Error as error:
        handle.close()
        raise CliError(f"{path}:1: bad {kind.upper()} header ({error})") from None
    except UnicodeDecodeError:
        handle.close()
        raise CliError(f"{path}: not UTF-8 text") from None
    except BaseException:
        handle.close()
        raise
    return _reading(path, handle, _table_rows(records, path, header, column, id_column))


def _table_rows(
    records: Any, path: Path, header: list[str], column: str, id_column: str | None
) -> Iterator[Row]:
    """The rows of a CSV or TSV file after its header; blank lines are not rows."""
    wanted = [column] + ([id_column] if id_column is not None else [])
    at = [header.index(name) for name in wanted]
    while True:
        line = records.line_num + 1
        try:
            record = next(records, None)
        except csv.Error as error:
            raise CliError(f"{path}:{line}: bad row ({error})") from None
        if record is None:
            return
        if not record:
            continue
        if len(record) <= max(at):
            lacking = next(name for name, index in zip(wanted, at, strict=True) if index >= len(record))
            raise CliError(
                f"{path}:{line}: no value for column {lacking!r} ({len(record)} fields, "
                f"the header has {len(header)})"
            )
        yield Row(record[at[0]], None, record[at[1]] if id_column is not None else None)


def _reading(path: Path, handle: TextIO, rows: Iterator[Row]) -> Iterator[Row]:
    """`rows`, then `handle` closed; a file that is not UTF-8 is named."""
    with handle:
        try:
            yield from rows
        except UnicodeDecodeError:
            raise CliError(f"{path}: not UTF-8 text") from None


def _jsonl_rows(path: Path, column: str, id_column: str | None) -> Iterator[Row]:
    handle = open(path, encoding="utf-8-sig")  # noqa: SIM115 (closed by _reading)
    return _reading(path, handle, _json_lines(handle, path, column, id_column))


def _json_lines(handle: TextIO, path: Path, column: str, id_column: str | None) -> Iterator[Row]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CliError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(column), str):
            raise CliError(f"{path}:{number}: field {column!r} missing or not a string")
        yield Row(row[column], row.get("labels"), row_id(row, id_column, f"{path}:{number}"))


def count_rows(path: Path) -> int:
    """How many rows `read_input_file` gives for `path` (a progress bar's total), read once without
    keeping them: the lines of a text file, the non-blank lines of a .jsonl, the records of a table."""
    kind = input_kind(path)
    if kind in DELIMITERS:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            records = csv.reader(handle, delimiter=DELIMITERS[kind])
            try:
                next(records, None)  # the header
                return sum(1 for record in records if record)
            except csv.Error as error:
                raise CliError(f"{path}:{records.line_num}: bad row ({error})") from None
            except UnicodeDecodeError:
                raise CliError(f"{path}: not UTF-8 text") from None
    with open(path, encoding="utf-8-sig") as handle:
        try:
            return sum(1 for line in handle if kind == "txt" or line.strip())
        except UnicodeDecodeError:
            raise CliError(f"{path}: not UTF-8 text") from None


def require_columns(path: Path | str, header: Sequence[str], columns: dict[str, str | None]) -> None:
    """Raise naming the first column of `columns` ({option: column or None}) not in a file's header."""
    for option, column in columns.items():
        if column is not None and column not in header:
            raise CliError(f"{path}: no column {column!r} (columns: {', '.join(header)}); check {option}")


def row_id(row: dict[str, Any], column: str | None, where: str) -> str | None:
    """The id of a JSON row as --id-column reads it: a string, a number as its string, None for null
    (and without a column); a missing field or another type raises, naming `where` ("file:line")."""
    if column is None:
        return None
    if column not in row:
        raise CliError(f"{where}: no field {column!r} (fields: {', '.join(row)}); check --id-column")
    value = row[column]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CliError(f"{where}: field {column!r} is {type(value).__name__}; ids are strings or numbers")


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


def split_rows(rows: Iterator[Row], shared: Any, per_row: bool) -> tuple[Iterator[str], Any, Iterator[Row]]:
    """(texts, labels, the rows again for the output) from the rows, all read in step.

    With `per_row` (a .jsonl input) labels are one list per row: the row's own, else the shared
    ones; otherwise the shared labels, which must then be given.
    """
    if not per_row and shared is None:
        raise CliError("no labels: use --labels a,b,c, --labels-file, or a 'labels' field per .jsonl row")
    if not per_row:  # no copy for labels: an unread copy of a tee would buffer every row
        for_texts, for_output = itertools.tee(rows, 2)
        return (row.text for row in for_texts), shared, for_output
    for_texts, for_labels, for_output = itertools.tee(rows, 3)
    return (row.text for row in for_texts), _row_labels(for_labels, shared), for_output


def _row_labels(rows: Iterable[Row], shared: Any) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if row.labels is None and shared is None:
            raise CliError(f"input row {index}: no 'labels' field and no --labels given")
        yield row.labels if row.labels is not None else shared


def write_jsonl_line(record: dict[str, Any], handle: TextIO) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def write_table_entry(text: str, record: dict[str, Any], handle: TextIO) -> None:
    """One text with its predicted labels and best scores, for people to read."""
    shown = text if len(text) <= 70 else text[:67] + "..."
    place = f"{record['index']}" + (
        f" id={json.dumps(record['id'], ensure_ascii=False)}" if "id" in record else ""
    )
    lines = [f"[{place}] {shown}"]
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
