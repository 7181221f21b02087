"""everylabel: GLiClass zero-shot and few-shot text classification.

Heavy modules (torch, transformers) load on first use of a public name, so `import everylabel`
and the command line's `--help` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "GLiClassConfig": "everylabel.config",
    "ConfigError": "everylabel.errors",
    "EverylabelError": "everylabel.errors",
    "GLiClassModel": "everylabel.modeling.model",
    "GLiClassOutput": "everylabel.modeling.model",
    "load_model": "everylabel.loading",
    "create_model": "everylabel.loading",
    "load_tokenizer": "everylabel.tokenization",
    "Classifier": "everylabel.inference.classifier",
    "ClassificationResult": "everylabel.inference.results",
    "Evidence": "everylabel.inference.results",
    "Label": "everylabel.inference.labels",
    "InputError": "everylabel.errors",
    "TruncationWarning": "everylabel.inference.engine",
    "SPECIAL_TOKENS": "everylabel.tokenization",
}

__all__ = [
    "SPECIAL_TOKENS",
    "ClassificationResult",
    "Classifier",
    "ConfigError",
    "EverylabelError",
    "Evidence",
    "GLiClassConfig",
    "GLiClassModel",
    "GLiClassOutput",
    "InputError",
    "Label",
    "TruncationWarning",
    "__version__",
    "create_model",
    "load_model",
    "load_tokenizer",
]

if TYPE_CHECKING:
    from .config import GLiClassConfig
    from .errors import ConfigError, EverylabelError, InputError
    from .inference.classifier import Classifier
    from .inference.engine import TruncationWarning
    from .inference.labels import Label
    from .inference.results import ClassificationResult, Evidence
    from .loading import create_model, load_model
    from .modeling.model import GLiClassModel, GLiClassOutput
    from .tokenization import SPECIAL_TOKENS, load_tokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'everylabel' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
