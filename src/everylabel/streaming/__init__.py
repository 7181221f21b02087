"""Streaming classification of growing documents with a decoder-kv model (`StreamingSessions`).

`strategies` decides when a session classifies (torch-free); `sessions` keeps each session's
decoder cache and runs the model (needs torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .strategies import (
    Composed,
    EveryChunk,
    EveryNTokens,
    Never,
    OnDelimiter,
    SlidingWindow,
    Strategy,
    parse_strategy,
)

if TYPE_CHECKING:
    from .sessions import StreamingSessions

__all__ = [
    "Composed",
    "EveryChunk",
    "EveryNTokens",
    "Never",
    "OnDelimiter",
    "SlidingWindow",
    "Strategy",
    "StreamingSessions",
    "parse_strategy",
]


def __getattr__(name: str) -> Any:
    if name == "StreamingSessions":  # torch is imported only when sessions are made
        from .sessions import StreamingSessions

        return StreamingSessions
    raise AttributeError(name)
