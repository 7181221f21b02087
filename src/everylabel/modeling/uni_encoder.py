"""The uni-encoder GLiClass network: one backbone pass over text and labels, then the scoring head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from ..config import GLiClassConfig
from . import features
from .head_modules import HeadModules
from .head_output import HeadOutput, head_loss
from .pooling import pool
from .selected_rows import encode_selected_rows, supports_selected_rows


def build_backbone(config: GLiClassConfig) -> PreTrainedModel:
    """A randomly initialised backbone from the nested config, sized to the GLiClass vocabulary."""
    backbone = AutoModel.from_config(config.encoder_config)
    if backbone.get_input_embeddings().num_embeddings != config.vocab_size:
        backbone.resize_token_embeddings(config.vocab_size)
    return backbone


class UniEncoder(HeadModules):
    """Backbone + projectors + scorer. Attribute names give the official `model.*` state-dict keys."""

    def __init__(self, config: GLiClassConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.config = config
        width = config.encoder_hidden_size
        self.encoder_model = backbone if backbone is not None else build_backbone(config)
        self.build_head(config, width)
        if config.use_segment_embeddings:
            self.segment_embeddings = nn.Embedding(3, width)
        # Inference shortcut (selected_rows.py): the last layer only where the head reads it.
        self.last_layer_at_read_rows = True

    def num_slots(self, input_ids: torch.Tensor, requested: int | None) -> int:
        """How many label slots the logits have: as asked, else by `max_labels_alloc`."""
        return features.slot_count(self.config, input_ids, requested)

    def read_rows(self, input_ids: torch.Tensor, num_slots: int) -> torch.Tensor | None:
        """(batch, 1 + num_slots) positions the head reads, when it reads only a few; else None.

        That is `first` text pooling over the whole sequence (so not the cross-attention scorer, which
        needs `pass`) with `first` class-token pooling, at inference, on a supported backbone.
        """
        cfg = self.config
        if not (
            self.last_layer_at_read_rows
            and not self.training
            and cfg.pooling_strategy == "first"
            and cfg.class_token_pooling == "first"
            and not cfg.extract_text_features
            and not cfg.use_lstm
            and supports_selected_rows(self.encoder_model)
        ):
            return None
        labels = features.label_positions_first(
            input_ids, cfg.class_token_index, num_slots, cfg.embed_class_token
        )  # (batch, num_slots)
        return torch.cat([torch.zeros_like(labels[:, :1]), labels], dim=1)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        need_all_layers: bool,
        rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Run the backbone; returns the last hidden states and, when asked, every layer's states.

        With `rows` (and no layers asked for) the last layer is exact at those rows only.
        """
        embed_kwargs: dict[str, torch.Tensor] = {}
        if self.config.use_segment_embeddings:
            tokens = self.encoder_model.get_input_embeddings()(input_ids)
            _, sep_id, example_id = self.config.special_token_ids()
            segments = features.segment_ids(input_ids, sep_id, example_id)
            embed_kwargs["inputs_embeds"] = tokens + self.segment_embeddings(segments)
        else:
            embed_kwargs["input_ids"] = input_ids
        if rows is not None and not need_all_layers:
            return encode_selected_rows(self.encoder_model, rows, attention_mask, **embed_kwargs), None
        out = self.encoder_model(
            **embed_kwargs,
            attention_mask=attention_mask,
            output_hidden_states=need_all_layers,
            return_dict=True,
        )
        return out.last_hidden_state, (out.hidden_states if need_all_layers else None)

    def select_states(
        self,
        last: torch.Tensor,
        all_layers: tuple[torch.Tensor, ...] | None,
        pool_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The states the head reads: one chosen layer, the squeeze-excitation fusion, or the last.

        `pool_mask` (batch, seq): the fusion's squeeze averages over real tokens only.
        """
        if self.config.encoder_layer_id != -1:
            assert all_layers is not None
            return all_layers[self.config.encoder_layer_id]
        if self.config.squeeze_layers:
            assert all_layers is not None  # the layers' outputs, not the embeddings
            return self.layer_wise_attention(all_layers[1:], pool_mask)
        return last

    def head(
        self,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_slots: int,
        mask_padding: bool = False,
    ) -> HeadOutput:
        """Label vectors, text vector and logits from one sequence of hidden states (batch, seq, dim).

        The official poolers see no mask, so padding takes part in them; that is the default here
        too, for equal logits. `mask_padding=True` pools real tokens only and keeps padded label
        slots out of the scorer, so a row's logits do not depend on its batch.
        """
        cfg = self.config
        label_id, sep_id, example_id = cfg.special_token_ids()
        text_attention = attention_mask  # (batch, seq): the tokens the text vector may pool
        if cfg.pool_text_before_examples:
            text_attention = attention_mask * features.before_first(input_ids, example_id)
        if cfg.class_token_pooling == "average":
            label_vectors = features.label_vectors_average(
                hidden,
                input_ids,
                attention_mask,
                label_id,
                num_slots,
                cfg.embed_class_token,
                sep_id if cfg.extract_text_features else None,
            )
        else:
            label_vectors = features.label_vectors_first(
                hidden, input_ids, label_id, num_slots, cfg.embed_class_token
            )
        label_mask = features.label_slot_mask(input_ids, label_id, num_slots)

        if cfg.extract_text_features:
            text_states, text_mask = features.text_from_separator(hidden, input_ids, text_attention, sep_id)
        else:
            text_states, text_mask = hidden, text_attention
        if cfg.use_lstm:
            text_states = self.lstm(text_states, text_mask)  # (batch, longest row, dim)
            text_mask = text_mask[:, : text_states.shape[1]]

        pool_mask = text_mask if mask_padding or cfg.pool_text_before_examples else None
        pooled = pool(cfg.pooling_strategy, text_states, pool_mask)
        return self.score(pooled, label_vectors, text_mask, label_mask, mask_padding)

    def loss(self, out: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        return head_loss(self.config, out, labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_slots: int | None = None,
        keep_layers: bool = False,
        mask_padding: bool = False,
    ) -> tuple[HeadOutput, torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        cfg = self.config
        slots = self.num_slots(input_ids, num_slots)
        layer_wise_loss = cfg.layer_wise and labels is not None
        need_all = keep_layers or cfg.squeeze_layers or cfg.encoder_layer_id != -1 or layer_wise_loss
        rows = None if need_all else self.read_rows(input_ids, slots)
        last, all_layers = self.encode(input_ids, attention_mask, need_all, rows)

        if layer_wise_loss:
            # Training signal from every layer (embeddings included); logits come from the last.
            assert all_layers is not None and labels is not None
            total = torch.zeros((), device=last.device)
            for states in all_layers:
                out = self.head(states, input_ids, attention_mask, slots, mask_padding)
                total = total + self.loss(out, labels)
            return out, total, all_layers

        states = self.select_states(last, all_layers, attention_mask if mask_padding else None)
        out = self.head(states, input_ids, attention_mask, slots, mask_padding)
        loss = self.loss(out, labels) if labels is not None else None
        return out, loss, all_layers
