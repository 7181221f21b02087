"""A fitted score calibration, stored beside a model and applied to its logits (numpy only).

`everylabel calibrate` (see `evaluation/calibrate.py`) writes `everylabel_calibration.json` into a
model folder; `Classifier.from_pretrained`, `OnnxClassifier` and the server read it and apply it
without being told, to calls of the decision mode it was fitted for (`mode`): a multi-label fit to
sigmoid calls, a single-label fit to softmax calls; calls of the other mode get the model's own
scores. Each label's logit z becomes `scale * z + bias` (temperature scaling: bias 0, scale 1/T;
Platt scaling: both), with the label's own pair where it was fitted per label and the global pair
otherwise. Tuned per-label thresholds, when fitted (multi-label only), are the default thresholds
of multi-label calls.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError

CALIBRATION_FILE = "everylabel_calibration.json"
FORMAT_VERSION = 1
Method = Literal["temperature", "platt"]
METHODS: tuple[str, ...] = ("temperature", "platt")
MODES: tuple[str, ...] = ("multi-label", "single-label")


@dataclass(frozen=True)
class Calibration:
    """scale and bias per label (else the global pair), and tuned thresholds (else `default_threshold`)."""

    method: Method
    mode: str  # the decision mode it was fitted for: "multi-label" (sigmoid) or "single-label" (softmax)
    scale: float = 1.0
    bias: float = 0.0
    per_label: dict[str, tuple[float, float]] = field(default_factory=dict)  # label -> (scale, bias)
    thresholds: dict[str, float] = field(default_factory=dict)  # label -> tuned threshold
    default_threshold: float | None = None  # for labels without their own; None: 0.5
    report: dict[str, Any] = field(default_factory=dict)  # how it was fitted and what it did

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"calibration.method: expected one of {METHODS}, got {self.method!r}")
        if self.mode not in MODES:
            raise ConfigError(f"calibration.mode: expected one of {MODES}, got {self.mode!r}")
        scales = [("scale", self.scale), *((f"per_label[{k!r}]", v[0]) for k, v in self.per_label.items())]
        for name, scale in scales:
            if not (math.isfinite(scale) and scale > 0):
                raise ConfigError(f"calibration.{name}: expected a scale > 0, got {scale!r}")
        limits: list[tuple[str, float | None]] = [("default_threshold", self.default_threshold)]
        limits += [(f"thresholds[{k!r}]", v) for k, v in self.thresholds.items()]
        for name, limit in limits:
            if limit is not None and not 0.0 <= limit <= 1.0:
                raise ConfigError(f"calibration.{name}: expected a number in [0, 1], got {limit!r}")

    def applies_to(self, multi_label: bool) -> bool:
        """Whether this calibration holds for calls of that decision mode (it is fitted for one)."""
        return self.mode == ("multi-label" if multi_label else "single-label")

    def apply(self, labels: Sequence[str], logits: np.ndarray) -> np.ndarray:
        """Calibrated logits of one pass: `labels[i]`'s logit -> scale * logit + bias. (labels,) float32."""
        scales = np.array([self.per_label.get(name, (self.scale, self.bias))[0] for name in labels])
        biases = np.array([self.per_label.get(name, (self.scale, self.bias))[1] for name in labels])
        return (scales * logits + biases).astype(np.float32)

    def decision_thresholds(self, label_sets: Sequence[Sequence[str]]) -> float | dict[str, float]:
        """The thresholds a multi-label call uses when the caller gives none: tuned ones, else 0.5.
        Thresholds are tuned on multi-label scores, so a single-label calibration has none to give."""
        if self.mode != "multi-label" or (not self.thresholds and self.default_threshold is None):
            return 0.5
        fallback = 0.5 if self.default_threshold is None else self.default_threshold
        names = dict.fromkeys(name for labels in label_sets for name in labels)
        return {name: self.thresholds.get(name, fallback) for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "mode": self.mode,
            "scale": self.scale,
            "bias": self.bias,
            "per_label": {name: list(pair) for name, pair in self.per_label.items()},
            "thresholds": self.thresholds,
            "default_threshold": self.default_threshold,
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != FORMAT_VERSION:
            raise ConfigError(f"calibration.format: expected {FORMAT_VERSION}, got {data.get('format')!r}")
        try:
            return cls(
                method=data["method"],
                mode=data["mode"],
                scale=float(data["scale"]),
                bias=float(data["bias"]),
                per_label={str(k): (float(v[0]), float(v[1])) for k, v in data.get("per_label", {}).items()},
                thresholds={str(k): float(v) for k, v in data.get("thresholds", {}).items()},
                default_threshold=_optional_float(data.get("default_threshold")),
                report=dict(data.get("report", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ConfigError(f"calibration: malformed ({type(error).__name__}: {error})") from None

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / CALIBRATION_FILE
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        return path


def load_calibration(folder: str | os.PathLike[str]) -> Calibration | None:
    """The calibration stored in a model folder, or None; a malformed file raises `ConfigError`."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg})") from None
    return Calibration.from_dict(data)


def choose_calibration(
    option: bool | Calibration | None, folder: str | os.PathLike[str]
) -> Calibration | None:
    """What a classifier's `calibration` option means: True, the one stored in the model's `folder`
    (none if it has none, or is no local folder); False or None, none; a `Calibration`, itself."""
    if isinstance(option, Calibration) or option is None:
        return option
    return load_calibration(folder) if option and os.path.isdir(folder) else None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
