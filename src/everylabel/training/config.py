"""Typed training configs, read from YAML with `--set key=value` overrides and clear errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from ..errors import TrainConfigError

# Metrics the trainer's evaluation reports; `metric_for_best` names one of them.
EVAL_METRICS = ("macro_f1", "micro_f1", "weighted_f1", "accuracy", "micro_precision", "micro_recall", "loss")
LOWER_IS_BETTER = frozenset({"loss"})


@dataclass
class LoraOptions:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    train_special_tokens: bool = True  # also train the <<LABEL>>/<<SEP>>/<<EXAMPLE>> embedding rows


@dataclass
class TrainConfig:
    """Supervised training. `model` is a GLiClass checkpoint or a backbone to build a new model on."""

    model: str
    train_data: str
    output_dir: str
    model_options: dict[str, Any] = field(default_factory=dict)  # GLiClass config keys for a new model
    # "identity": a new model's text and label projectors start as the identity map (hidden_size must be
    # twice the backbone width), so the head starts from the backbone's own geometry
    head_init: Literal["random", "identity"] = "random"
    eval_data: str | None = None
    descriptions: str | None = None
    skip_invalid: bool = False
    problem_type: Literal["multi_label", "single_label"] = "multi_label"
    # single-label only: train toward each record's scores normalised over its candidates (a
    # teacher's distribution, for distillation), not toward its best candidate as a hard class
    soft_targets: bool = False
    # single-label only, > 0: also a binary cross-entropy on every candidate through the fixed Platt
    # step sigmoid(level_scale * logit + level_bias), weighted by this. The softmax leaves a text's
    # logits free to shift together; this trains the absolute level that multi-label and one-label
    # calls read through the model's calibration (losses.platt_level_loss)
    level_loss: float = 0.0
    level_scale: float = 1.0
    level_bias: float = 0.0
    # with `level_loss`: the term only on records whose "source" is one of these (records whose
    # labels are yes or no for every candidate, such as everyday topics), not on a teacher's; null: all
    level_sources: list[str] | None = None
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    encoder_lr: float = 1e-5
    head_lr: float = 3e-5
    encoder_weight_decay: float = 0.01
    head_weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: Literal["linear", "constant"] = "linear"
    max_grad_norm: float | None = 1.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    max_length: int | None = None
    eval_every: int | None = None
    save_every: int | None = 500  # a checkpoint every N optimizer steps (null: none), for resume
    keep_checkpoints: int = 2
    metric_for_best: str = "macro_f1"  # one of EVAL_METRICS; the lowest loss, or the highest of the others
    log_every: int = 10
    seed: int = 42
    group_by_length: bool = True
    freeze_encoder: bool = False
    # Pool the text over real tokens only, as the Classifier serves by default; recorded in the
    # model config so a checkpoint is served the way it was trained. False: padding in the mean
    # (the official poolers).
    mask_padding: bool = True
    progress: bool | None = None
    shuffle_labels: bool = True
    max_labels: int = 50
    negatives: int = 0
    aug_drop_labels: float = 0.0
    aug_add_labels: float = 0.0
    aug_descriptions: float = 0.0
    aug_examples: float = 0.0
    # 0: the official examples (1 or 2 records sharing a label); n: 1 to n examples of every candidate
    aug_examples_per_label: int = 0
    # > 0: each batch also runs with every example's candidates in another order, and this weighs the
    # mean squared gap of a label's logits between the two orders (training/order_consistency.py)
    order_consistency: float = 0.0
    # "relative": each example's gap divided by its logits' spread, so shrinking them does not lower it
    order_consistency_gap: Literal["absolute", "relative"] = "absolute"
    # false: both orders run without dropout (the model in eval mode for the step), so the gap is the
    # order effect alone, not two dropout masks; the task loss then trains without dropout too
    order_consistency_dropout: bool = True
    lora: LoraOptions | None = None

    def validate(self) -> None:
        positive = ("batch_size", "grad_accum", "keep_checkpoints", "log_every", "max_labels")
        for key in positive:
            if getattr(self, key) < 1:
                raise TrainConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.aug_examples_per_label < 0:
            raise TrainConfigError(f"aug_examples_per_label: must be >= 0, got {self.aug_examples_per_label}")
        for key in ("max_steps", "eval_every", "save_every", "max_length"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise TrainConfigError(f"{key}: must be >= 1 or null, got {value}")
        if self.epochs <= 0 and self.max_steps is None:
            raise TrainConfigError(f"epochs: must be > 0 (or set max_steps), got {self.epochs}")
        for key in ("warmup_ratio", "aug_drop_labels", "aug_add_labels", "aug_descriptions", "aug_examples"):
            if not 0 <= getattr(self, key) <= 1:
                raise TrainConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)}")
        rates = ("encoder_lr", "head_lr", "encoder_weight_decay", "head_weight_decay")
        for key in (*rates, "order_consistency", "level_loss"):
            if getattr(self, key) < 0:
                raise TrainConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.soft_targets and self.problem_type != "single_label":
            raise TrainConfigError(
                "soft_targets: needs problem_type single_label (multi-label targets are scores already)"
            )
        if self.level_loss > 0 and self.problem_type != "single_label":
            raise TrainConfigError(
                "level_loss: needs problem_type single_label (multi-label training is a binary "
                "cross-entropy already)"
            )
        if self.level_sources is not None and (self.level_loss <= 0 or not self.level_sources):
            raise TrainConfigError("level_sources: needs level_loss > 0 and at least one source")
        if self.level_loss > 0 and self.level_scale <= 0:
            raise TrainConfigError(f"level_scale: must be > 0, got {self.level_scale}")
        if self.metric_for_best not in EVAL_METRICS:
            known = ", ".join(map(repr, EVAL_METRICS))
            raise TrainConfigError(f"metric_for_best: {self.metric_for_best!r} is not one of {known}")


@dataclass
class RLConfig(TrainConfig):
    """The PPO stage (multi-label): one Bernoulli action per label, a reward per example."""

    problem_type: Literal["multi_label", "single_label"] = "multi_label"
    cliprange: float = 0.2
    inner_iters: int = 3
    rewards: dict[str, float] = field(default_factory=lambda: {"f1": 1.0})  # reward name -> weight
    baseline: Literal["batch_mean", "value_model"] = "batch_mean"
    value_lr: float = 1e-4
    kl_beta: float = 0.0  # weight of the KL to a frozen copy of the starting model (k3 estimator)
    entropy_beta: float = 0.0  # entropy bonus
    focal_gamma: float = -1.0  # > 0 weights each label's term by (1 - p_t) ** gamma (hard labels count more)
    focal_alpha: float = -1.0  # >= 0 weights positives by alpha, negatives by 1 - alpha
    actions: Literal["bernoulli", "threshold"] = "bernoulli"
    threshold: float = 0.5

    def validate(self) -> None:
        super().validate()
        if self.problem_type != "multi_label":
            raise TrainConfigError("problem_type: the PPO stage is multi-label only")
        if self.grad_accum != 1:
            raise TrainConfigError("grad_accum: the PPO stage updates once per inner iteration; use 1")
        if not 0 < self.cliprange < 1:
            raise TrainConfigError(f"cliprange: must be in (0, 1), got {self.cliprange}")
        if self.order_consistency:
            raise TrainConfigError("order_consistency: a supervised option; the PPO stage does not use it")
        if self.inner_iters < 1:
            raise TrainConfigError(f"inner_iters: must be >= 1, got {self.inner_iters}")
        if not self.rewards:
            raise TrainConfigError("rewards: name at least one reward")


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """Check (and lightly convert) a value against a dataclass field type."""
    origin = get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except TrainConfigError as error:
                errors.append(str(error))
        raise TrainConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        allowed = get_args(kind)
        if value not in allowed:
            raise TrainConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise TrainConfigError(f"{key}: expected a mapping of options")
        return _build(kind, value, f"{key}.")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if origin is list and isinstance(value, list):
        return value
    if origin is dict and isinstance(value, dict):
        return value
    if kind is Any:
        return value
    name = getattr(kind, "__name__", str(kind))
    raise TrainConfigError(f"{key}: expected {name}, got {value!r}")


def _build(cls: Any, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise TrainConfigError(f"{prefix}{unknown[0]}: unknown option (known: {', '.join(sorted(names))})")
    values = {key: _coerce(value, hints[key], prefix + key) for key, value in raw.items()}
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TrainConfigError(f"{prefix}{missing[0]}: required option is missing")
    return cls(**values)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key=value` (dotted keys reach into sections; values parsed as YAML) applied onto `raw`."""
    out = dict(raw)
    for item in overrides:
        if "=" not in item:
            raise TrainConfigError(f"--set {item}: expected key=value")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text) if text else ""
        target = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise TrainConfigError(f"--set {item}: {part} is not a section")
        target[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None, kind: type = TrainConfig) -> Any:
    """A validated config of `kind` from a YAML file plus `--set` overrides."""
    path = Path(path)
    if not path.exists():
        raise TrainConfigError(f"{path}: config file does not exist")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: expected a mapping of options")
    config = config_from_dict(apply_overrides(raw, overrides or []), kind)
    return config


def config_from_dict(raw: dict[str, Any], kind: type = TrainConfig) -> Any:
    config = _build(kind, raw)
    config.validate()
    return config
