"""Build the default model's packed ONNX export into the package (`src/everylabel/default_model/onnx`).

The base install runs the default model on onnxruntime without torch, from this folder: the fp32
export (`export_onnx`, needs torch), packed by `everylabel.onnx.packed` (about 16 MB instead of
180: the word embeddings 4-bit, the other backbone matrices int8, and it reads the adapters, head
and tokenizer from the model's folder instead of holding copies).
The packed export records the digest of the checkpoint files it was built from, and a test checks
it against the shipped model, so a model rebuilt without this step fails the tests.
Run: .venv/bin/python recipes/pack_default_onnx.py   (`make default-model` runs it)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from everylabel.digests import folder_digest
from everylabel.onnx import export_onnx
from everylabel.onnx.backend import SHIPPED
from everylabel.onnx.packed import is_packed, pack
from everylabel.paths import DEFAULT_MODEL_NAME, resolve_path

# The word-embedding table in 4 bits: selection macro-F1 moves by -0.16 / -0.06 / -0.15 points
# (docs/benchmarks.md, "Default model v4"), and the whole default model fits its 24 MB.
TABLE_BITS = 4


def main() -> None:
    model = Path(resolve_path(DEFAULT_MODEL_NAME))
    target = model / SHIPPED
    if target.exists() and not is_packed(target):
        raise SystemExit(f"{target} exists and is not a packed export; not replacing it")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        export = export_onnx(DEFAULT_MODEL_NAME, Path(work) / "export")
        packed = Path(work) / "packed"
        digest = folder_digest(model, exclude=(SHIPPED,))
        plan = pack(export, packed, source_digest=digest, parent=model, table_bits=TABLE_BITS)
        if target.exists():
            shutil.rmtree(target)  # the previous build of this same step
        shutil.copytree(packed, target)
    size = sum(p.stat().st_size for p in target.iterdir())
    whole = sum(p.stat().st_size for p in model.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    kinds: dict[str, int] = {}
    for entry in plan["tensors"]:
        kinds[entry["how"]] = kinds.get(entry["how"], 0) + 1
    print(
        f"packed {target}: {size / 2**20:.1f} MiB ({plan['size'] / 2**20:.0f} MiB unpacked), "
        f"tensors {kinds}, {time.monotonic() - started:.0f} s; the whole default model {whole / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
