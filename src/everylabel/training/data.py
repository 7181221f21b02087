"""Training records in the official format (a JSON list or JSONL), validated with file:line:field errors.

A record: {"text": str, "all_labels": [str, ...], "true_labels": [str, ...] or {label: score}},
optionally "prompt": str and "examples": [{"text": str, "labels": [str, ...]}, ...].
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..jsonfiles import read_rows


@dataclass
class Record:
    text: str
    all_labels: list[str]
    true_labels: dict[str, float]  # label -> target in [0, 1]
    prompt: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # where the record came from (a build's "source" field), for `level_sources`


def _check_record(raw: Any) -> Record:
    """Validate one raw record; raises `KeyError`-free `ValueError("field: problem")`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"record: expected an object, got {type(raw).__name__}")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: expected a non-empty string")
    all_labels = raw.get("all_labels")
    if not isinstance(all_labels, list) or not all_labels:
        raise ValueError("all_labels: expected a non-empty list of label names")
    for i, label in enumerate(all_labels):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"all_labels[{i}]: expected a non-empty string, got {label!r}")
    if len(set(all_labels)) != len(all_labels):
        duplicate = next(label for label in all_labels if all_labels.count(label) > 1)
        raise ValueError(f"all_labels: duplicate label {duplicate!r}")
    gold = raw.get("true_labels")
    targets: dict[str, float] = {}
    if isinstance(gold, list):
        for i, label in enumerate(gold):
            if not isinstance(label, str):
                raise ValueError(f"true_labels[{i}]: expected a string, got {label!r}")
            targets[label] = 1.0
    elif isinstance(gold, Mapping):
        for label, score in gold.items():
            if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
                raise ValueError(f"true_labels[{label!r}]: expected a score in [0, 1], got {score!r}")
            targets[label] = float(score)
    else:
        raise ValueError("true_labels: expected a list of labels or an object label -> score")
    for label in targets:
        if label not in all_labels:
            raise ValueError(f"true_labels: {label!r} is not in all_labels")
    prompt = raw.get("prompt", "") or ""
    if not isinstance(prompt, str):
        raise ValueError("prompt: expected a string")
    examples = raw.get("examples", []) or []
    if not isinstance(examples, list):
        raise ValueError("examples: expected a list")
    for i, example in enumerate(examples):
        if not isinstance(example, Mapping) or not isinstance(example.get("text"), str):
            raise ValueError(f"examples[{i}].text: expected a string")
        labels = example.get("labels", example.get("true_labels"))
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"examples[{i}].labels: expected a list of strings")
    source = raw.get("source", "") or ""
    if not isinstance(source, str):
        raise ValueError("source: expected a string")
    return Record(text, list(all_labels), targets, prompt, [dict(e) for e in examples], source)


def load_records(path: str | os.PathLike[str], skip_invalid: bool = False) -> tuple[list[Record], list[str]]:
    """Every valid record of a file, and the messages of the bad ones.

    With `skip_invalid=False` (the default), the first bad record raises `DataError`; with True,
    bad records are left out and their `file:line: field: problem` messages returned.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    records: list[Record] = []
    problems: list[str] = []
    for line, raw in read_rows(path):
        try:
            records.append(_check_record(raw))
        except ValueError as error:
            message = f"{path}:{line}: {error}"
            if not skip_invalid:
                raise DataError(message) from None
            problems.append(message)
    if not records:
        raise DataError(f"{path}: no valid records")
    return records, problems


def load_descriptions(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A label-descriptions file: {"label": "description"} or {"label": ["description", ...]}."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: file: not valid JSON ({error.msg})") from None
    if not isinstance(raw, Mapping):
        raise DataError(f"{path}:1: file: expected an object label -> description(s)")
    out: dict[str, list[str]] = {}
    for label, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise DataError(f"{path}: {label!r}: expected a description or a list of descriptions")
        out[label] = list(values)
    return out
