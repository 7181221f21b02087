"""When a streaming session classifies, and over how much of its text (torch-free).

A strategy sees each non-empty chunk after it is cached: `fires(tokens_added, cached_tokens,
chunk)` says whether to classify now, `window()` how many of the last cached tokens to classify
over (None: all). The official `gliclass.streaming` strategies, with the same decisions.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InputError


class Strategy:
    """Classify on every chunk, over everything cached (the default)."""

    kind = "every_chunk"

    def fires(self, tokens_added: int, cached_tokens: int, chunk: str) -> bool:
        return tokens_added > 0

    def window(self) -> int | None:
        return None

    def fresh(self) -> Strategy:
        """A copy with its own counters, for a new session."""
        return copy.deepcopy(self)


EveryChunk = Strategy


class EveryNTokens(Strategy):
    """Classify once at least `n` tokens arrived since the last time it fired."""

    kind = "every_n_tokens"

    def __init__(self, n: int) -> None:
        _positive("strategy.n", n)
        self.n = n
        self._since = 0

    def fires(self, tokens_added: int, cached_tokens: int, chunk: str) -> bool:
        self._since += tokens_added
        if self._since >= self.n:
            self._since = 0
            return True
        return False


class OnDelimiter(Strategy):
    """Classify when a chunk contains `delimiter` (a sentence end, a newline)."""

    kind = "on_delimiter"

    def __init__(self, delimiter: str) -> None:
        if not isinstance(delimiter, str) or not delimiter:
            raise InputError("strategy.delimiter", f"expected a non-empty string, got {delimiter!r}")
        self.delimiter = delimiter

    def fires(self, tokens_added: int, cached_tokens: int, chunk: str) -> bool:
        return self.delimiter in chunk


class Never(Strategy):
    """Only cache (prefill a context); never classify."""

    kind = "never"

    def fires(self, tokens_added: int, cached_tokens: int, chunk: str) -> bool:
        return False


class SlidingWindow(Strategy):
    """Classify on every chunk over the last `size` cached tokens only."""

    kind = "sliding_window"

    def __init__(self, size: int) -> None:
        _positive("strategy.size", size)
        self.size = size

    def window(self) -> int | None:
        return self.size


class Composed(Strategy):
    """Fire as `trigger` does, over the window of `window`."""

    kind = "composed"

    def __init__(self, trigger: Strategy, window: Strategy) -> None:
        self.trigger, self.inner_window = trigger, window

    def fires(self, tokens_added: int, cached_tokens: int, chunk: str) -> bool:
        return self.trigger.fires(tokens_added, cached_tokens, chunk)

    def window(self) -> int | None:
        return self.inner_window.window()


KINDS: dict[str, Any] = {
    "every_chunk": lambda spec: EveryChunk(),
    "every_n_tokens": lambda spec: EveryNTokens(spec.get("n")),
    "on_delimiter": lambda spec: OnDelimiter(spec.get("delimiter")),
    "sliding_window": lambda spec: SlidingWindow(spec.get("size")),
    "never": lambda spec: Never(),
    "composed": lambda spec: Composed(
        parse_strategy(spec.get("trigger")), parse_strategy(spec.get("window"))
    ),
}


def parse_strategy(spec: Any) -> Strategy:
    """A strategy from its JSON form: "every_chunk", or {"kind": "every_n_tokens", "n": 200},
    {"kind": "composed", "trigger": {...}, "window": {"kind": "sliding_window", "size": 512}}."""
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise InputError(
            "strategy", f"expected one of {', '.join(KINDS)} (as a name or {{'kind': ...}}), got {spec!r}"
        )
    return KINDS[spec["kind"]](spec)


def _positive(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(field, f"expected a whole number of tokens >= 1, got {value!r}")
