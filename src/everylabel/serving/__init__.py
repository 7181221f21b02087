"""The HTTP service (`everylabel serve`): FastAPI on uvicorn, dynamic batching, Prometheus metrics.

Needs the `serve` extra. `create_app` builds the app over any classifier (torch or ONNX).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
