"""LoRA for training: the options of a config applied through `everylabel.adapters`."""

from __future__ import annotations

from ..adapters import apply_lora as _apply
from ..adapters import export_model, is_lora
from ..modeling.model import GLiClassModel
from .config import LoraOptions

__all__ = ["apply_lora", "export_model", "is_lora"]


def apply_lora(model: GLiClassModel, options: LoraOptions) -> GLiClassModel:
    return _apply(
        model,
        r=options.r,
        alpha=options.alpha,
        dropout=options.dropout,
        target_modules=options.target_modules,
        train_special_tokens=options.train_special_tokens,
    )
