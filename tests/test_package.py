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


# The package's floors, ground first: a module imports only from its own floor or below (every
# import counts, also those inside functions and for type checking), and no modules import each
# other in a circle. One import runs up, named here with its reason.
FLOORS = [
    ["errors", "paths", "padding", "data_recipes"],
    ["extras", "digests", "jsonfiles", "config", "tokenization", "metrics", "cli_io"],
    ["runtime", "prompt"],
    ["label_tokens", "modeling"],
    ["adapters"],
    ["loading"],
    ["inference"],
    ["training", "onnx", "streaming"],
    ["backends"],
    ["commands", "evaluation", "serving"],
    ["batch"],
    ["integrations"],
    ["cli", "demo", "__main__", ""],
]
# `Classifier.from_pretrained` and `Classifier.retriever` reach the one resolver, which sits above
# the engine because the ONNX runtime and its export cache (building needs torch) do; the resolver
# is handed the class to build and never imports it back.
UPWARD = {("everylabel.inference.classifier", "everylabel.backends")}


def _module_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (every import statement, wherever it stands)."""
    import ast
    from pathlib import Path

    root = Path(everylabel.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = ("everylabel", *path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                target = (
                    (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
                )
                targets = [f"{target}.{alias.name}" for alias in node.names] + [target]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _floor(module: str) -> int:
    unit = module.split(".")[1] if "." in module else ""
    for level, units in enumerate(FLOORS):
        if unit in units:
            return level
    raise AssertionError(f"{module} is on no floor of FLOORS")


def test_the_package_has_floors_and_no_circles() -> None:
    graph = _module_graph()
    upward = {(a, b) for a, targets in graph.items() for b in targets if _floor(b) > _floor(a)}
    assert upward == UPWARD
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []
