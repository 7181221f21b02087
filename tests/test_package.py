"""The public surface: explicit names, and a light `import everylabel`."""

from __future__ import annotations

import subprocess
import sys

import everylabel

PUBLIC = {
    "__version__",
    "GLiClassConfig",
    "ConfigError",
    "EverylabelError",
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
    import importlib

    for name in PUBLIC - {"__version__"}:
        module = importlib.import_module(everylabel._EXPORTS[name])
        assert getattr(everylabel, name) is getattr(module, name)


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


def test_every_user_facing_error_has_one_base() -> None:
    from everylabel import errors
    from everylabel.cli_io import CliError
    from everylabel.evaluation.datasets import DatasetUnavailable
    from everylabel.training.config import TrainConfigError
    from everylabel.training.data import DataError

    kinds = [CliError, DatasetUnavailable, TrainConfigError, DataError, everylabel.ConfigError]
    kinds += [
        errors.InputError,
        errors.MissingDependencyError,
        errors.NotSupportedError,
        errors.NumericalError,
    ]
    assert all(issubclass(kind, everylabel.EverylabelError) for kind in kinds)
    assert everylabel.ConfigError is errors.ConfigError
    from everylabel.config import ConfigError

    assert ConfigError is errors.ConfigError


# Imports that must not exist: training and the shared layers look only down, never at inference/,
# and adapters.py and loading.py do not import each other both ways.
FORBIDDEN = {
    "training/*.py": ("everylabel.inference", "..inference"),
    "runtime.py": ("everylabel.inference", ".inference", "everylabel.training", ".training"),
    "prompt.py": ("everylabel.inference", ".inference", "everylabel.training", ".training"),
    "adapters.py": ("everylabel.loading", ".loading"),
}


def _imports(path) -> list[tuple[str, bool]]:
    """(module imported, only for type checking) for every import in a file, nested ones too."""
    import ast

    tree = ast.parse(path.read_text())
    checking = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            checking |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append(("." * node.level + (node.module or ""), id(node) in checking))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in checking) for alias in node.names]
    return found


def test_layers_import_only_downwards() -> None:
    from pathlib import Path

    root = Path(everylabel.__file__).parent
    for pattern, banned in FORBIDDEN.items():
        files = sorted(root.glob(pattern))
        assert files, pattern
        for path in files:
            for module, type_only in _imports(path):
                bad = any(module == b or module.startswith(b + ".") for b in banned)
                assert type_only or not bad, f"{path.relative_to(root)} imports {module}"
