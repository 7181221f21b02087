"""What an ONNX export folder holds (`everylabel_onnx.json`), read without torch or transformers.

Folder layout:
    everylabel_onnx.json   this manifest
    model.onnx             the text graph: logits (batch, labels)
    label_encoder.onnx     bi-encoders: label token ids -> label vectors (cacheable)
    embedding.onnx         models with an embedding blend: text -> unit sentence vector
    tokenizer.json, label_tokenizer.json, embedding_tokenizer.json   the matching tokenizers (the
                           embedding graph reads tokenizer.json where that tokenises alike)
    parity.npz             inputs and the torch model's outputs on them, checked at export
    background_vectors.npz an embedding blend's background labels, embedded by embedding.onnx
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigError

MANIFEST: Final = "everylabel_onnx.json"
FORMAT: Final = 1


@dataclass
class TokenizerInfo:
    file: str
    pad_token_id: int
    all_special_ids: list[int]
    max_length: int  # the longest input its graph takes


@dataclass
class OnnxManifest:
    architecture_type: str
    prompt_first: bool
    special_ids: tuple[int, int, int]  # (label, sep, example)
    mask_padding: bool
    opset: int
    int8: bool
    text: TokenizerInfo
    label: TokenizerInfo | None = None  # bi-encoders
    embedding: TokenizerInfo | None = None  # an embedding blend's backbone
    embedding_blend: dict[str, Any] | None = None
    label_width: int = 0  # a bi-encoder's label vector size
    label_template: str | None = None  # the sentence labels are read in (`GLiClassConfig.label_template`)
    dot_scored: bool = False  # a bi-encoder whose logit is linear in its label vector (`Backend.dot_scored`)
    source: str = ""
    quantization: dict[str, Any] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)  # per graph: fused node counts, or why not
    format: int = FORMAT

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> OnnxManifest:
        path = Path(folder) / MANIFEST
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ConfigError(f"{path}: format {raw.get('format')!r}, this version reads {FORMAT}")
        for key in ("text", "label", "embedding"):
            if raw.get(key) is not None:
                raw[key] = TokenizerInfo(**raw[key])
        raw["special_ids"] = tuple(raw["special_ids"])
        return cls(**raw)

    @property
    def is_bi_encoder(self) -> bool:
        return self.architecture_type in ("bi-encoder", "bi-encoder-fused")

    def special_token_ids(self) -> tuple[int, int, int]:
        """As `GLiClassConfig.special_token_ids`: the manifest stands in for the config in the layout."""
        return self.special_ids


def is_onnx_export(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / MANIFEST).is_file()
