"""What `Classifier.classify` returns for each text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .labels import nest_scores


@dataclass(frozen=True)
class Evidence:
    """The text window that gave a label its score (long texts split with truncation="chunk")."""

    window: int  # index of the window within its label group
    token_start: int
    token_end: int
    char_start: int | None  # character span in the text, when the tokenizer reports offsets
    char_end: int | None


@dataclass(frozen=True)
class Shortlist:
    """What the retriever chose for one text when `classify(..., shortlist=k)` was asked."""

    labels: list[str]  # the k labels the model scored, best retriever score first
    retriever_scores: dict[str, float]  # the retriever's score of each of them
    candidates: int  # how many labels the retriever ranked
    retriever: str  # which retriever ranked them


@dataclass
class ClassificationResult:
    """The decision for one text: predicted labels (best first) and the score of every candidate."""

    index: int
    labels: list[str]
    scores: dict[str, float]
    text_tokens: int = 0
    truncated: bool = False
    cut_tokens: int = 0  # text tokens the model did not see (truncation="warn")
    windows: int = 1  # text windows scored (truncation="chunk")
    label_groups: int = 1  # passes the labels were split over because they did not fit together
    evidence: dict[str, Evidence] | None = None
    empty: bool = False  # the text was empty: nothing was scored
    hierarchy: Any = field(default=None, repr=False)
    shortlist: Shortlist | None = None  # with shortlist=k: the labels the model scored (of all given)

    def nested(self) -> Any:
        """Scores in the shape of the label hierarchy the caller gave (flat dict without one; an empty
        text has no scores: {})."""
        if self.empty:
            return {}
        return nest_scores(self.scores, self.hierarchy) if self.hierarchy is not None else dict(self.scores)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (the CLI writes one per line)."""
        out: dict[str, Any] = {
            "index": self.index,
            "labels": self.labels,
            "scores": self.scores,
            "text_tokens": self.text_tokens,
            "truncated": self.truncated,
            "cut_tokens": self.cut_tokens,
        }
        if self.windows > 1:
            out["windows"] = self.windows
        if self.label_groups > 1:
            out["label_groups"] = self.label_groups
        if self.evidence is not None:
            out["evidence"] = {k: vars(v) for k, v in self.evidence.items()}
        if self.empty:
            out["empty"] = True
        if self.hierarchy is not None:
            out["nested"] = self.nested()
        if self.shortlist is not None:
            out["shortlist"] = self.shortlist.labels
            out["retriever_scores"] = self.shortlist.retriever_scores
            out["candidates"] = self.shortlist.candidates
        return out
