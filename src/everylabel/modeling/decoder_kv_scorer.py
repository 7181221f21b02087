"""The decoder-kv scorer: its own bidirectional DeBERTa-v2 encoder over the label section's decoder
states, projectors and a pair MLP, and the recurrent reasoning cell that refines its states over
several steps with early halting (`recurrent_steps` > 1).

Attribute names give the official state-dict keys (`model.scorer.*`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DebertaV2Config
from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder

from ..config import GLiClassConfig

_EPS = 1e-8


class ReasoningCell(nn.Module):
    """One recurrent step around the scorer's encoder `encode`:

    x = LN(decoder states); read = CrossAttn(q=h, kv=LN(text)) with read_text;
    r = sigmoid(W_r [h; x]); c = encode(r * h + (1 - r) * x + read); z = sigmoid(W_z [h; c]);
    h' = (1 - z) * h + z * c. No weight depends on the step, so any number of steps can run.
    """

    def __init__(self, hidden_size: int, read_text: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.reset_gate = nn.Linear(hidden_size * 2, hidden_size)
        self.update_gate = nn.Linear(hidden_size * 2, hidden_size)
        self.read_text = read_text
        if read_text:
            self.num_heads = max(1, hidden_size // 64)
            self.head_dim = hidden_size // self.num_heads
            self.read_q = nn.Linear(hidden_size, hidden_size)
            self.read_k = nn.Linear(hidden_size, hidden_size)
            self.read_v = nn.Linear(hidden_size, hidden_size)
            self.read_out = nn.Linear(hidden_size, hidden_size)

    def normalize(self, states: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(states, (self.hidden_size,))

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape  # -> (batch, heads, length, head_dim)
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def text_memory(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (batch, heads, text, head_dim) of the normed text states, once per call."""
        normed = self.normalize(text)
        return self._heads(self.read_k(normed)), self._heads(self.read_v(normed))

    def read(
        self, state: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], text_mask: torch.Tensor
    ) -> torch.Tensor:
        batch, length, _ = state.shape
        queries = self._heads(self.read_q(self.normalize(state)))
        keys, values = memory
        context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=text_mask[:, None, None, :])
        return self.read_out(context.transpose(1, 2).reshape(batch, length, self.hidden_size))

    def forward(
        self,
        state: torch.Tensor,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor,
        encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        memory: tuple[torch.Tensor, torch.Tensor] | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """state, inputs (normed decoder states): (batch, section, dim) -> the next state."""
        reset = torch.sigmoid(self.reset_gate(torch.cat([state, inputs], dim=-1)))
        mixed = reset * state + (1 - reset) * inputs
        if self.read_text:
            assert memory is not None and text_mask is not None
            mixed = mixed + self.read(state, memory, text_mask)
        candidate = encode(mixed, attention_mask)
        update = torch.sigmoid(self.update_gate(torch.cat([state, candidate], dim=-1)))
        return (1 - update) * state + update * candidate


@dataclass
class Steps:
    """What the scorer computed: the logits of each step kept, the final vectors, steps per text."""

    logits: list[torch.Tensor]  # each (batch, num_slots)
    text_vectors: torch.Tensor  # (batch, dim)
    label_vectors: torch.Tensor  # (batch, num_slots, dim)
    steps_taken: torch.Tensor  # (batch,)


class DecoderKVScorer(nn.Module):
    """The scorer's encoder, projectors, pair MLP and (with recurrent_steps > 1) the reasoning cell."""

    def __init__(self, config: GLiClassConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.scorer_encoder = DebertaV2Encoder(
            DebertaV2Config(  # sized as the official scorer sizes it
                hidden_size=hidden,
                num_hidden_layers=config.scorer_encoder_num_layers,
                num_attention_heads=max(1, hidden // 64),
                intermediate_size=hidden * 4,
                relative_attention=True,
                pos_att_type=["p2c", "c2p"],
                max_relative_positions=512,
            )
        )
        self.text_projector = nn.Linear(hidden, hidden)
        self.label_projector = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(config.dropout)
        width = config.scorer_mlp_hidden_size
        self.mlp = nn.Sequential(
            nn.Linear(hidden * 2, width),
            nn.ReLU(),
            nn.Linear(width, width // 2),
            nn.ReLU(),
            nn.Linear(width // 2, 1),
        )
        self.recurrent = config.recurrent_steps > 1
        self.read_text = self.recurrent and bool(config.recurrent_read_text)
        if self.recurrent:
            self.reasoning_cell = ReasoningCell(hidden, read_text=self.read_text)

    def encode(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The scorer's encoder over (batch, section, dim) states, bidirectional within the mask."""
        return self.scorer_encoder(states, attention_mask=attention_mask, return_dict=True).last_hidden_state

    def label_mask(self, ids: torch.Tensor, mask: torch.Tensor, num_slots: int) -> torch.Tensor:
        """(batch, num_slots) True for the slots that hold a real label."""
        counts = ((ids == self.config.class_token_index) & mask.bool()).sum(dim=1, keepdim=True)
        return torch.arange(num_slots, device=ids.device).unsqueeze(0) < counts

    def score(
        self, state: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, num_slots: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (batch, num_slots) from the encoded label sections (batch, section, dim), with the
        text vectors (batch, dim) and label vectors (batch, num_slots, dim) they came from."""
        cfg = self.config
        batch, section, _ = state.shape
        real = mask.bool()
        positions = torch.arange(section, device=ids.device).expand(batch, -1)
        last_sep = positions.masked_fill(~((ids == cfg.sep_id) & real), -1).amax(dim=1)  # (batch,)
        rows = torch.arange(batch, device=ids.device)
        text = state[rows, last_sep.clamp(min=0)] * last_sep.ge(0).unsqueeze(-1)  # (batch, dim)
        is_label = (ids == cfg.class_token_index) & real
        rank = is_label.long().cumsum(dim=1) - 1  # (batch, section): k for the k-th <<LABEL>>
        select = is_label.unsqueeze(1) & (
            rank.unsqueeze(1) == torch.arange(num_slots, device=ids.device).view(1, -1, 1)
        )
        labels = torch.einsum("bks,bsd->bkd", select.to(state.dtype), state)  # (batch, num_slots, dim)
        text = self.dropout(self.text_projector(text))
        labels = self.label_projector(labels)
        if cfg.normalize_features:
            text = text / (text.norm(p=2, dim=-1, keepdim=True) + _EPS)
            labels = labels / (labels.norm(p=2, dim=-1, keepdim=True) + _EPS)
        pairs = torch.cat([text.unsqueeze(1).expand(-1, num_slots, -1), labels], dim=-1)
        return self.mlp(pairs).squeeze(-1), text, labels

    def probabilities(self, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type == "single_label_classification":
            return torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1).nan_to_num(0.0)
        return torch.sigmoid(logits)

    def forward(
        self,
        section: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        num_slots: int,
        num_steps: int = 1,
        halt_threshold: float | None = None,
        keep_all_steps: bool = False,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Steps:
        """Step 1 is one encoder pass; each further step runs the reasoning cell. A text whose label
        probabilities all moved by less than `halt_threshold` keeps its state and logits from then on.

        section: (batch, section, dim) decoder states of the label sections, ids and mask (batch,
        section); text: the states (batch, text, dim) and mask of the text before them, which the
        cell reads with `recurrent_read_text`."""
        state = self.encode(section, mask)
        logits, text_vectors, label_vectors = self.score(state, ids, mask, num_slots)
        kept = [logits]
        batch = logits.shape[0]
        steps_taken = torch.ones(batch, dtype=torch.long, device=logits.device)
        active = torch.ones(batch, dtype=torch.bool, device=logits.device)
        valid = self.label_mask(ids, mask, num_slots)
        if num_steps > 1:
            inputs = self.reasoning_cell.normalize(section)
            memory = text_mask = None
            if self.read_text:
                if text is None:
                    raise ValueError("text: recurrent_read_text needs the text states before the labels")
                memory, text_mask = self.reasoning_cell.text_memory(text[0]), text[1].bool()
        bptt = self.config.recurrent_bptt_steps
        for step in range(1, num_steps):
            if bptt and step % bptt == 0:
                state = state.detach()  # truncated backpropagation through the steps
            new_state = self.reasoning_cell(state, inputs, mask, self.encode, memory, text_mask)
            new_logits, new_text, new_labels = self.score(new_state, ids, mask, num_slots)
            if halt_threshold:
                change = (
                    (self.probabilities(new_logits, valid) - self.probabilities(logits, valid))
                    .abs()
                    .masked_fill(~valid, 0.0)
                    .amax(dim=-1)
                )  # (batch,)
                new_state = torch.where(active[:, None, None], new_state, state)
                new_logits = torch.where(active[:, None], new_logits, logits)
                new_text = torch.where(active[:, None], new_text, text_vectors)
                new_labels = torch.where(active[:, None, None], new_labels, label_vectors)
                steps_taken = steps_taken + active.long()
                active = active & change.ge(halt_threshold)
            else:
                steps_taken = steps_taken + 1
            state, logits, text_vectors, label_vectors = new_state, new_logits, new_text, new_labels
            if keep_all_steps:
                kept.append(logits)
            else:
                kept[-1] = logits
            if halt_threshold and not bool(active.any()):
                break
        return Steps(kept, text_vectors, label_vectors, steps_taken)
