"""Scorers: text vector(s) and label vectors -> one logit per label, registered by name.

Every scorer takes `text` (batch, hidden) — or (batch, seq, hidden) for "cross-attn" — and
`labels` (batch, num_labels, hidden), plus the text mask and, when padded label slots must not
take part (batch independence), the label mask; it returns (batch, num_labels).
Parameter names match the official state dict (`model.scorer.*`).
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GLiClassConfig

# The official "mlp" and "hopfield" scorers ignore scorer_mlp_hidden_size and always use 256.
_FIXED_MLP_HIDDEN = 256


def _mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers of the given widths with `activation` between them (indices 0, 2, 4, ...)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class DotScorer(nn.Module):
    """ "simple": the dot product of the text vector with each label vector."""

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return torch.einsum("bd,bkd->bk", text, labels)


class WeightedDotScorer(nn.Module):
    """The "weighted-dot" scorer: MLP over [t_a, l_a, t_b * l_b], halves of 2H-wide projections."""

    def __init__(self, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj_text = nn.Linear(hidden, hidden * 2)
        self.proj_label = nn.Linear(hidden, hidden * 2)
        self.out_mlp = nn.Sequential(
            nn.Linear(hidden * 3, hidden * 4), nn.Dropout(dropout), nn.ReLU(), nn.Linear(hidden * 4, 1)
        )

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, num_labels, hidden = labels.shape
        t = self.proj_text(text).view(batch, 1, 2, hidden).expand(batch, num_labels, 2, hidden)
        lab = self.proj_label(labels).view(batch, num_labels, 2, hidden)
        features = torch.cat([t[:, :, 0], lab[:, :, 0], t[:, :, 1] * lab[:, :, 1]], dim=-1)  # (b, k, 3h)
        return self.out_mlp(features).squeeze(-1)


class MLPScorer(nn.Module):
    """ "mlp": MLP over the concatenation [text, label]."""

    def __init__(self, hidden: int, mlp_hidden: int = _FIXED_MLP_HIDDEN) -> None:
        super().__init__()
        self.mlp = _mlp([hidden * 2, mlp_hidden, mlp_hidden // 2, 1], nn.ReLU)

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t = text.unsqueeze(1).expand_as(labels)  # (batch, num_labels, hidden)
        return self.mlp(torch.cat([t, labels], dim=-1)).squeeze(-1)


class HopfieldScorer(nn.Module):
    """ "hopfield": one Hopfield retrieval step of each label from the text, then an MLP per label."""

    def __init__(self, hidden: int, mlp_hidden: int = _FIXED_MLP_HIDDEN, beta: float = 4.0) -> None:
        super().__init__()
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.mlp = _mlp([hidden, mlp_hidden, mlp_hidden // 2, 1], nn.ReLU)
        self.beta = beta

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t = text.unsqueeze(1)  # (batch, 1, hidden)
        attn = torch.bmm(self.q_proj(labels), self.k_proj(t).transpose(1, 2)) * self.beta  # (b, k, 1)
        if label_mask is not None:  # padded label slots out of the softmax; the official one has them
            attn = attn.masked_fill(~label_mask.bool().unsqueeze(-1), torch.finfo(attn.dtype).min)
        attn = attn.softmax(dim=1)  # over labels
        return self.mlp(labels + attn * self.v_proj(t)).squeeze(-1)


class CrossAttnScorer(nn.Module):
    """ "cross-attn": each label attends over the text tokens, then an MLP over [context, label]."""

    def __init__(self, hidden: int, num_heads: int, attn_dropout: float, mlp_hidden: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.q_norm = nn.LayerNorm(hidden)
        self.kv_norm = nn.LayerNorm(hidden)
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.score_mlp = _mlp([hidden * 2, mlp_hidden, mlp_hidden // 2, 1], nn.GELU)

    def forward(
        self,
        text: torch.Tensor,
        labels: torch.Tensor,
        text_mask: torch.Tensor,
        label_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, seq, hidden = text.shape
        num_labels = labels.shape[1]
        heads, head_dim = self.num_heads, hidden // self.num_heads
        # (batch, heads, len, head_dim)
        q = self.q(self.q_norm(labels)).view(batch, num_labels, heads, head_dim).transpose(1, 2)
        k = self.k(self.kv_norm(text)).view(batch, seq, heads, head_dim).transpose(1, 2)
        v = self.v(text).view(batch, seq, heads, head_dim).transpose(1, 2)
        keep = text_mask.bool()[:, None, None, :]  # (batch, 1, 1, seq)
        p = self.attn_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        context = self.norm(self.out(context.transpose(1, 2).reshape(batch, num_labels, hidden)))
        return self.score_mlp(torch.cat([context, labels], dim=-1)).squeeze(-1)


def build_scorer(config: GLiClassConfig) -> nn.Module:
    """The scorer named by `config.scorer_type`, sized as the official implementation sizes it."""
    hidden = config.hidden_size
    builders = {
        "simple": lambda: DotScorer(),
        "weighted-dot": lambda: WeightedDotScorer(hidden),
        "mlp": lambda: MLPScorer(hidden),
        "hopfield": lambda: HopfieldScorer(hidden),
        "cross-attn": lambda: CrossAttnScorer(
            hidden, config.scorer_num_heads, config.scorer_attn_dropout, config.scorer_mlp_hidden_size
        ),
    }
    return builders[config.scorer_type]()
