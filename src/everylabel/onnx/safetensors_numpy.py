"""Read a `.safetensors` file with numpy alone (the base install has no `safetensors` package).

The format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
and byte range in the data that follows. Float16 and float32 tensors are read (as float32); the
default model's checkpoint holds nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError

_DTYPES = {"F16": np.float16, "F32": np.float32}


def read_tensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of the file, as float32 arrays."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ConfigError(f"{path}: not a safetensors file (shorter than its header length)")
    length = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + length])
    except ValueError as error:
        raise ConfigError(f"{path}: not a safetensors file ({error})") from None
    data = raw[8 + length :]
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise ConfigError(f"{path}: tensor {name}: dtype {spec['dtype']} is not read without torch")
        start, end = spec["data_offsets"]
        values = np.frombuffer(data[start:end], dtype=dtype).reshape(spec["shape"])
        out[name] = values.astype(np.float32)
    return out
