"""Run a BERT-family backbone with its last layer computed only at the rows the head reads.

With `first` text pooling and `first` class-token pooling the head reads the last layer at the
first token and at one token per label, a small share of the sequence. The last layer still needs
keys and values from every row, but queries, the attention output and the feed-forward block only
for the rows read: that saves most of one layer's work, for the same logits (the other rows keep
the states of the layer before and must not be read).

Supported: BERT, RoBERTa, XLM-RoBERTa and ELECTRA encoders with absolute positions, which share one
layer layout (query/key/value, attention output, intermediate, output). Anything else runs whole.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

SUPPORTED_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "electra"})


def supports_selected_rows(backbone: nn.Module) -> bool:
    """Whether `encode_selected_rows` can run this backbone (see the module docstring)."""
    config = getattr(backbone, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if (
        getattr(config, "is_decoder", False)
        or getattr(config, "position_embedding_type", "absolute") != "absolute"
    ):
        return False
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not layers:
        return False
    last: Any = layers[-1]
    parts = ("attention", "intermediate", "output")
    return all(hasattr(last, part) for part in parts) and hasattr(last.attention, "self")


def encode_selected_rows(
    backbone: nn.Module,
    rows: torch.Tensor,
    attention_mask: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Last hidden states (batch, seq, dim), exact at `rows` (batch, n) only.

    Follows the backbone's own forward: embeddings (+ ELECTRA's projection), its attention mask,
    every layer but the last; then the last layer at the chosen rows.
    """
    model: Any = backbone  # the BERT-layout attributes, checked by `supports_selected_rows`
    hidden = model.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)  # (batch, seq, dim)
    if hasattr(model, "embeddings_project"):
        hidden = model.embeddings_project(hidden)
    mask = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask)
    layers = model.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, mask)
    return last_layer_at_rows(layers[-1], hidden, rows, attention_mask)


def last_layer_at_rows(
    layer: nn.Module, hidden: torch.Tensor, rows: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """One BERT-layout layer over `hidden` (batch, seq, dim), computed at `rows` (batch, n) only.

    Returns `hidden` with those rows replaced by the layer's output. Inference only: no dropout.
    """
    block: Any = layer  # BERT layout: attention.self / attention.output / intermediate / output
    attention = block.attention.self
    batch, seq, dim = hidden.shape
    heads, head_dim = attention.num_attention_heads, attention.attention_head_size
    index = rows.unsqueeze(-1).expand(-1, -1, dim)  # (batch, n, dim)
    picked = hidden.gather(1, index)  # (batch, n, dim)
    # (batch, heads, len, head_dim)
    query = attention.query(picked).view(batch, -1, heads, head_dim).transpose(1, 2)
    key = attention.key(hidden).view(batch, seq, heads, head_dim).transpose(1, 2)
    value = attention.value(hidden).view(batch, seq, heads, head_dim).transpose(1, 2)
    # (batch, 1, 1, seq) key mask, none without padding: the backbone's own choice for SDPA
    keep = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=keep, scale=attention.scaling)
    context = context.transpose(1, 2).reshape(batch, -1, heads * head_dim)  # (batch, n, dim)
    attended = block.attention.output(context, picked)
    out = block.output(block.intermediate(attended), attended)  # (batch, n, dim)
    return hidden.scatter(1, index, out)
