"""Validation of everything `classify` takes, before any work: errors name the field and the item."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..prompt import Example, Request
from .labels import Label, normalize_label_set

VALID_TRUNCATION = ("warn", "error", "chunk")
VALID_AGGREGATION = ("max", "mean")


def check_choice(field: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise InputError(field, f"{value!r} is not one of {', '.join(map(repr, allowed))}")


def normalize_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence):
        raise InputError("texts", f"expected a string or a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}]", f"expected a string, got {type(text).__name__}")
    return list(texts)


def _is_hierarchy(value: Any) -> bool:
    return isinstance(value, Mapping) and "name" not in value


def _one_text_labels(item: Any) -> bool:
    """An item of `labels` that is one text's own label set (a list or a hierarchy)."""
    return isinstance(item, list) or _is_hierarchy(item)


def labels_per_text(labels: Any) -> bool:
    """Whether `labels` holds one label set per text rather than one shared set."""
    is_list = isinstance(labels, Sequence) and not isinstance(labels, str)
    return is_list and bool(labels) and all(_one_text_labels(item) for item in labels)


def examples_per_text(examples: Any) -> bool:
    """Whether `examples` holds one list (or None) per text rather than one shared list."""
    is_list = isinstance(examples, Sequence) and not isinstance(examples, str)
    return is_list and bool(examples) and all(item is None or isinstance(item, list) for item in examples)


def normalize_labels(labels: Any, count: int, separator: str = ".") -> list[tuple[list[Label], Any]]:
    """One (labels, hierarchy) per text, from a shared list/hierarchy or one per text."""
    if _is_hierarchy(labels):
        shared = normalize_label_set(labels, "labels", separator)
        return [shared] * count
    if not isinstance(labels, Sequence) or isinstance(labels, str):
        raise InputError("labels", f"expected a list of labels or a hierarchy, got {type(labels).__name__}")
    per_text = [_one_text_labels(item) for item in labels]
    if labels and all(per_text):
        if len(labels) != count:
            raise InputError("labels", f"{len(labels)} label lists for {count} texts; give one per text")
        return [normalize_label_set(item, f"labels[{i}]", separator) for i, item in enumerate(labels)]
    if any(per_text):
        index = per_text.index(True) if not per_text[0] else per_text.index(False)
        raise InputError(f"labels[{index}]", "mixes label names with per-text label lists")
    shared = normalize_label_set(labels, "labels", separator)
    return [shared] * count


def normalize_prompts(prompt: Any, count: int) -> list[str]:
    if prompt is None or isinstance(prompt, str):
        return [prompt or ""] * count
    if not isinstance(prompt, Sequence) or len(prompt) != count:
        raise InputError("prompt", f"expected a string or one prompt per text ({count})")
    out = []
    for i, item in enumerate(prompt):
        if item is not None and not isinstance(item, str):
            raise InputError(f"prompt[{i}]", f"expected a string or None, got {type(item).__name__}")
        out.append(item or "")
    return out


def _example(item: Any, field: str) -> Example:
    if not isinstance(item, Mapping):
        raise InputError(field, f"expected {{'text': ..., 'labels': [...]}}, got {type(item).__name__}")
    text = item.get("text")
    labels = item.get("labels", item.get("true_labels"))
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{field}.text", "expected a non-empty string")
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise InputError(f"{field}.labels", "expected a list of label names")
    for j, label in enumerate(labels):
        if not isinstance(label, str):
            raise InputError(f"{field}.labels[{j}]", f"expected a string, got {type(label).__name__}")
    return Example(text, tuple(labels))


def normalize_examples(examples: Any, count: int) -> list[tuple[Example, ...]]:
    """Few-shot examples: one shared list of {"text", "labels"}, or one list (or None) per text."""
    if not examples:
        return [()] * count
    if not isinstance(examples, Sequence):
        raise InputError("examples", f"expected a list, got {type(examples).__name__}")
    if examples_per_text(examples):
        if len(examples) != count:
            raise InputError("examples", f"{len(examples)} example lists for {count} texts")
        return [
            tuple(_example(e, f"examples[{i}][{j}]") for j, e in enumerate(item or []))
            for i, item in enumerate(examples)
        ]
    shared = tuple(_example(e, f"examples[{j}]") for j, e in enumerate(examples))
    return [shared] * count


def _probability(value: Any, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0 <= value <= 1
    ):
        raise InputError(field, f"threshold must be a number in [0, 1], got {value!r}")
    return float(value)


def normalize_thresholds(
    threshold: Any, label_sets: Sequence[list[Label]], check_names: bool = True
) -> list[dict[str, float]]:
    """A threshold per text and label, from one number, one per text, or a mapping label -> number.

    With a mapping, labels it does not name keep the default 0.5; naming a label that is not a
    candidate of any text is an error (most likely a typo) unless `check_names` is False.
    """
    count = len(label_sets)
    if isinstance(threshold, Mapping):
        known = {label.name for labels in label_sets for label in labels}
        for key, value in threshold.items():
            if check_names and key not in known:
                raise InputError(f"threshold[{key!r}]", "is not a candidate label")
            _probability(value, f"threshold[{key!r}]")
        return [
            {label.name: float(threshold.get(label.name, 0.5)) for label in labels} for labels in label_sets
        ]
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        if len(threshold) != count:
            raise InputError("threshold", f"{len(threshold)} thresholds for {count} texts")
        values = [_probability(v, f"threshold[{i}]") for i, v in enumerate(threshold)]
    else:
        values = [_probability(threshold, "threshold")] * count
    return [
        dict.fromkeys((label.name for label in labels), value)
        for labels, value in zip(label_sets, values, strict=True)
    ]


def build_requests(
    texts: list[str],
    label_sets: Sequence[list[Label]],
    prompts: Sequence[str],
    examples: Sequence[tuple[Example, ...]],
) -> list[Request]:
    return [
        Request(text, [lab.name for lab in labels], [lab.description for lab in labels], prompt, shots)
        for text, labels, prompt, shots in zip(texts, label_sets, prompts, examples, strict=True)
    ]
