"""Optional extras: import one, or say which extra of the package brings it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, what: str) -> ModuleType:
    """`module` imported, or `MissingDependencyError` saying which extra brings it.

    require("pyarrow", "batch", "Parquet output") -> the pyarrow module
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs {module.split('.')[0]} (pip install 'everylabel[{extra}]')"
        ) from None
