"""Text poolers: (batch, seq, hidden) -> (batch, hidden), registered by name.

The official poolers are called without the attention mask, so padding positions take part in
`avg`, `sum`, `max`, `rms`, `abs_*` and `last`. `pool(..., mask=None)` reproduces that exactly;
passing a mask pools over real tokens only, which makes the result independent of batch padding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Pooler = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def _weights(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    # (batch, seq) -> (batch, seq, 1) in the dtype of x
    return None if mask is None else mask.unsqueeze(-1).to(x.dtype)


def _first(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x[:, 0]


def _last(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x[:, -1]
    last = mask.long().sum(dim=1).clamp(min=1) - 1  # (batch,)
    return x[torch.arange(x.shape[0], device=x.device), last]


def _avg(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    w = _weights(x, mask)
    if w is None:
        return x.mean(dim=1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)


def _sum(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    w = _weights(x, mask)
    return x.sum(dim=1) if w is None else (x * w).sum(dim=1)


def _max(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    w = _weights(x, mask)
    if w is None:
        return x.amax(dim=1)
    return x.masked_fill(w == 0, torch.finfo(x.dtype).min).amax(dim=1)


def _rms(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return _avg(x.pow(2), mask).sqrt()


def _abs_max(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    w = _weights(x, mask)
    return x.abs().amax(dim=1) if w is None else (x * w).abs().amax(dim=1)


def _abs_avg(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return _avg(x.abs(), mask)


def _pass(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x  # (batch, seq, hidden): the cross-attention scorer reads every token


POOLERS: dict[str, Pooler] = {
    "first": _first,
    "last": _last,
    "avg": _avg,
    "sum": _sum,
    "max": _max,
    "rms": _rms,
    "abs_max": _abs_max,
    "abs_avg": _abs_avg,
    "pass": _pass,
}


def pool(strategy: str, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool token states by `strategy`; `mask` (batch, seq) restricts pooling to real tokens."""
    return POOLERS[strategy](hidden, mask)
