"""Device, dtype and window helpers shared by training and inference (torch, no model code)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Final

import torch
from transformers import PretrainedConfig

from .config import GLiClassConfig
from .errors import InputError

# Absolute-position backbones whose position ids start after the padding index.
_POSITION_OFFSET_TYPES: Final = frozenset({"roberta", "xlm-roberta", "camembert", "mpnet", "longformer"})
# The window of the official pipeline, used for relative-position backbones (DeBERTa-v3).
RELATIVE_POSITION_WINDOW: Final = 1024

DTYPE_NAMES: Final = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def model_max_length(config: GLiClassConfig) -> int:
    """The longest input the backbone can take: its position table, or 1024 for relative positions."""
    return backbone_max_length(config.encoder_config)


def label_max_length(config: GLiClassConfig) -> int:
    """The longest label a bi-encoder's label encoder can take."""
    assert config.label_model_config is not None
    return backbone_max_length(config.label_model_config)


def backbone_max_length(backbone_config: PretrainedConfig) -> int:
    backbone = backbone_config.get_text_config()
    positions = getattr(backbone, "max_position_embeddings", None)
    if positions is None or getattr(backbone, "position_biased_input", True) is False:
        return RELATIVE_POSITION_WINDOW
    return int(positions) - (2 if backbone.model_type in _POSITION_OFFSET_TYPES else 0)


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto": CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError("device", f"{device!r} is not a device (auto, cpu, cuda, cuda:N, ...)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", f"{device!r} asked for, but CUDA is not available here")
    return resolved


def native_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bf16 in hardware (emulated bf16 is slower than fp16)."""
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


# Set to 0 or 1, overrides what `cpu_native_bf16` reads off the CPU (for "auto" only).
CPU_BF16_VARIABLE: Final = "EVERYLABEL_CPU_BF16"
# CPU flags of bf16 matrix arithmetic in hardware: x86 AVX-512 BF16 and AMX, the Arm BF16 extension.
_BF16_FLAGS: Final = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 products in hardware (Linux `/proc/cpuinfo` flags); without
    them torch emulates bf16, slower than fp32. `$EVERYLABEL_CPU_BF16` (0 or 1) overrides."""
    forced = os.environ.get(CPU_BF16_VARIABLE)
    if forced in ("0", "1"):
        return forced == "1"
    return bool(cpu_flags() & _BF16_FLAGS)


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """ "auto": bf16 on a GPU that has it natively, fp16 on other GPUs; on the CPU bf16 where it
    computes bf16 in hardware (`cpu_native_bf16`), else fp32.

    Names like "bf16" and "float16" are accepted.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if cpu_native_bf16() else torch.float32
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if dtype not in DTYPE_NAMES:
        raise InputError("dtype", f"{dtype!r} is not one of 'auto', {', '.join(map(repr, DTYPE_NAMES))}")
    return DTYPE_NAMES[dtype]
