"""LoRA adapter folders made without training, for the tests of extra adapters (`load_adapter`)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from everylabel import create_model
from everylabel.adapters import apply_lora, save_adapter

TEXTS = ["the match ended with a late goal", "bread and soup for dinner", "rain and wind all day", ""]
LABELS = ["sports", "food", "weather"]
BACKBONE_PREFIXES = ("model.encoder_model.", "model.encoder_decoder_model.", "model.decoder_model.")


def make_adapters(
    backbone: Path, root: Path, seeds: dict[str, int], special_rows: bool = True, **config
) -> dict[str, Path]:
    """{name: adapter folder} on `backbone`, one per seed: the LoRA B matrices, the trained token rows
    and the head drawn at random, so the adapters differ (one model is created, then copied)."""
    model, tokenizer = create_model(backbone, dropout=0.0, **{"scorer_type": "mlp", **config})
    folders = {}
    for name, seed in seeds.items():
        generator = torch.Generator().manual_seed(seed)
        adapted = apply_lora(copy.deepcopy(model), r=4, alpha=8, train_special_tokens=special_rows)
        with torch.no_grad():
            for key, param in adapted.named_parameters():
                lora = "lora_B" in key or "trainable_tokens_delta" in key
                head = not key.startswith(BACKBONE_PREFIXES) and not key.endswith("logit_scale")
                if lora or head:
                    param.copy_(torch.randn(param.shape, generator=generator) * (0.2 if lora else 0.1))
        folders[name] = save_adapter(adapted, tokenizer, root / name)
    return folders
