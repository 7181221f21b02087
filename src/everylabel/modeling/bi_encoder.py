"""The bi-encoder GLiClass networks: a text encoder and a separate label encoder.

`bi-encoder`: the text and each label are encoded apart, pooled, projected and scored (a dot
product with the "simple" scorer), times the raw `logit_scale`. A label's vector depends on the
label alone, so it can be computed once and reused for every text.

`bi-encoder-fused`: the label vectors from the label encoder replace the `<<LABEL>>` token
embeddings of the text input; the text encoder's output at those positions is each label's vector.

Labels come in as the distinct label rows of a batch, (num_distinct, label_seq), plus
`label_index` (batch, num_slots): which row fills each slot, -1 for a padded slot. Attribute names
give the official state-dict keys (`model.label_encoder.*`, `model.biencoder_projector.*`, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoModel, PreTrainedModel

from ..config import GLiClassConfig
from .head_modules import HeadModules
from .head_output import HeadOutput, head_loss
from .layers import FeaturesProjector
from .pooling import pool
from .scorers import DotScorer
from .uni_encoder import build_backbone

_EPS = 1e-8
# The logit the official bi-encoders give a padded label slot.
PADDED_SLOT_LOGIT = -1e3


class BiEncoder(HeadModules):
    """Text encoder, label encoder, projectors and scorer, for both bi-encoder architectures."""

    def __init__(
        self,
        config: GLiClassConfig,
        backbone: PreTrainedModel | None = None,
        label_backbone: PreTrainedModel | None = None,
    ) -> None:
        super().__init__()
        assert config.label_model_config is not None  # checked by config.validate
        self.config = config
        width = config.encoder_hidden_size
        act = config.projector_hidden_act
        self.encoder_model = backbone if backbone is not None else build_backbone(config)
        self.label_encoder = (
            label_backbone if label_backbone is not None else AutoModel.from_config(config.label_model_config)
        )
        self.build_head(config, width)  # its lstm and squeeze-excitation are never read
        self.biencoder_projector = FeaturesProjector(
            config.label_hidden_size, config.hidden_size, act, 0.0, out_size=width
        )

    @property
    def fused(self) -> bool:
        return self.config.architecture_type == "bi-encoder-fused"

    @property
    def scores_by_matmul(self) -> bool:
        """Whether inference can score texts against distinct labels in one product (see forward);
        not with a calibrator, which reads the (batch, slots, width) label vectors."""
        return not self.fused and isinstance(self.scorer, DotScorer) and not self.config.use_calibrator

    def _normalize(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors, p=2, dim=-1, eps=_EPS) if self.config.normalize_features else vectors

    def project_labels(self, pooled: torch.Tensor) -> torch.Tensor:
        """(..., label width) pooled label states -> (..., text width) label vectors."""
        return self._normalize(self.classes_projector(self.biencoder_projector(pooled)))

    def label_vectors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_padding: bool
    ) -> torch.Tensor:
        """(labels, label_seq) label token ids -> (labels, width) label vectors.

        `mask_padding=False` pools as the official model does, with no mask: with `avg` a label's
        vector then depends on how far it was padded (the longest label beside it).
        """
        states = self.label_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = pool(self.config.pooling_strategy, states, attention_mask if mask_padding else None)
        return self.project_labels(pooled)

    def text_vectors(
        self, states: torch.Tensor, attention_mask: torch.Tensor, mask_padding: bool
    ) -> torch.Tensor:
        """(batch, seq, width) text encoder states -> (batch, width) text vectors."""
        pooled = pool(self.config.pooling_strategy, states, attention_mask if mask_padding else None)
        return self._normalize(self.dropout(self.text_projector(pooled)))

    def slot_vectors(
        self, vectors: torch.Tensor, label_index: torch.Tensor, mask_padding: bool
    ) -> torch.Tensor:
        """(labels, width) vectors and (batch, slots) row indices -> (batch, slots, width).

        A padded slot holds the projected zero vector, as in the official model, unless
        `mask_padding` (then zeros, and the scorer is told to skip it).
        """
        real = (label_index >= 0).unsqueeze(-1)  # (batch, slots, 1)
        filled = vectors[label_index.clamp(min=0)]  # (batch, slots, width)
        if mask_padding or self.fused:
            pad = torch.zeros_like(filled[:1, :1])
        else:
            zero = torch.zeros(
                1, 1, self.config.label_hidden_size, dtype=vectors.dtype, device=vectors.device
            )
            pad = self.project_labels(zero)
        return torch.where(real, filled, pad)

    def encode_fused(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slots: torch.Tensor,
        label_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Put each label vector in place of its `<<LABEL>>` embedding and run the text encoder.

        Returns the text states (batch, seq, width), the states at the markers as the label vectors
        (batch, slots, width), zeros in padded slots.
        """
        embeds = self.encoder_model.get_input_embeddings()(input_ids)  # (batch, seq, width)
        rows, cols = torch.where(input_ids == self.config.class_token_index)
        slot_rows, slot_cols = torch.where(label_mask)
        if rows.shape != slot_rows.shape or not torch.equal(rows, slot_rows):
            raise ValueError("input_ids: each row needs one <<LABEL>> marker per label slot")
        embeds = embeds.index_put((rows, cols), slots[slot_rows, slot_cols].to(embeds.dtype))
        out = self.encoder_model(inputs_embeds=embeds, attention_mask=attention_mask, return_dict=True)
        states = out.last_hidden_state
        post = torch.zeros_like(slots).index_put((slot_rows, slot_cols), states[rows, cols].to(slots.dtype))
        return states, post

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_vectors: torch.Tensor,
        label_index: torch.Tensor,
        labels: torch.Tensor | None = None,
        keep_layers: bool = False,
        mask_padding: bool = False,
        keep_label_vectors: bool = True,
    ) -> tuple[HeadOutput, torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """Score every slot of `label_index` (batch, slots) against each text row.

        label_vectors: (labels, width) from `label_vectors`; labels: training targets as for the
        uni-encoder. Padded slots get the logit -1000, as in the official model. Without
        `keep_label_vectors` (and without training targets), the plain bi-encoder's dot-product
        scorer multiplies the text vectors with the distinct label vectors once, (batch, labels),
        instead of gathering a (batch, slots, width) tensor: the same logits, far less memory
        with thousands of labels; the output's label vectors are then empty.
        """
        label_mask = label_index >= 0  # (batch, slots)
        if not (keep_label_vectors or self.fused or labels is not None) and isinstance(
            self.scorer, DotScorer
        ):
            return (
                self._dot_all(input_ids, attention_mask, label_vectors, label_index, mask_padding),
                None,
                None,
            )
        slots = self.slot_vectors(label_vectors, label_index, mask_padding)
        all_layers = None
        if self.fused:
            states, slots = self.encode_fused(input_ids, attention_mask, slots, label_mask)
        else:
            out = self.encoder_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=keep_layers,
                return_dict=True,
            )
            states = out.last_hidden_state
            all_layers = out.hidden_states if keep_layers else None
        text = self.text_vectors(states, attention_mask, mask_padding)
        logits = self.scorer(
            text, slots, text_mask=attention_mask, label_mask=label_mask if mask_padding else None
        )
        logits = (logits * self.logit_scale).masked_fill(~label_mask, PADDED_SLOT_LOGIT)
        head = HeadOutput(logits, text, slots, label_mask)
        loss = head_loss(self.config, head, labels) if labels is not None else None
        return head, loss, all_layers

    def _dot_all(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_vectors: torch.Tensor,
        label_index: torch.Tensor,
        mask_padding: bool,
    ) -> HeadOutput:
        states = self.encoder_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        text = self.text_vectors(states, attention_mask, mask_padding)  # (batch, width)
        every = text @ label_vectors.T  # (batch, labels)
        label_mask = label_index >= 0
        logits = torch.gather(every, 1, label_index.clamp(min=0)) * self.logit_scale  # (batch, slots)
        logits = logits.masked_fill(~label_mask, PADDED_SLOT_LOGIT)
        return HeadOutput(logits, text, label_vectors.new_empty(0), label_mask)
