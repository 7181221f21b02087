"""Small building blocks of the GLiClass head; attribute names match the official state dict."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers.activations import ACT2FN

from .pooling import pool


class FeaturesProjector(nn.Module):
    """Linear -> activation -> dropout -> linear, mapping backbone width -> hidden_size -> backbone width.

    `out_size` (default `in_size`): the bi-encoder's label projector maps the label encoder's width
    to the text encoder's (the official `biencoder_projector`, which has no dropout).
    """

    def __init__(
        self, in_size: int, hidden_size: int, activation: str, dropout: float, out_size: int | None = None
    ) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_size, hidden_size)
        self.act = ACT2FN[activation]
        self.dropout = nn.Dropout(dropout)
        self.linear_2 = nn.Linear(hidden_size, out_size or in_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.dropout(self.act(self.linear_1(features))))

    @torch.no_grad()
    def init_identity(self) -> None:
        """Make the projector the identity map (outside dropout): x -> [x, -x] -> act -> a(x) - a(-x) = x.

        Exact for activations of the form x * g(x) with g(x) + g(-x) = 1 (relu, gelu, its tanh form,
        silu), and needs hidden_size = 2 x the input width.
        """
        width = self.linear_1.in_features
        if self.linear_2.out_features != width:
            out = self.linear_2.out_features
            raise ValueError(f"an identity projector needs equal widths, not {width} -> {out}")
        if self.linear_1.out_features != 2 * width:
            raise ValueError(
                f"hidden_size: an identity projector needs 2 x {width} = {2 * width}, "
                f"not {self.linear_1.out_features}"
            )
        probe = torch.linspace(-6, 6, 101)
        if not torch.allclose(self.act(probe) - self.act(-probe), probe, atol=1e-4):
            raise ValueError("projector_hidden_act: a(x) - a(-x) is not x, so no identity projector")
        eye = torch.eye(width, dtype=self.linear_1.weight.dtype, device=self.linear_1.weight.device)
        self.linear_1.weight.copy_(torch.cat([eye, -eye], dim=0))  # (2 * width, width)
        self.linear_2.weight.copy_(torch.cat([eye, -eye], dim=1))  # (width, 2 * width)
        self.linear_1.bias.zero_()
        self.linear_2.bias.zero_()


class BiLSTMEncoder(nn.Module):
    """A bidirectional LSTM over the real tokens of each row; output width = 2 * half_size."""

    def __init__(self, input_size: int, half_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, half_size, num_layers=1, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (batch, seq, hidden), mask: (batch, seq) -> (batch, longest real row, 2 * half_size)
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        self.lstm.flatten_parameters()  # loaded weights are separate tensors; one kernel path for all
        out, _ = self.lstm(packed)
        unpacked, _ = pad_packed_sequence(out, batch_first=True)
        return unpacked


class LayerwiseAttention(nn.Module):
    """Squeeze-excitation fusion of the K encoder layers' outputs into one sequence of states.

    z_k = mean_t(w . h_{k,t} + b); s = sigmoid(W2 relu(W1 z)); out = P(sum_k s_k h_k).
    """

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.squeeze = nn.Linear(hidden_size, 1)
        self.W1 = nn.Linear(num_layers, num_layers // 2)
        self.W2 = nn.Linear(num_layers // 2, num_layers)
        self.output_projection = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, layer_states: tuple[torch.Tensor, ...] | list[torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fuse the layers; `mask` (batch, seq) averages the squeeze over real tokens only."""
        if len(layer_states) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layer outputs, got {len(layer_states)}")
        stacked = torch.stack(tuple(layer_states), dim=1)  # (batch, K, seq, hidden)
        squeezed = self.squeeze(stacked).squeeze(-1)  # (batch, K, seq)
        # The mean over tokens, as the "avg" text pooling takes it: over padding too without a mask
        # (the official squeeze), over real tokens only with one. (batch, seq, K) -> (batch, K)
        z = pool("avg", squeezed.transpose(1, 2), mask)
        s = torch.sigmoid(self.W2(F.relu(self.W1(z))))  # (batch, K)
        fused = (stacked * s[:, :, None, None]).sum(dim=1)  # (batch, seq, hidden)
        return self.output_projection(fused)
