"""LoRA adapters on a GLiClass model: apply, save alone, load on a base backbone, merge.

A saved adapter folder holds only what training changed: the peft adapter of the backbone, the
head weights, the rows of the three special-token embeddings, the GLiClass config and the
tokenizer. `load_model` recognises such a folder and rebuilds the model on its base backbone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, PreTrainedTokenizerBase

from .config import GLiClassConfig
from .errors import ConfigError
from .modeling.model import GLiClassModel
from .paths import resolve_model_source, resolve_path
from .tokenization import load_label_tokenizer, load_tokenizer, save_label_tokenizer

ADAPTER_MARKER = "everylabel_adapter.json"
# The backbones that get LoRA adapters, by attribute of `model.model`, and their adapter folders.
_ADAPTED = {
    "encoder_model": "adapter",
    "encoder_decoder_model": "adapter",
    "decoder_model": "adapter",
    "label_encoder": "label_adapter",
}
_BACKBONE_PREFIXES = tuple(f"model.{name}." for name in _ADAPTED)


def _backbone_names(model: GLiClassModel) -> list[str]:
    """The backbone (text encoder or encoder-decoder), and a bi-encoder's label encoder."""
    return [model.backbone_name, "label_encoder"] if model.config.is_bi_encoder else [model.backbone_name]


def apply_lora(
    model: GLiClassModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: list[str] | str = "all-linear",
    train_special_tokens: bool = True,
) -> GLiClassModel:
    """Wrap the backbone(s) with LoRA adapters (the head stays fully trainable); returns the model.

    A bi-encoder's label encoder gets its own adapters; the special-token rows are trained only
    where the text input has the markers.
    """
    from peft import LoraConfig, get_peft_model

    inner: Any = model.model
    for name in _backbone_names(model):
        marked = name == model.backbone_name and model.config.uses_label_tokens
        tokens = list(model.config.special_token_ids()) if train_special_tokens and marked else None
        config = LoraConfig(
            r=r,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=target_modules,
            trainable_token_indices=tokens,
        )
        setattr(inner, name, get_peft_model(getattr(inner, name), config))
    return model


def continue_lora(model: GLiClassModel) -> GLiClassModel:
    """Make a loaded adapter's own weights trainable again (LoRA matrices and special-token rows),
    so training goes on in the same adapter instead of stacking a second one; returns the model."""
    inner: Any = model.model
    for name in _backbone_names(model):
        for key, param in getattr(inner, name).named_parameters():
            if "lora_" in key or "trainable_tokens_delta" in key:
                param.requires_grad_(True)
    return model


def lora_settings(model: GLiClassModel) -> tuple[int, int]:
    """(r, alpha) of the text encoder's adapter."""
    encoder: Any = model.encoder
    config: Any = encoder.peft_config["default"]
    return int(config.r), int(config.lora_alpha)


def is_lora(model: GLiClassModel) -> bool:
    return hasattr(model.encoder, "peft_config")


def merge_lora(model: GLiClassModel) -> GLiClassModel:
    """Fold the adapters into the backbone weights: a plain model with the official key names."""
    inner: Any = model.model
    for name in _backbone_names(model):
        backbone = getattr(inner, name)
        if hasattr(backbone, "peft_config"):
            setattr(inner, name, backbone.merge_and_unload())
    return model


def _head_state(model: GLiClassModel) -> dict[str, torch.Tensor]:
    state = {
        k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(_BACKBONE_PREFIXES)
    }
    if model.config.uses_label_tokens:
        embeddings = _base_encoder(model).get_input_embeddings().weight
        ids = torch.tensor(model.config.special_token_ids())
        state["special_token_embeddings"] = embeddings.detach()[ids].clone()
    return state


def _base_encoder(model: GLiClassModel) -> Any:
    encoder: Any = model.encoder
    return encoder.get_base_model() if is_lora(model) else encoder


def save_adapter(
    model: GLiClassModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | os.PathLike[str],
    base: str | None = None,
) -> Path:
    """Write the adapter folder; `base` is the backbone it applies to (default: the config's)."""
    if not is_lora(model):
        raise ValueError("model: has no LoRA adapters; save it with save_pretrained")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # The resized vocabulary would make peft store the whole embedding matrix; the three new rows
    # are kept in head.safetensors instead (and trained rows in the adapter's token deltas).
    for name in _backbone_names(model):
        getattr(model.model, name).save_pretrained(folder / _ADAPTED[name], save_embedding_layers=False)
    save_file(_head_state(model), str(folder / "head.safetensors"))
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"base": base or model.config.encoder_model_name, "format": 1}
    if model.config.is_bi_encoder:
        meta["label_base"] = model.config.label_model_name
        save_label_tokenizer(load_label_tokenizer(model.config), folder)
    (folder / ADAPTER_MARKER).write_text(json.dumps(meta, indent=2))
    return folder


def is_adapter_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / ADAPTER_MARKER).exists()


def load_adapter(
    folder: str | os.PathLike[str],
    base: str | os.PathLike[str] | None = None,
    adapter_name: str = "default",
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    """Rebuild a model from an adapter folder on its base backbone (or `base`), adapters unmerged
    (named `adapter_name` in peft)."""
    from peft import PeftModel

    folder = Path(folder)
    meta = json.loads((folder / ADAPTER_MARKER).read_text())
    base = resolve_model_source(base or meta["base"])
    config = GLiClassConfig.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(base)
    if encoder.get_input_embeddings().num_embeddings != config.vocab_size:
        encoder.resize_token_embeddings(config.vocab_size, mean_resizing=False)
    head = load_file(str(folder / "head.safetensors"))
    if config.uses_label_tokens:
        with torch.no_grad():
            ids = torch.tensor(config.special_token_ids())
            table = encoder.get_input_embeddings().weight
            table[ids] = head.pop("special_token_embeddings").to(table.dtype)  # stored float16 or 32
    label_encoder = None
    if config.is_bi_encoder:
        label_base = meta.get("label_base") or config.label_model_name
        if not label_base:
            raise ConfigError(f"{folder}: a bi-encoder adapter needs its label encoder's name (label_base)")
        label_encoder = AutoModel.from_pretrained(resolve_path(label_base))
    model = GLiClassModel(config, backbone=encoder, label_backbone=label_encoder)
    inner: Any = model.model
    for name in _backbone_names(model):
        adapter = PeftModel.from_pretrained(
            getattr(inner, name), folder / _ADAPTED[name], adapter_name=adapter_name
        )
        setattr(inner, name, adapter)
    missing, unexpected = model.load_state_dict(head, strict=False)
    if unexpected or any(not key.startswith(_BACKBONE_PREFIXES) for key in missing):
        raise ConfigError(f"{folder}: head weights do not fit the config (unexpected {unexpected[:3]})")
    expected = config.special_token_ids() if config.uses_label_tokens else None
    tokenizer = load_tokenizer(str(folder), config.encoder_config.model_type, expected, config.encoder_config)
    return model.eval(), tokenizer


def export_model(
    model: GLiClassModel, tokenizer: PreTrainedTokenizerBase, folder: str | os.PathLike[str]
) -> Path:
    """Save a usable model: an adapter folder for LoRA models, a full checkpoint otherwise."""
    folder = Path(folder)
    if is_lora(model):
        return save_adapter(model, tokenizer, folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if model.config.is_bi_encoder:
        save_label_tokenizer(load_label_tokenizer(model.config), folder)
    return folder
