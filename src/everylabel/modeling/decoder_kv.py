"""The decoder-kv GLiClass network: a decoder backbone (Qwen3, Qwen3.5 text) and a scorer with its own
bidirectional encoder, optionally refining its label states over several recurrent steps.

One sequence per text, no special tokens around it (official format):

    [prompt][examples]text <<SEP>> label1 <<LABEL>> label2 <<LABEL>> ... <<SEP>>

The decoder reads it causally (so the context before the labels is a reusable prefix). Its last
states over the label section (after the `<<SEP>>` that closes the text) go through the scorer's
DeBERTa-v2 encoder; the text vector is the state at the closing `<<SEP>>`, each label's vector the
state at its `<<LABEL>>` (after its name), and an MLP scores each (text, label) pair.

Recurrent reasoning (`recurrent_steps` > 1): a GRU-like cell runs the scorer's encoder again on a
gated mix of its state and the (layer-normed) decoder states, optionally reading the text's states
through cross-attention (`recurrent_read_text`); every step is scored, and at inference a text
stops once no label probability moves by `recurrent_halt_threshold`.

Attribute names give the official state-dict keys (`model.decoder_model.*`, `model.scorer.*`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel

from ..config import GLiClassConfig
from . import losses
from .decoder_kv_scorer import DecoderKVScorer
from .head_output import HeadOutput


def build_decoder(config: GLiClassConfig) -> PreTrainedModel:
    """A randomly initialised decoder from the nested config (its text model), sized to the vocabulary.

    EmbeddingGemma 2 (a bidirectional encoder) is built as the official model builds it: the whole
    `EmbeddingGemma2Model` without its vision and audio towers, its `embedding_projection` replaced by
    the identity unless `use_embedding_projection`."""
    if config.encoder_config.model_type == "embedding_gemma2":
        from transformers.models.embedding_gemma2 import EmbeddingGemma2Model

        composite: Any = config.encoder_config
        composite.vision_config = composite.audio_config = None
        decoder: PreTrainedModel = EmbeddingGemma2Model(composite)
        if not config.use_embedding_projection:
            text_model: Any = decoder.language_model
            text_model.embedding_projection = nn.Identity()
    else:
        decoder = AutoModel.from_config(config.encoder_config.get_text_config())
    if decoder.get_input_embeddings().num_embeddings != config.vocab_size:
        decoder.resize_token_embeddings(config.vocab_size)
    return decoder


def label_section(
    hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, label_id: int, sep_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each right-padded row at the `<<SEP>>` that closes its text (the last one before its first
    `<<LABEL>>`; the whole row when there is none).

    Returns the label sections' states (batch, section, dim), ids and mask (batch, section), zeros
    past each section, and where each section starts (batch,): the length of the text before it.
    """
    batch, seq = input_ids.shape
    positions = torch.arange(seq, device=input_ids.device).expand(batch, -1)  # (batch, seq)
    real = attention_mask.bool()
    lengths = real.sum(dim=1)  # (batch,)
    is_label = (input_ids == label_id) & real
    first_label = torch.where(is_label.any(dim=1), is_label.int().argmax(dim=1), lengths)
    seps = (input_ids == sep_id) & real & (positions < first_label.unsqueeze(1))
    last_sep = positions.masked_fill(~seps, -1).amax(dim=1)  # (batch,), -1 for none
    start = torch.where(is_label.any(dim=1) & last_sep.ge(0), last_sep + 1, torch.zeros_like(last_sep))
    width = int((lengths - start).max()) if batch else 0
    offsets = torch.arange(width, device=input_ids.device).unsqueeze(0)  # (1, section)
    inside = offsets < (lengths - start).unsqueeze(1)  # (batch, section)
    index = (start.unsqueeze(1) + offsets).clamp(max=seq - 1)
    states = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])) * inside.unsqueeze(-1)
    ids = input_ids.gather(1, index) * inside
    return states, ids, inside.to(attention_mask.dtype), start


class DecoderKV(nn.Module):
    """Decoder backbone + scorer."""

    def __init__(self, config: GLiClassConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.decoder_model = backbone if backbone is not None else build_decoder(config)
        self.scorer = DecoderKVScorer(config)
        # EmbeddingGemma 2 attends both ways and keeps no cache: one pass, no streaming sessions.
        self.bidirectional = config.encoder_config.model_type == "embedding_gemma2"

    def steps(self) -> tuple[int, float | None]:
        """(steps, halt threshold) of this call: one without recurrence; in training a depth drawn
        from [recurrent_min_steps, recurrent_steps] without halting; at inference up to
        `recurrent_inference_max_steps` (default recurrent_steps) with the halt threshold."""
        cfg = self.config
        if not self.scorer.recurrent or not (self.training or cfg.recurrent_inference):
            return 1, None
        if self.training:
            most = cfg.recurrent_steps
            return int(torch.randint(min(cfg.recurrent_min_steps, most), most + 1, (1,)).item()), None
        return cfg.recurrent_inference_max_steps or cfg.recurrent_steps, cfg.recurrent_halt_threshold

    def num_slots(self, input_ids: torch.Tensor, requested: int | None) -> int:
        if requested is not None:
            return requested
        return max(int((input_ids == self.config.class_token_index).sum(dim=-1).max()), 1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_slots: int | None = None,
        keep_layers: bool = False,
        mask_padding: bool = False,
    ) -> tuple[HeadOutput, torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """Score the labels of each right-padded row (batch, seq). `mask_padding` changes nothing here:
        the decoder is causal and the scorer reads each label section without its padding."""
        cfg = self.config
        out = self.decoder_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=keep_layers,
            return_dict=True,
            **({} if self.bidirectional else {"use_cache": False}),  # one pass: a cache only costs memory
        )
        slots = self.num_slots(input_ids, num_slots)
        num_steps, halt = self.steps()
        section, ids, mask, start = label_section(
            out.last_hidden_state, input_ids, attention_mask, cfg.class_token_index, cfg.sep_id
        )
        text = None
        if self.scorer.read_text and num_steps > 1:
            width = int(start.max())
            text_mask = torch.arange(width, device=start.device).unsqueeze(0) < start.unsqueeze(1)
            text = (out.last_hidden_state[:, :width] * text_mask.unsqueeze(-1), text_mask)
        result = self.scorer(section, ids, mask, slots, num_steps, halt, labels is not None, text)
        valid = self.scorer.label_mask(ids, mask, slots)
        head = HeadOutput(result.logits[-1], result.text_vectors, result.label_vectors, valid)
        loss = self.loss(result.logits, labels, valid) if labels is not None else None
        return head, loss, (out.hidden_states if keep_layers else None)

    def per_text_loss(self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(batch,) loss of each text over its real labels (a padded slot adds nothing)."""
        cfg = self.config
        if cfg.problem_type == "multi_label_classification":
            each = losses.focal_loss_with_logits(
                logits,
                labels,
                cfg.focal_loss_alpha,
                cfg.focal_loss_gamma,
                cfg.label_smoothing,
                cfg.ignore_index,
            )
            counted = valid & labels.ne(cfg.ignore_index)
            return (each * counted).sum(-1) / counted.sum(-1).clamp(min=1)
        masked = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        if labels.dim() > 1:  # one-hot or soft targets
            labels = torch.where(labels.max(dim=-1).values > 0, labels.argmax(dim=-1), cfg.ignore_index)
        return F.cross_entropy(masked, labels, ignore_index=cfg.ignore_index, reduction="none")

    def loss(
        self, step_logits: list[torch.Tensor], labels: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The mean loss of every step, plus, from step 3, a hinge that asks each step to beat the one
        before by `recurrent_improvement_margin`, and the confidence term on recurrent steps."""
        cfg = self.config
        per_step = torch.stack(
            [self.per_text_loss(logits, labels, valid) for logits in step_logits]
        )  # (T, B)
        total = per_step.mean(dim=1).mean()
        if len(step_logits) >= 3 and cfg.recurrent_improvement_coef > 0:
            target = (1.0 - cfg.recurrent_improvement_margin) * per_step[1:-1].detach()
            total = total + cfg.recurrent_improvement_coef * torch.relu(per_step[2:] - target).mean()
        if len(step_logits) >= 2 and cfg.recurrent_confidence_coef > 0:
            entropy = torch.stack([self._entropy(logits, valid) for logits in step_logits])  # (T, B)
            if cfg.recurrent_confidence_mode == "relative":
                margin = 1.0 - cfg.recurrent_confidence_margin
                confidence = torch.relu(entropy[1:] - margin * entropy[:-1].detach()).mean()
            else:
                confidence = entropy[1:].mean()
            total = total + cfg.recurrent_confidence_coef * confidence
        return total

    def _entropy(self, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(batch,) mean uncertainty of each text's labels (binary entropy, or the softmax's)."""
        if self.config.problem_type == "single_label_classification":
            log_p = torch.log_softmax(logits.masked_fill(~valid, float("-inf")), dim=-1)
            return -(log_p.exp() * log_p.masked_fill(~valid, 0.0)).sum(-1)
        each = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(logits), reduction="none")
        return (each * valid).sum(-1) / valid.sum(-1).clamp(min=1)
