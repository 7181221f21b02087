"""Load a GLiClass checkpoint, or create a new model from a backbone for training."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedTokenizerBase

from .adapters import is_adapter_folder, load_adapter, merge_lora
from .config import BI_ENCODERS, GLiClassConfig
from .errors import ConfigError
from .modeling.model import GLiClassModel
from .paths import DEFAULT_MODEL_NAME, MINILM_NAME, PathLike, resolve_model_source, resolve_path
from .tokenization import add_special_tokens, load_tokenizer

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MINILM_NAME",
    "create_model",
    "is_gliclass_checkpoint",
    "load_model",
    "resolve_path",
]


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' "Loading weights" progress bars off for the block, then as they were: loading
    a model takes a second, not long enough to show progress for."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def load_model(
    path: PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    *,
    merge_adapters: bool = False,
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    """A published or saved GLiClass checkpoint (folder or hub id) and its tokenizer, in eval mode.

    A LoRA adapter folder written by everylabel is rebuilt on its base backbone; `merge_adapters`
    folds its adapters into the backbone weights in float32, before any cast to `dtype` (for
    inference: one matrix product per adapted linear module instead of three, and the delta is not
    rounded apart from the weight it adds to).
    """
    with quiet_loading():
        return _load_model(resolve_model_source(path), device, dtype, merge_adapters)


def _load_model(
    path: str, device: str | torch.device | None, dtype: torch.dtype | None, merge_adapters: bool
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    if is_adapter_folder(path):
        model, tokenizer = load_adapter(path)
        if merge_adapters:
            merge_lora(model)
        if device is not None or dtype is not None:
            torch.nn.Module.to(model, device=device, dtype=dtype)
        return model, tokenizer
    kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    model = GLiClassModel.from_pretrained(str(path), **kwargs)
    config: GLiClassConfig = model.config
    expected = config.special_token_ids() if config.uses_label_tokens else None
    tokenizer = load_tokenizer(str(path), config.encoder_config.model_type, expected, config.encoder_config)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def create_model(
    backbone: PathLike,
    tokenizer: PathLike | None = None,
    *,
    label_model: PathLike | None = None,
    **config_overrides: Any,
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    """A new GLiClass model on a pretrained backbone (folder or hub id), ready for training.

    Adds `<<LABEL>>`, `<<SEP>>`, `<<EXAMPLE>>` to the tokenizer, resizes the embeddings and stores
    the token ids in the config. The head is freshly initialised; `config_overrides` are config keys.
    With `architecture_type="bi-encoder"` or `"bi-encoder-fused"`, `label_model` is the pretrained
    label encoder (default: the backbone); the plain bi-encoder's text input has no markers, so its
    tokenizer gets none.
    """
    name = str(backbone)  # recorded as given: a packaged name stays portable across machines
    backbone = resolve_model_source(backbone)
    backbone_config = AutoConfig.from_pretrained(backbone)
    tok = load_tokenizer(str(tokenizer or backbone), backbone_config.model_type)
    architecture = config_overrides.get("architecture_type", "uni-encoder")
    encoder = AutoModel.from_pretrained(str(backbone))
    if architecture != "bi-encoder":
        ids = add_special_tokens(tok)
        keys = ("class_token_index", "text_token_index", "example_token_index")
        config_overrides.update(zip(keys, ids, strict=True))
        if encoder.get_input_embeddings().num_embeddings < len(tok):
            encoder.resize_token_embeddings(len(tok))
    label_encoder = None
    if architecture in BI_ENCODERS:
        label_name = str(label_model) if label_model is not None else name
        label_encoder = AutoModel.from_pretrained(resolve_path(label_name))
        config_overrides.update(label_model_name=label_name, label_model_config=label_encoder.config)
    elif label_model is not None:
        raise ConfigError(f"label_model: only bi-encoders have one, not architecture_type {architecture!r}")
    config = GLiClassConfig(
        encoder_config=encoder.config,
        encoder_model=name,
        vocab_size=encoder.get_input_embeddings().num_embeddings,
        **config_overrides,
    )
    model = GLiClassModel(config, backbone=encoder, label_backbone=label_encoder)
    return model, tok


def is_gliclass_checkpoint(source: str) -> bool:
    """Whether a local folder or a hub id holds a GLiClass checkpoint (its config.json says so)."""
    path = Path(resolve_path(source))
    if path.is_dir():
        config_file = path / "config.json"
        return config_file.exists() and json.loads(config_file.read_text()).get("model_type") == "GLiClass"
    try:
        raw, _ = PretrainedConfig.get_config_dict(str(source))
    except OSError:  # not on the hub (or not reachable): a backbone name, as create_model will say
        return False
    return raw.get("model_type") == "GLiClass"
