"""The user-facing inference layer: texts and labels in, decisions out.

Names load on first use, so the torch-free parts (results, labels, the engine) import without
torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Classifier": ".classifier",
    "Prepared": ".engine",
    "TruncationWarning": ".engine",
    "Label": ".labels",
    "ClassificationResult": ".results",
    "Evidence": ".results",
}

__all__ = ["ClassificationResult", "Classifier", "Evidence", "Label", "Prepared", "TruncationWarning"]

if TYPE_CHECKING:
    from .classifier import Classifier
    from .engine import Prepared, TruncationWarning
    from .labels import Label
    from .results import ClassificationResult, Evidence


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'everylabel.inference' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
