"""The per-text arguments of `Classifier.classify_iter`, taken window by window beside the texts."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any, Final, TypeVar

from ..errors import InputError
from .inputs import examples_per_text, labels_per_text

T = TypeVar("T")
_END: Final = object()
_INDEXED = re.compile(r"^(\w+)\[(\d+)\](.*)$", re.DOTALL)


def take(source: Iterator[T], count: int) -> list[T]:
    """The next `count` items of `source` (fewer at its end)."""
    return list(islice(source, count))


def _is_iterator(value: Any) -> bool:
    """A one-pass stream (generator, file, map, ...): per text by nature."""
    return isinstance(value, Iterator)


def _per_text(name: str, value: Any) -> bool:
    """Whether a classify argument holds one value per text (the rules `classify` applies)."""
    if _is_iterator(value):
        return True
    if name == "labels":
        return labels_per_text(value)
    if name == "examples":
        return examples_per_text(value)
    if name == "prompt":
        return value is not None and not isinstance(value, str)
    return isinstance(value, Sequence) and not isinstance(value, str)  # threshold: one per text


class StreamArguments:
    """`labels`, `prompt`, `threshold`, `examples`: shared values, or per-text values read in step."""

    def __init__(self, **values: Any) -> None:
        self.values = values
        self.per_text = {name: _per_text(name, value) for name, value in values.items()}
        self.sources = {name: iter(value) for name, value in values.items() if self.per_text[name]}
        self.labels_per_text = self.per_text.get("labels", False)

    def take(self, count: int, offset: int) -> dict[str, Any]:
        """The arguments for the `count` texts from index `offset` on."""
        out = {}
        for name, value in self.values.items():
            if not self.per_text[name]:
                out[name] = value
                continue
            items = take(self.sources[name], count)
            if len(items) < count:
                raise InputError(name, f"no value for texts[{offset + len(items)}]; give one per text")
            out[name] = items
        return out

    def check_exhausted(self, total: int) -> None:
        """Per-text values left over after the last text are an error."""
        for name, source in self.sources.items():
            if next(source, _END) is not _END:
                raise InputError(name, f"more values than the {total} texts; give one per text")

    def renumber(self, error: InputError, offset: int) -> InputError:
        """Name the text's index in the whole stream: "texts[3]" of a window at 2048 -> "texts[2051]"."""
        match = _INDEXED.match(error.field)
        if match is None or offset == 0:
            return error
        name, index, rest = match.groups()
        if name != "texts" and not self.per_text.get(name, False):
            return error
        return InputError(f"{name}[{int(index) + offset}]{rest}", error.problem)
