"""Few-shot fitting: adapt a classifier's model from a handful of labelled examples per label."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from .config import TrainConfig
from .data import Record
from .trainer import Trainer, TrainResult

if TYPE_CHECKING:
    from ..inference.classifier import Classifier


def _precision(dtype: torch.dtype, device: torch.device) -> str:
    """The autocast that keeps a half-precision model's numerics while fp32 master weights train."""
    if dtype == torch.bfloat16:
        return "bf16"
    if dtype == torch.float16 and device.type == "cuda":
        return "fp16"
    return "fp32"


def few_shot_fit(
    classifier: Classifier,
    examples: Sequence[Mapping[str, Any]],
    labels: Sequence[str] | None = None,
    *,
    multi_label: bool | None = None,
    epochs: float = 8.0,
    batch_size: int = 8,
    encoder_lr: float = 5e-5,
    head_lr: float = 1e-3,
    seed: int = 0,
    **options: Any,
) -> TrainResult:
    """Fine-tune `classifier.model` in place on `examples` ({"text", "labels"}), all labels shown.

    `labels` is the label set (default: every label in the examples); `multi_label` defaults to
    False when each example has exactly one label. Other `options` are `TrainConfig` fields.

    Training runs on fp32 master weights (autocast in the classifier's bf16/fp16), so small updates
    do not round away; afterwards the model is back in its dtype and mode. If training raises, the
    model is rolled back to its weights before the call. The global torch RNG state is left as it was.
    A calibration the classifier had was fitted on the old model's logits: it is dropped (with its
    tuned thresholds), with a `StaleCalibrationWarning`; refit one on the new model.
    """
    names = (
        list(labels) if labels is not None else sorted({lab for e in examples for lab in e.get("labels", [])})
    )
    records = _records(examples, names)
    if multi_label is None:
        multi_label = any(len(e["labels"]) != 1 for e in examples)
    model = classifier.model
    dtype, device, was_training = classifier.dtype, classifier.device, model.training
    before = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
    config_before = {key: getattr(model.config, key) for key in ("problem_type", "mask_padding")}
    rng_devices = [device] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=rng_devices),
        tempfile.TemporaryDirectory(prefix="everylabel-fit-") as folder,
    ):
        try:
            torch.nn.Module.to(model, dtype=torch.float32)
            config = TrainConfig(
                model="(in memory)",
                train_data="(in memory)",
                output_dir=folder,
                problem_type="multi_label" if multi_label else "single_label",
                epochs=epochs,
                batch_size=batch_size,
                encoder_lr=encoder_lr,
                head_lr=head_lr,
                seed=seed,
                device=str(device),
                precision=options.pop("precision", _precision(dtype, device)),
                max_length=classifier.max_length,
                max_labels=max(len(names), 1),
                mask_padding=classifier.mask_padding,
                save_every=options.pop("save_every", None),
                progress=options.pop("progress", False),
                **options,
            )
            label_tokenizer = classifier.label_vectors.tokens.tokenizer if classifier.label_vectors else None
            trainer = Trainer(
                config,
                model=model,
                tokenizer=classifier.tokenizer,
                train_records=records,
                label_tokenizer=label_tokenizer,
            )
            result = trainer.train(resume=False)
        except BaseException:
            model.load_state_dict(before)
            for key, value in config_before.items():
                setattr(model.config, key, value)
            raise
        finally:
            torch.nn.Module.to(model, dtype=dtype)
            model.train(was_training)
            classifier.clear_label_cache()  # label vectors of the weights before
    if classifier.calibration is not None:
        classifier.calibration = None
        warnings.warn(
            "the classifier's calibration (and its tuned thresholds) was fitted on the model before "
            "few_shot_fit; it is no longer applied. Fit a new one with `everylabel calibrate`",
            StaleCalibrationWarning,
            stacklevel=2,
        )
    return result


def _records(examples: Sequence[Mapping[str, Any]], names: list[str]) -> list[Record]:
    """Training records of the examples, every label of `names` shown; bad ones named."""
    records = []
    for i, example in enumerate(examples):
        text, gold = example.get("text"), example.get("labels")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"examples[{i}].text", "expected a non-empty string")
        if isinstance(gold, str) or not isinstance(gold, Sequence) or not gold:
            raise InputError(f"examples[{i}].labels", "expected a non-empty list of label names")
        for label in gold:
            if label not in names:
                raise InputError(f"examples[{i}].labels", f"{label!r} is not one of the labels")
        records.append(Record(text, list(names), dict.fromkeys(gold, 1.0)))
    if not records:
        raise InputError("examples", "no examples given")
    return records


class StaleCalibrationWarning(UserWarning):
    """A calibration fitted on a model's old logits was dropped after its weights changed."""
