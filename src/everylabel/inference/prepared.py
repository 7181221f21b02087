"""One call, validated and laid out: what `ClassifierEngine.prepare` hands to the later stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..prompt import Pass, Request, RequestPlan, Truncation
from .results import Shortlist

Aggregation = Literal["max", "mean"]


@dataclass(kw_only=True, eq=False)
class Prepared:
    """Everything `prepare` worked out; `passes[i]` is one model input, the rest decodes.

    A call with `label_order` other than "given" scores each text's labels in several orders:
    `orders[t]` consecutive requests per text, and `label_names[t]` the caller's order, which the
    result keeps.
    """

    requests: list[Request]
    plans: list[RequestPlan]  # per request
    passes: list[Pass]
    request_of_text: list[int | None]  # per input text: its first request, None for an empty text
    thresholds: list[dict[str, float]]  # per input text: label -> decision threshold (multi-label)
    hierarchies: list[Any]  # per input text: the label hierarchy the caller gave, or None
    multi_label: bool
    aggregation: Aggregation
    truncation: Truncation
    shortlists: list[Shortlist | None] | None = None  # per input text, with shortlist=k
    orders: list[int] | None = None
    label_names: list[list[str]] | None = None
    # single-label calls over a hierarchy: per input text, label -> its top-level group (one label
    # is chosen per group); None elsewhere
    choice_groups: list[dict[str, int] | None] | None = None
    # a bi-encoder's vectors of this call's label strings (label piece -> vector); they can depend on
    # the call (official padding), so they travel with it
    label_table: dict[Any, Any] | None = None
    # a bi-encoder call with in-context examples: per request, the key under which `label_table`
    # holds its label vectors refit to its examples (`example_vectors.py`), or None (its own vectors)
    label_fits: list[int | None] | None = None
    adapter: str | None = None  # the extra adapter that scores this call (None: the model's own weights)

    @property
    def tokens(self) -> int:
        """Token ids over all passes: the work this call asks of the model."""
        return sum(item.tokens for item in self.passes)

    def pass_labels(self, index: int) -> list[str]:
        """The label names of pass `index`'s slots, in slot order."""
        item = self.passes[index]
        start, end = self.plans[item.request].groups[item.group]
        return self.requests[item.request].labels[start:end]
