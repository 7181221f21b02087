"""everylabel inside other frameworks: `everylabel.integrations.ray.ClassifyBatch` for Ray Data.

Nothing here is imported by `import everylabel`; each integration imports its framework when used,
and a missing one raises `MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

__all__: list[str] = []
