"""Configs of the small training runs the trainer tests make, and reading their metrics log."""

from __future__ import annotations

import json
from pathlib import Path

from everylabel.training.config import TrainConfig, config_from_dict

TOY_MODEL = {"dropout": 0.1, "class_token_pooling": "average", "scorer_type": "mlp",
             "focal_loss_alpha": -1, "focal_loss_gamma": 0}  # fmt: skip


def config(backbone: Path, data: tuple[Path, Path], out: Path, **overrides) -> TrainConfig:
    options = {
        "model": str(backbone),
        "train_data": str(data[0]),
        "eval_data": str(data[1]),
        "output_dir": str(out),
        "model_options": TOY_MODEL,
        "batch_size": 16,
        "encoder_lr": 1e-3,
        "head_lr": 1e-3,
        "warmup_ratio": 0.0,
        "log_every": 6,
        **overrides,
    }
    return config_from_dict(options)


def logged(out: Path, key: str) -> list[float]:
    return [
        row[key] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if key in row
    ]
