"""Label orders: answers that do not depend on the order a caller lists the labels in.

A uni-encoder reads the labels in sequence, so their positions change the scores (the same labels
in another order can flip the top answer). `label_order="given"` scores the caller's order;
"sorted" scores one canonical order (by name), so any order of the same labels gives the same
scores at no cost; "robust" scores `ROBUST_ORDERS` canonical orders that put every label near the
front, the back and the middle (sorted, reversed, rotated by half, rotated and reversed) and
averages the probabilities, also order-independent, at up to that many times the cost.
"""

from __future__ import annotations

from typing import Literal

from .labels import Label

LabelOrder = Literal["given", "sorted", "robust"]
VALID_LABEL_ORDERS: tuple[str, ...] = ("given", "sorted", "robust")
ROBUST_ORDERS = 4


def canonical(labels: list[Label]) -> list[Label]:
    """["b", "A", "a"] -> ["A", "a", "b"]: by case-folded name, then name."""
    return sorted(labels, key=lambda label: (label.name.casefold(), label.name))


def label_orders(labels: list[Label], mode: str) -> list[list[Label]]:
    """The orders one text's labels are scored in (distinct orders only: one label has one)."""
    if mode == "given":
        return [labels]
    base = canonical(labels)
    if mode == "sorted":
        return [base]
    half = len(base) // 2
    rotated = base[half:] + base[:half]
    variants: dict[tuple[str, ...], list[Label]] = {}
    for order in (base, base[::-1], rotated, rotated[::-1])[:ROBUST_ORDERS]:
        variants.setdefault(tuple(label.name for label in order), order)
    return list(variants.values())
