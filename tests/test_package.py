"""The public surface: explicit names, and a light `import everylabel`."""

from __future__ import annotations

import subprocess
import sys

import everylabel

PUBLIC = {
    "__version__",
    "GLiClassConfig",
    "ConfigError",
    "GLiClassModel",
    "GLiClassOutput",
    "load_model",
    "create_model",
    "load_tokenizer",
    "SPECIAL_TOKENS",
    "Classifier",
    "ClassificationResult",
    "Evidence",
    "InputError",
    "Label",
    "TruncationWarning",
}


def test_public_names() -> None:
    assert set(everylabel.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(everylabel, name) is not None


def test_import_is_light() -> None:
    code = "import sys, everylabel; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        everylabel.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("expected AttributeError")
