"""Copy a trained adapter folder into the package as the default model, checking its size.

    python recipes/package_default_model.py runs/default-model-bi/final [--set KEY=JSON ...]

`--set` writes inference-time config keys (JSON values), such as `pool_text_before_examples=true`.
A bi-encoder's label tokenizer is not copied: it is the packaged backbone's, which the config's
`label_model_name` names (and the ONNX export reads the text tokenizer's file, which tokenises
labels alike).

The adapters' and head's matrices are stored in float16 (vectors and scalars stay float32): the
package holds them once, read by the torch path (cast back to float32 on load) and by the packed
ONNX export (`recipes/pack_default_onnx.py` references them), and half the bytes keep the whole
default model within the 24 MB the project allows it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from everylabel.loading import resolve_path
from everylabel.paths import MINILM_NAME
from everylabel.tokenization import LABEL_TOKENIZER_FOLDER

LIMIT = 16 * 1024 * 1024
BASES = ("base", "label_base")  # the backbones of everylabel_adapter.json (label_base: bi-encoders)
TARGET = Path(__file__).parents[1] / "src" / "everylabel" / "default_model"


def main(source: str, settings: dict[str, object]) -> int:
    folder = Path(source)
    meta = json.loads((folder / "everylabel_adapter.json").read_text())
    for key in BASES:
        if key in meta and meta[key] == resolve_path(MINILM_NAME):  # the same backbone, named portably
            meta[key] = MINILM_NAME
        if meta.get(key, MINILM_NAME) != MINILM_NAME:
            print(f"{folder}: {key} is {meta[key]!r}, expected the packaged {MINILM_NAME!r}")
            return 1
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if size > LIMIT:
        print(f"{folder}: {size / 2**20:.1f} MiB is over the 16 MiB limit")
        return 1
    shutil.rmtree(TARGET, ignore_errors=True)
    # A bi-encoder's label tokenizer is the packaged backbone's, which `label_model_name` names.
    shutil.copytree(folder, TARGET, ignore=shutil.ignore_patterns(LABEL_TOKENIZER_FOLDER))
    (TARGET / "everylabel_adapter.json").write_text(json.dumps(meta, indent=2))
    config = json.loads((TARGET / "config.json").read_text())
    config["encoder_model_name"] = meta["base"]
    config["encoder_config"]["_name_or_path"] = meta["base"]  # not the training machine's folder
    if "label_base" in meta:
        config["label_model_name"] = meta["label_base"]
        config["label_model_config"]["_name_or_path"] = meta["label_base"]
    config.update(settings)
    (TARGET / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for adapter in ("adapter", "label_adapter"):
        adapter_config = TARGET / adapter / "adapter_config.json"
        if not adapter_config.is_file():
            continue
        options = json.loads(adapter_config.read_text())
        options["base_model_name_or_path"] = MINILM_NAME
        adapter_config.write_text(json.dumps(options, indent=2, sort_keys=True) + "\n")
        (TARGET / adapter / "README.md").unlink(missing_ok=True)  # peft's model-card template
    for path in sorted(TARGET.rglob("*.safetensors")):
        store_half(path)
    print(f"default model: {size / 2**20:.2f} MiB copied to {TARGET}")
    return 0


def store_half(path: Path) -> None:
    """Rewrite a safetensors file with its float32 matrices in float16 (refused where a value would
    not fit float16's range)."""
    tensors = load_file(str(path))
    for name, tensor in tensors.items():
        if tensor.dtype == np.float32 and tensor.ndim == 2:
            if np.abs(tensor).max() > np.finfo(np.float16).max:
                raise SystemExit(f"{path}: {name} holds values beyond float16's range")
            tensors[name] = tensor.astype(np.float16)
    save_file(tensors, str(path))


def parse_settings(pairs: list[str]) -> dict[str, object]:
    settings: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value)
    return settings


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the run's final folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = parser.parse_args()
    sys.exit(main(args.source, parse_settings(args.set)))
