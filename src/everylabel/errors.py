"""The error raised for bad user input: it names the field and the item."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to `classify` (or the CLI). `field` is like "labels[2]" or "texts[7]"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
