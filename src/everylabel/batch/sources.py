"""What `everylabel batch` reads: a .jsonl, .csv or .parquet file, or a folder of them.

A folder is searched recursively and its files are taken in the order of their paths under it;
names starting with "." or "_" are skipped (Spark's `_SUCCESS`, temporary files), and any other
file that is not .jsonl, .csv or .parquet is an error, so nothing is left out silently. Rows are
numbered 0..N-1 across the files in that order: a row's number is its `index` in the output.

The text column must exist in every file. A null text (JSON null, an empty CSV cell, a Parquet
null) is an empty text: its result says `empty`. Blank lines of JSONL and CSV are not rows. The id
column, when asked for, must exist too; its values are kept as strings (null stays null).

`scan` reads every row once, checks it, and notes where each part of the plan starts in its file
(the byte offset for JSONL and CSV), so that `read_part` later seeks straight to it, in this
process or in a Ray worker.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ..cli_io import CliError, require_columns, row_id
from ..extras import require

Kind = Literal["jsonl", "csv", "parquet"]
KINDS: dict[str, Kind] = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
Row = tuple[int, int, str, str | None]  # (byte offset, line, text, id) of a JSONL or CSV row


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute
    name: str  # as the fingerprint and messages show it: the path under the input folder
    kind: Kind
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Segment:
    """Rows [row, row + rows) of file `file`; `offset` is the byte where row `row` starts (JSONL, CSV)
    and `line` its line number, for messages."""

    file: int
    row: int
    rows: int
    offset: int = 0
    line: int = 0


@dataclass(frozen=True)
class Part:
    """Part `number` of the output: rows `first` .. `first + rows - 1`, from one or more files."""

    number: int
    first: int
    rows: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Source:
    """The input files and the columns read from them (all a Ray worker needs to read a part)."""

    files: tuple[InputFile, ...]
    text_column: str
    id_column: str | None


def discover(path: Path) -> list[InputFile]:
    """The input files of `path` (a file, or a folder searched recursively), in reading order."""
    if not path.exists():
        raise CliError(f"--input: {path} does not exist")
    root = path.resolve()
    if root.is_file():
        found = [root]
    else:
        found = sorted(
            (p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root))),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        if not found:
            raise CliError(f"--input: {path} holds no .jsonl, .csv or .parquet file")
    files = []
    for file in found:
        kind = KINDS.get(file.suffix.lower())
        if kind is None:
            raise CliError(f"--input: {file}: unsupported file type (expected .jsonl, .csv or .parquet)")
        stat = file.stat()
        name = file.name if file == root else file.relative_to(root).as_posix()
        files.append(InputFile(str(file), name, kind, stat.st_size, stat.st_mtime_ns))
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def scan(source: Source, part_rows: int) -> tuple[list[Part], int]:
    """The parts of `part_rows` rows over all files, and the number of rows; checks every row."""
    starts: list[list[tuple[int, int, int]]] = []  # per file: (row, offset, line) where a segment starts
    counts: list[int] = []
    total = 0
    for file in source.files:
        if file.kind == "parquet":
            count = _parquet_rows(file, source)
            first = (-total) % part_rows  # the file's first row that starts a part
            marks = [(row, 0, 0) for row in sorted({0, *range(first, count, part_rows)}) if row < count]
        else:
            marks, count = [], 0
            for count, (offset, line, _, _) in enumerate(_rows(file, source, 0, 0), start=1):
                if count == 1 or (total + count - 1) % part_rows == 0:
                    marks.append((count - 1, offset, line))
        starts.append(marks)
        counts.append(count)
        total += count
    parts: list[list[Segment]] = [[] for _ in range(-(-total // part_rows))]
    base = 0
    for index, (marks, count) in enumerate(zip(starts, counts, strict=True)):
        ends = [row for row, _, _ in marks[1:]] + [count]
        for (row, offset, line), end in zip(marks, ends, strict=True):
            parts[(base + row) // part_rows].append(Segment(index, row, end - row, offset, line))
        base += count
    plan = [
        Part(k, k * part_rows, sum(s.rows for s in segments), tuple(segments))
        for k, segments in enumerate(parts)
    ]
    return plan, total


def read_part(source: Source, part: Part) -> Any:
    """The rows of `part` as a pyarrow table: `index` (int64), `id` (string, with an id column), `text`."""
    pa = require("pyarrow", "batch", "everylabel batch")
    texts: list[str] = []
    ids: list[str | None] = []
    for segment in part.segments:
        file = source.files[segment.file]
        if file.kind == "parquet":
            seg_texts, seg_ids = _parquet_segment(file, source, segment)
            texts += seg_texts
            ids += seg_ids
            continue
        rows = _rows(file, source, segment.offset, segment.line - 1)
        for _, (_, _, text, read_id) in zip(range(segment.rows), rows, strict=False):
            texts.append(text)
            ids.append(read_id)
    if len(texts) != part.rows:
        raise CliError(
            f"part {part.number}: read {len(texts)} rows, expected {part.rows} (did an input change?)"
        )
    columns: dict[str, Any] = {"index": pa.array(range(part.first, part.first + part.rows), pa.int64())}
    if source.id_column is not None:
        columns["id"] = pa.array(ids, pa.string())
    columns["text"] = pa.array(texts, pa.string())
    return pa.table(columns)


def _rows(file: InputFile, source: Source, offset: int, lines_before: int) -> Iterator[Row]:
    """The rows of a JSONL or CSV file from byte `offset`, the first on line `lines_before + 1`."""
    handle = open(file.path, "rb")  # noqa: SIM115 (closed by the generator)
    handle.seek(offset)
    reader = _jsonl_rows if file.kind == "jsonl" else _csv_rows
    return _closing(handle, reader(handle, file, source, offset, lines_before))


def _closing(handle: IO[bytes], rows: Iterator[Row]) -> Iterator[Row]:
    with handle:
        yield from rows


def _decode(raw: bytes, file: InputFile, line: int, offset: int) -> str:
    try:
        return raw.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{file.path}:{line}: not UTF-8 text") from None


def _jsonl_rows(handle: IO[bytes], file: InputFile, source: Source, offset: int, line: int) -> Iterator[Row]:
    for raw in handle:
        line += 1
        start, offset = offset, offset + len(raw)
        text = _decode(raw, file, line, start)
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise CliError(f"{file.path}:{line}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise CliError(f"{file.path}:{line}: expected a JSON object, got {type(row).__name__}")
        where = f"{file.path}:{line}"
        yield start, line, _text(row, source.text_column, where), row_id(row, source.id_column, where)


def _csv_rows(handle: IO[bytes], file: InputFile, source: Source, offset: int, line: int) -> Iterator[Row]:
    consumed = [offset, line]  # bytes and lines the csv reader has taken

    def lines() -> Iterator[str]:
        for raw in handle:
            consumed[0] += len(raw)
            consumed[1] += 1
            yield _decode(raw, file, consumed[1], consumed[0] - len(raw))

    header_file = open(file.path, "rb") if offset else None  # noqa: SIM115 (closed below)
    records = csv.reader(lines())
    try:
        header = next(csv.reader(_first_lines(header_file))) if header_file else next(records, None)
    except csv.Error as error:
        raise CliError(f"{file.path}:1: bad CSV header ({error})") from None
    finally:
        if header_file is not None:
            header_file.close()
    if header is None:
        return
    require_columns(file.path, header, {"--text-column": source.text_column, "--id-column": source.id_column})
    text_at = header.index(source.text_column)
    id_at = header.index(source.id_column) if source.id_column else None
    while True:
        start, start_line = consumed[0], consumed[1] + 1
        try:
            record = next(records, None)
        except csv.Error as error:
            raise CliError(f"{file.path}:{start_line}: bad CSV ({error})") from None
        if record is None:
            return
        if not record:
            continue
        if len(record) <= max(text_at, id_at or 0):
            raise CliError(f"{file.path}:{start_line}: {len(record)} fields, fewer than the header's")
        yield start, start_line, record[text_at], None if id_at is None else record[id_at]


def _first_lines(handle: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(handle):
        yield raw.decode("utf-8-sig" if number == 0 else "utf-8", errors="replace")


def _text(row: dict[str, Any], column: str, where: str) -> str:
    if column not in row:
        raise CliError(f"{where}: no field {column!r} (fields: {', '.join(row)}); use --text-column")
    value = row[column]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CliError(f"{where}: field {column!r} is {type(value).__name__}, not a string")
    return value


def _parquet_rows(file: InputFile, source: Source) -> int:
    """The row count of a Parquet file, after checking its columns' types."""
    pq = require("pyarrow.parquet", "batch", "Parquet input")
    pa = require("pyarrow", "batch", "Parquet input")
    try:
        parquet = pq.ParquetFile(file.path)
    except (pa.ArrowException, OSError) as error:
        raise CliError(f"{file.path}: not a readable Parquet file ({error})") from None
    schema = parquet.schema_arrow
    for column, kinds in ((source.text_column, "string"), (source.id_column, "id")):
        if column is None:
            continue
        if column not in schema.names:
            raise CliError(f"{file.path}: no column {column!r} (columns: {', '.join(schema.names)})")
        kind = schema.field(column).type
        value = kind.value_type if pa.types.is_dictionary(kind) else kind
        text_like = pa.types.is_string(value) or pa.types.is_large_string(value) or pa.types.is_null(value)
        if not (text_like or (kinds == "id" and pa.types.is_integer(value))):
            expected = "strings" if kinds == "string" else "strings or integers"
            raise CliError(f"{file.path}: column {column!r} holds {kind}, not {expected}")
    return int(parquet.metadata.num_rows)


def _parquet_segment(file: InputFile, source: Source, segment: Segment) -> tuple[list[str], list[str | None]]:
    """Texts and ids of a segment, reading only the row groups it spans."""
    pq = require("pyarrow.parquet", "batch", "Parquet input")
    pa = require("pyarrow", "batch", "Parquet input")
    parquet = pq.ParquetFile(file.path)
    groups, first, position = [], None, 0
    end = segment.row + segment.rows
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if position < end and position + size > segment.row:
            groups.append(group)
            first = position if first is None else first
        position += size
    columns = [source.text_column] + ([source.id_column] if source.id_column else [])
    table = parquet.read_row_groups(groups, columns=columns).slice(segment.row - (first or 0), segment.rows)
    texts = [t if t is not None else "" for t in table.column(source.text_column).to_pylist()]
    ids: list[str | None] = [None] * len(texts)
    if source.id_column is not None:
        ids = table.column(source.id_column).cast(pa.string()).to_pylist()
    return texts, ids


def fingerprint_files(files: list[InputFile] | tuple[InputFile, ...]) -> list[dict[str, Any]]:
    """What the fingerprint records of the inputs: each file's name, size and modification time."""
    return [{"name": f.name, "size": f.size, "mtime_ns": f.mtime_ns} for f in files]
