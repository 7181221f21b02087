"""The head modules every one-backbone GLiClass network builds, under the official state-dict names."""

from __future__ import annotations

import torch
from torch import nn

from ..config import GLiClassConfig
from .head_output import HeadOutput
from .layers import BiLSTMEncoder, FeaturesProjector, LayerwiseAttention
from .scorers import build_scorer

_EPS = 1e-8


class HeadModules(nn.Module):
    """A network with the official head: `build_head` gives it `text_projector`, `classes_projector`
    (width -> hidden_size -> width), `scorer`, `lstm` (with use_lstm), `layer_wise_attention` (with
    squeeze_layers), `dropout` and `logit_scale`.

    The official models build these for every architecture, also where they never read some of
    them; they are built here too, for the same state dict."""

    config: GLiClassConfig
    text_projector: FeaturesProjector
    classes_projector: FeaturesProjector
    scorer: nn.Module
    lstm: BiLSTMEncoder
    layer_wise_attention: LayerwiseAttention
    dropout: nn.Dropout
    logit_scale: nn.Parameter

    def build_head(self, config: GLiClassConfig, width: int) -> None:
        act = config.projector_hidden_act
        self.text_projector = FeaturesProjector(width, config.hidden_size, act, config.dropout)
        self.classes_projector = FeaturesProjector(width, config.hidden_size, act, config.dropout)
        self.scorer = build_scorer(config)
        if config.use_lstm:
            self.lstm = BiLSTMEncoder(config.hidden_size, config.hidden_size // 2)
        if config.squeeze_layers:
            self.layer_wise_attention = LayerwiseAttention(config.num_encoder_layers, width)
        self.dropout = nn.Dropout(config.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))

    def score(
        self,
        pooled: torch.Tensor,
        label_states: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor,
        mask_padding: bool,
    ) -> HeadOutput:
        """Project the pooled text (batch, width) or (batch, seq, width) with "pass", and the label
        states (batch, slots, width); normalise them where the config says; score; scale the logits.

        The scorer skips padded label slots only with `mask_padding` (the official one sees them)."""
        cfg = self.config
        text_vectors = self.dropout(self.text_projector(pooled))
        label_vectors = self.classes_projector(label_states)
        if cfg.normalize_features:
            text_vectors = text_vectors / (text_vectors.norm(p=2, dim=-1, keepdim=True) + _EPS)
            label_vectors = label_vectors / (label_vectors.norm(p=2, dim=-1, keepdim=True) + _EPS)
        logits = self.scorer(
            text_vectors, label_vectors, text_mask=text_mask, label_mask=label_mask if mask_padding else None
        )
        if cfg.normalize_features:
            logits = logits * self.logit_scale  # used as is, not exponentiated
        return HeadOutput(logits, text_vectors, label_vectors, label_mask)
