"""The learned post-hoc calibrator of the official format (`use_calibrator` checkpoints).

For every (text, label) pair a small MLP reads the text vector, the label vector and a few
statistics of the row's logits, and predicts an inverse temperature beta in (0, beta_max) and,
with `calibrator_use_bias`, a bias b. The calibrated logit is beta * z + b; padded label slots
keep beta = 1, b = 0. Without the bias a positive beta never flips the sign of a logit, so
decisions at 0.5 stay as they were and only the confidence changes.

Attribute names give the official state-dict keys: `calibrator.text_norm.*`,
`calibrator.label_norm.*`, `calibrator.mlp.{0,3,6}.*` (GELU and dropout sit between the linears).
Fitting the calibrator (with the backbone frozen) is not part of this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import GLiClassConfig

# z, |z|, z - row max, z - row mean, the row's mean binary entropy, log(number of labels)
NUM_LOGIT_FEATURES = 6


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), finite for any finite x (also in ONNX, where log(sigmoid(x)) reaches -inf)."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of Bernoulli(sigmoid(z)) in nats, elementwise: p * softplus(-z) + (1 - p) * softplus(z)."""
    p = torch.sigmoid(logits)
    return p * _softplus(-logits) + (1 - p) * _softplus(logits)


def logit_features(logits: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """Confidence statistics of each pair: (batch, labels) -> (batch, labels, NUM_LOGIT_FEATURES).

    Row statistics are taken over real labels only; padded slots get all-zero features.
    Example: logits [[2, 0]] with both real -> [[2, 2, 0, 1, h, log 2], [0, 0, -2, -1, h, log 2]].
    """
    real = label_mask.bool()  # (batch, labels)
    weight = real.to(logits.dtype)
    # Padded slots (the bi-encoders give them -1000) never count; zero keeps every term finite.
    logits = logits.masked_fill(~real, 0.0)
    count = weight.sum(dim=-1, keepdim=True).clamp(min=1.0)  # (batch, 1)
    row_max = logits.masked_fill(~real, float("-inf")).amax(dim=-1, keepdim=True)  # (batch, 1)
    row_max = torch.where(real.any(dim=-1, keepdim=True), row_max, torch.zeros_like(row_max))
    row_mean = (logits * weight).sum(dim=-1, keepdim=True) / count  # (batch, 1)
    row_entropy = (binary_entropy(logits) * weight).sum(dim=-1, keepdim=True) / count  # (batch, 1)
    columns = (
        logits,
        logits.abs(),
        logits - row_max,
        logits - row_mean,
        row_entropy.expand_as(logits),
        count.log().expand_as(logits),
    )
    return torch.stack(columns, dim=-1) * weight.unsqueeze(-1)  # (batch, labels, 6)


class CalibratorOutput(nn.Linear):
    """The calibrator's last linear: (..., hidden) -> (..., 1 or 2), the logit of beta / beta_max
    and, with `use_bias`, the bias. Its own class so that weight init can start it at the identity."""

    def __init__(self, hidden_size: int, beta_max: float, use_bias: bool) -> None:
        super().__init__(hidden_size, 2 if use_bias else 1)
        self.beta_max = float(beta_max)

    def global_scaling_bias(self, beta: float, bias: float = 0.0) -> torch.Tensor:
        """The bias that gives (beta, bias) for every pair when the weight is zero."""
        ratio = min(max(beta / self.beta_max, 1e-4), 1 - 1e-4)
        values = [math.log(ratio / (1 - ratio)), bias][: self.out_features]
        return torch.tensor(values, dtype=self.bias.dtype, device=self.bias.device)


class Calibrator(nn.Module):
    """Per-pair inverse temperature (and optional bias) from text, label and logit statistics."""

    def __init__(
        self,
        width: int,
        hidden_size: int = 256,
        beta_max: float = 3.0,
        dropout: float = 0.1,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        self.beta_max = float(beta_max)
        self.use_bias = use_bias
        self.text_norm = nn.LayerNorm(width)
        self.label_norm = nn.LayerNorm(width)
        # Input: [text, label, text * label, |text - label|, logit statistics].
        self.mlp = nn.Sequential(
            nn.Linear(4 * width + NUM_LOGIT_FEATURES, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            CalibratorOutput(hidden_size, beta_max, use_bias),
        )
        self.reset_to_global_scaling(1.0)

    @property
    def output_layer(self) -> CalibratorOutput:
        layer = self.mlp[-1]
        assert isinstance(layer, CalibratorOutput)
        return layer

    @torch.no_grad()
    def reset_to_global_scaling(self, beta: float, bias: float = 0.0) -> None:
        """One (beta, bias) for every pair: (1, 0) is the identity, a fresh calibrator's start."""
        layer = self.output_layer
        layer.weight.zero_()
        layer.bias.copy_(layer.global_scaling_bias(beta, bias))

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        label_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse temperatures and biases, both (batch, slots) float32.

        text: (batch, width); labels: (batch, >= slots, width); logits: (batch, slots) uncalibrated;
        label_mask: (batch, >= slots), true for real labels. Padded slots get beta 1 and bias 0.
        """
        dtype = self.output_layer.weight.dtype
        slots = logits.shape[-1]
        real = label_mask[:, :slots].bool()  # (batch, slots)
        label = self.label_norm(labels[:, :slots].to(dtype))  # (batch, slots, width)
        text_n = self.text_norm(text.to(dtype)).unsqueeze(1).expand_as(label)  # (batch, slots, width)
        stats = logit_features(logits.float(), real).to(dtype)  # (batch, slots, 6)
        pairs = torch.cat([text_n, label, text_n * label, (text_n - label).abs(), stats], dim=-1)
        out = self.mlp(pairs).float()  # (batch, slots, 1 or 2)
        beta = self.beta_max * torch.sigmoid(out[..., 0])  # (batch, slots)
        bias = out[..., 1] if self.use_bias else torch.zeros_like(beta)
        return beta.masked_fill(~real, 1.0), bias.masked_fill(~real, 0.0)


def build_calibrator(config: GLiClassConfig) -> Calibrator:
    """The calibrator a config describes; it reads vectors as wide as the text encoder's states."""
    return Calibrator(
        config.encoder_hidden_size,
        hidden_size=config.calibrator_hidden_size,
        beta_max=config.calibrator_beta_max,
        dropout=config.calibrator_dropout,
        use_bias=config.calibrator_use_bias,
    )


def calibrate(logits: torch.Tensor, beta: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """beta * logits + bias, computed in float32 and returned in the logits' dtype."""
    return (beta * logits.float() + bias).to(logits.dtype)
