"""`everylabel batch`: label big files exactly once, into Parquet parts, in-process or on Ray.

sources (find and read the input rows) -> parts (the plan, the manifest, atomic part files,
resume) -> runner (the local and Ray engines, both through `classify.ClassifyBatch`);
`command` is the command line's side. Names load on first use: importing this package imports
neither pyarrow, ray nor torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BatchJob": "everylabel.batch.runner",
    "run_batch": "everylabel.batch.runner",
    "add_batch_parser": "everylabel.batch.command",
    "batch_command": "everylabel.batch.command",
}

__all__ = ["BatchJob", "add_batch_parser", "batch_command", "run_batch"]

if TYPE_CHECKING:
    from .command import add_batch_parser, batch_command
    from .runner import BatchJob, run_batch


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'everylabel.batch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
