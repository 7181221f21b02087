"""Tokenizer loading with the three GLiClass special tokens, as published checkpoints need it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from tokenizers import Tokenizer
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from .errors import ConfigError
from .paths import resolve_path

LABEL_TOKEN: Final = "<<LABEL>>"
SEP_TOKEN: Final = "<<SEP>>"
EXAMPLE_TOKEN: Final = "<<EXAMPLE>>"
SPECIAL_TOKENS: Final = (LABEL_TOKEN, SEP_TOKEN, EXAMPLE_TOKEN)

# Where a bi-encoder checkpoint folder keeps its label encoder's tokenizer.
LABEL_TOKENIZER_FOLDER: Final = "label_tokenizer"

# Backbones whose published GLiClass checkpoints expect the tokenizer with add_prefix_space=True.
_PREFIX_SPACE_TYPES: Final = frozenset({"modernbert"})


def tokenizer_kwargs(backbone_model_type: str) -> dict[str, Any]:
    """Loading options a backbone family needs (ModernBERT checkpoints expect add_prefix_space)."""
    return {"add_prefix_space": True} if backbone_model_type in _PREFIX_SPACE_TYPES else {}


def add_special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int, int]:
    """Add `<<LABEL>>`, `<<SEP>>`, `<<EXAMPLE>>` (if missing); return their (label, sep, example) ids."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    label_id, sep_id, example_id = (_token_id(tokenizer, t) for t in SPECIAL_TOKENS)
    return label_id, sep_id, example_id


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int)
    return token_id


def load_tokenizer(
    path: str,
    backbone_model_type: str,
    expected_ids: tuple[int, int, int] | None = None,
    backbone_config: PretrainedConfig | None = None,
) -> PreTrainedTokenizerBase:
    """Load the tokenizer stored with a checkpoint or a backbone (a folder or a hub id).

    `expected_ids` (from the model config) are checked against the tokenizer's special-token ids,
    so a tokenizer that does not belong to the checkpoint fails loudly instead of mis-scoring.
    """
    options = tokenizer_kwargs(backbone_model_type)
    if backbone_config is not None:  # spares AutoTokenizer from reading a config.json it cannot parse
        options["config"] = backbone_config
    tokenizer = AutoTokenizer.from_pretrained(path, **options)
    if backbone_model_type in _PREFIX_SPACE_TYPES:
        _apply_prefix_space(tokenizer)
    if expected_ids is not None:
        found = tuple(_token_id(tokenizer, t) for t in SPECIAL_TOKENS)
        if found != tuple(expected_ids):
            pairs = ", ".join(f"{t}={f}" for t, f in zip(SPECIAL_TOKENS, found, strict=True))
            raise ConfigError(
                f"tokenizer at {path}: special-token ids ({pairs}) do not match the model config "
                f"(class/text/example_token_index = {tuple(expected_ids)})"
            )
    return tokenizer


def _apply_prefix_space(tokenizer: PreTrainedTokenizerBase) -> None:
    """Make every byte-level pre-tokenizer add a prefix space.

    The generic fast-tokenizer class records `add_prefix_space` without applying it, so without
    this, "<<LABEL>>sports" would tokenise "sports" unlike the text the checkpoint was trained on.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return
    spec = json.loads(backend.to_str())

    def mark(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            node["add_prefix_space"] = True
            return True
        return any([mark(child) for child in node.get("pretokenizers", [])])

    if mark(spec.get("pre_tokenizer")):
        backend.pre_tokenizer = Tokenizer.from_str(json.dumps(spec)).pre_tokenizer


def load_label_tokenizer(config: Any, folder: str | None = None) -> PreTrainedTokenizerBase:
    """The label encoder's tokenizer of a bi-encoder: stored with the checkpoint in `folder` (or the
    folder the model was loaded from), else the one of `config.label_model_name`.
    """
    for base in (folder, getattr(config, "_name_or_path", None)):
        if base and (Path(base) / LABEL_TOKENIZER_FOLDER).is_dir():
            source = str(Path(base) / LABEL_TOKENIZER_FOLDER)
            break
    else:
        if not config.label_model_name:
            raise ConfigError("label_model_name: a bi-encoder needs it to find its label tokenizer")
        source = resolve_path(config.label_model_name)
    label_type = config.label_model_config.model_type
    tokenizer = AutoTokenizer.from_pretrained(source, **tokenizer_kwargs(label_type))
    if label_type in _PREFIX_SPACE_TYPES:
        _apply_prefix_space(tokenizer)
    return tokenizer


def save_label_tokenizer(tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> None:
    """Store a bi-encoder's label tokenizer beside the checkpoint, so it loads offline."""
    tokenizer.save_pretrained(str(Path(folder) / LABEL_TOKENIZER_FOLDER))
