"""A bounded, thread-safe LRU of vectors by string (label vectors of bi-encoders and retrievers).

Torch-free: it holds whatever vectors it is given (torch tensors or numpy arrays).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Generic, TypeVar

from ..errors import InputError

# Distinct labels whose vectors are kept (384 floats each for MiniLM: 16,384 labels take 25 MB).
LABEL_VECTOR_CACHE_SIZE: Final = 16384

Vector = TypeVar("Vector")


class LabelVectorCache(Generic[Vector]):
    """label string -> vector (hidden,), least recently used dropped first; safe under threads."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise InputError("label_cache_size", f"must be >= 0, got {size}")
        self.size = size
        self._items: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, keys: Sequence[str]) -> dict[str, Vector]:
        found = {}
        with self._lock:
            for key in keys:
                vector = self._items.get(key)
                if vector is not None:
                    self._items.move_to_end(key)
                    found[key] = vector
        return found

    def put(self, items: dict[str, Vector]) -> None:
        with self._lock:
            for key, vector in items.items():
                self._items[key] = vector
                self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def fetch(
        self, keys: Sequence[str], compute: Callable[[list[str]], Iterable[Vector]]
    ) -> dict[str, Vector]:
        """Vectors of the distinct `keys`: cached ones as they are, the others from
        `compute(missing) -> (len(missing), hidden)`, which are then cached."""
        distinct = list(dict.fromkeys(keys))
        table = self.get(distinct)
        missing = [key for key in distinct if key not in table]
        if missing:
            fresh = dict(zip(missing, compute(missing), strict=True))
            self.put(fresh)
            table.update(fresh)
        return table
