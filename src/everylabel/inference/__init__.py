"""The user-facing inference layer: texts and labels in, decisions out."""

from .classifier import Classifier, Prepared, TruncationWarning
from .labels import Label
from .results import ClassificationResult, Evidence

__all__ = ["ClassificationResult", "Classifier", "Evidence", "Label", "Prepared", "TruncationWarning"]
