"""LoRA for training: the options of a config applied through `everylabel.adapters`."""

from __future__ import annotations

from ..adapters import apply_lora as _apply
from ..adapters import continue_lora, export_model, is_lora, lora_settings
from ..modeling.model import GLiClassModel
from .config import LoraOptions, TrainConfigError

__all__ = ["apply_lora", "export_model", "is_lora"]


def apply_lora(model: GLiClassModel, options: LoraOptions) -> GLiClassModel:
    """New adapters per `options`; a model loaded from an adapter folder trains its own adapter on,
    which must then have the r and alpha that `options` name."""
    if is_lora(model):
        have = lora_settings(model)
        if have != (options.r, options.alpha):
            raise TrainConfigError(
                f"lora: the checkpoint's adapter has r={have[0]}, alpha={have[1]}; training goes on in it, so"
                f" set lora.r={have[0]} and lora.alpha={have[1]} (asked r={options.r}, alpha={options.alpha})"
            )
        return continue_lora(model)
    return _apply(
        model,
        r=options.r,
        alpha=options.alpha,
        dropout=options.dropout,
        target_modules=options.target_modules,
        train_special_tokens=options.train_special_tokens,
    )
