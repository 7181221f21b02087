"""The encoder-decoder GLiClass networks, on a T5-family backbone (T5, mT5, UMT5).

The text and the labels are two sequences: `input_ids` holds the text (and any few-shot
examples), `class_input_ids` the label block `<<LABEL>>l1<<LABEL>>l2<<SEP>>prompt`.

`encoder-decoder`: the encoder reads the text and the decoder reads the labels, attending to all
of them (padding aside, no causal mask) and to the encoded text. The text vector pools the encoder
states; each label's vector is read from the decoder states at its marker, as in the uni-encoder.

`encoder-decoder-cls`: the other way round. The encoder reads the labels (label vectors from its
states at the markers), the decoder reads the text causally, and the text vector is the decoder
state at the text's last real token.

Attribute names give the official state-dict keys (`model.encoder_decoder_model.*`, ...).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ..config import GLiClassConfig
from . import features
from .head_modules import HeadModules
from .head_output import HeadOutput, head_loss
from .pooling import pool
from .uni_encoder import build_backbone


def bidirectional_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, seq) padding mask -> (batch, 1, seq, seq) additive mask over keys, with no causal part.

    Given as the decoder's mask, a 4-D mask is used as it is: every label token sees every other.
    """
    batch, seq = attention_mask.shape
    blocked = (1.0 - attention_mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min
    return blocked.expand(batch, 1, seq, seq)


class EncoderDecoder(HeadModules):
    """Backbone + projectors + scorer, for both encoder-decoder architectures."""

    def __init__(self, config: GLiClassConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.config = config
        width = config.encoder_hidden_size
        self.encoder_decoder_model = backbone if backbone is not None else build_backbone(config)
        self.build_head(config, width)  # its squeeze-excitation is never read

    @property
    def text_in_decoder(self) -> bool:
        return self.config.architecture_type == "encoder-decoder-cls"

    def num_slots(self, class_input_ids: torch.Tensor, requested: int | None) -> int:
        return features.slot_count(self.config, class_input_ids, requested)

    def label_vectors(
        self, states: torch.Tensor, class_input_ids: torch.Tensor, class_mask: torch.Tensor, num_slots: int
    ) -> torch.Tensor:
        """(batch, label_seq, width) states of the label sequence -> (batch, num_slots, width)."""
        cfg = self.config
        label_id, sep_id, _ = cfg.special_token_ids()
        if cfg.class_token_pooling == "average":
            return features.label_vectors_average(
                states,
                class_input_ids,
                class_mask,
                label_id,
                num_slots,
                cfg.embed_class_token,
                sep_id if cfg.extract_text_features else None,
            )
        return features.label_vectors_first(
            states, class_input_ids, label_id, num_slots, cfg.embed_class_token
        )

    def pool_text(
        self, states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_padding: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, seq, width) text states -> the text vectors and the mask of the states they read.

        `encoder-decoder` pools the encoder states (with padding, as the official model, unless
        `mask_padding`); `encoder-decoder-cls` reads the decoder state at the last real token.
        """
        cfg = self.config
        if self.text_in_decoder:
            last = attention_mask.sum(dim=1) - 1  # (batch,): right padding
            rows = torch.arange(states.shape[0], device=states.device)
            return states[rows, last], attention_mask
        text_mask = attention_mask
        if cfg.pool_text_before_examples:
            text_mask = attention_mask * features.before_first(input_ids, cfg.example_token_index)
        if cfg.use_lstm:
            states = self.lstm(states, attention_mask)  # (batch, longest row, width)
            text_mask = text_mask[:, : states.shape[1]]
        pool_mask = text_mask if mask_padding or cfg.pool_text_before_examples else None
        return pool(cfg.pooling_strategy, states, pool_mask), text_mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        class_input_ids: torch.Tensor,
        class_attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_slots: int | None = None,
        keep_layers: bool = False,
        mask_padding: bool = False,
    ) -> tuple[HeadOutput, torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """Score the labels of `class_input_ids` (batch, label_seq) against the texts (batch, seq)."""
        cfg = self.config
        slots = self.num_slots(class_input_ids, num_slots)
        if self.text_in_decoder:
            out = self.encoder_decoder_model(
                input_ids=class_input_ids,
                attention_mask=class_attention_mask,
                decoder_input_ids=input_ids,
                decoder_attention_mask=attention_mask,
                output_hidden_states=keep_layers,
                return_dict=True,
            )
            label_states, text_states = out.encoder_last_hidden_state, out.last_hidden_state
        else:
            dtype = next(self.encoder_decoder_model.parameters()).dtype
            out = self.encoder_decoder_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=class_input_ids,
                decoder_attention_mask=bidirectional_mask(class_attention_mask, dtype),
                output_hidden_states=keep_layers,
                return_dict=True,
            )
            label_states, text_states = out.last_hidden_state, out.encoder_last_hidden_state
        label_vectors = self.label_vectors(label_states, class_input_ids, class_attention_mask, slots)
        label_mask = features.label_slot_mask(class_input_ids, cfg.class_token_index, slots)
        pooled, text_mask = self.pool_text(text_states, input_ids, attention_mask, mask_padding)
        head = self.score(pooled, label_vectors, text_mask, label_mask, mask_padding)
        loss = head_loss(cfg, head, labels) if labels is not None else None
        layers = None
        if keep_layers:
            layers = tuple(out.encoder_hidden_states) + tuple(out.decoder_hidden_states)
        return head, loss, layers
