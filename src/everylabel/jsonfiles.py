"""JSON as users give it: rows of a JSONL file or a JSON list, with the line each starts on (for
`file:line` errors), and candidate labels read from JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, InputError


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


def json_labels(labels: Any, field: str = "labels") -> Any:
    """`labels` as a JSON document gives them (the HTTP body, a .json labels file), checked for the one
    shape JSON cannot say plainly: JSON has no tuples, so a list whose items are all two-string
    lists could be [name, description] pairs or one two-label list per text. It is refused, never
    guessed: a label with a description is {"name": ..., "description": ...}, and per-text lists of
    two labels can write their labels as {"name": ...}."""
    if isinstance(labels, list) and labels and all(_two_strings(item) for item in labels):
        raise InputError(
            field,
            f"{_short(labels)} is ambiguous in JSON: [name, description] pairs, or one list of two "
            'labels per text? Write a label with a description as {"name": ..., "description": ...}; '
            'for two labels per text write them as {"name": ...}',
        )
    return labels


def _two_strings(item: Any) -> bool:
    return isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
