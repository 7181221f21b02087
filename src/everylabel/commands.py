"""What the commands share: the classifier that a command's model options ask for."""

from __future__ import annotations

import sys
from typing import Any

from .inference.classifier import Classifier


def open_for_command(args: Any) -> Classifier:
    """The classifier a command's --model, --backend, --device, --dtype, --batch-size and
    --max-length ask for (`Classifier.from_pretrained`), with the extra adapters of --adapter
    (`serve`); with --verbose, which runtime runs it is said on stderr."""
    options: dict[str, Any] = {}
    if getattr(args, "adapter", None):  # [(name, folder), ...]; a torch option, so "auto" is torch
        options["adapters"] = dict(args.adapter)
        if getattr(args, "max_loaded_adapters", None) is not None:
            options["max_loaded_adapters"] = args.max_loaded_adapters
    classifier = Classifier.from_pretrained(
        args.model,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_length=args.max_length,
        **options,
    )
    if getattr(args, "verbose", False):
        runtime = classifier.backend.describe()
        name = {"onnx": "onnxruntime"}.get(runtime["backend"], runtime["backend"])
        folder = getattr(classifier.backend, "folder", None)
        place = f" on {folder}" if folder is not None else ""
        print(
            f"everylabel: backend: {name} ({runtime['dtype']}, {runtime['device']}){place}", file=sys.stderr
        )
    return classifier
