"""everylabel inside other frameworks: `everylabel.integrations.ray.ClassifyBatch` for Ray Data.

Nothing here is imported by `import everylabel`; each integration imports its framework when used,
and a missing one raises `MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependencyError

__all__: list[str] = []


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
