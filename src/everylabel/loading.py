"""Load a GLiClass checkpoint, or create a new model from a backbone for training."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerBase

from .adapters import is_adapter_folder, load_adapter
from .config import GLiClassConfig
from .modeling.model import GLiClassModel
from .paths import DEFAULT_MODEL_NAME, MINILM_NAME, PathLike, resolve_path
from .tokenization import add_special_tokens, load_tokenizer

__all__ = ["DEFAULT_MODEL_NAME", "MINILM_NAME", "create_model", "load_model", "resolve_path"]


def load_model(
    path: PathLike, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    """A published or saved GLiClass checkpoint (folder or hub id) and its tokenizer, in eval mode.

    A LoRA adapter folder written by everylabel is rebuilt on its base backbone.
    """
    path = resolve_path(path)
    if is_adapter_folder(path):
        model, tokenizer = load_adapter(path)
        if device is not None or dtype is not None:
            torch.nn.Module.to(model, device=device, dtype=dtype)
        return model, tokenizer
    kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    model = GLiClassModel.from_pretrained(str(path), **kwargs)
    config: GLiClassConfig = model.config
    tokenizer = load_tokenizer(
        str(path), config.encoder_config.model_type, config.special_token_ids(), config.encoder_config
    )
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def create_model(
    backbone: PathLike, tokenizer: PathLike | None = None, **config_overrides: Any
) -> tuple[GLiClassModel, PreTrainedTokenizerBase]:
    """A new GLiClass model on a pretrained backbone (folder or hub id), ready for training.

    Adds `<<LABEL>>`, `<<SEP>>`, `<<EXAMPLE>>` to the tokenizer, resizes the embeddings and stores
    the token ids in the config. The head is freshly initialised; `config_overrides` are config keys.
    """
    name = str(backbone)  # recorded as given: a packaged name stays portable across machines
    backbone = resolve_path(backbone)
    backbone_config = AutoConfig.from_pretrained(backbone)
    tok = load_tokenizer(str(tokenizer or backbone), backbone_config.model_type)
    label_id, sep_id, example_id = add_special_tokens(tok)
    encoder = AutoModel.from_pretrained(str(backbone))
    if encoder.get_input_embeddings().num_embeddings < len(tok):
        encoder.resize_token_embeddings(len(tok))
    vocab = encoder.get_input_embeddings().num_embeddings
    config = GLiClassConfig(
        encoder_config=encoder.config,
        encoder_model=name,
        class_token_index=label_id,
        text_token_index=sep_id,
        example_token_index=example_id,
        vocab_size=vocab,
        **config_overrides,
    )
    model = GLiClassModel(config, backbone=encoder)
    return model, tok
