"""Rows of a JSONL file or a JSON list, with the line each starts on (for `file:line` errors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each row of a JSON list or a JSONL file.

    A file that starts with `[` (and is not named `.jsonl`) is one JSON list, pretty-printed or
    not; any other file holds one JSON value per line. A bad row raises `DataError` with `file:line`.
    """
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix.lower() == ".jsonl" or not stripped.startswith("["):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: record: not valid JSON ({error.msg})") from None
        return
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            raise DataError(
                f"{path}:{text.count(chr(10), 0, position) + 1}: file: the JSON list is not closed"
            )
        if text[position] == "]":
            return
        line_number = text.count("\n", 0, position) + 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{line_number}: record: not valid JSON ({error.msg})") from None
        yield line_number, value
