"""`Classifier`: texts and candidate labels in, decisions out, in public stages.

prepare (validate, lay out token ids) -> batches (length-sorted, token-budget packed) -> run (the
model on one padded batch) -> decode (scores, windows and label groups merged, thresholds).
The CLI, the benchmarks and later the server call these same stages.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..config import GLiClassConfig
from ..loading import load_model
from ..modeling.model import GLiClassModel
from ..prompt import DescriptionMode, InputBuilder, Pass, Request, RequestPlan, Truncation
from . import inputs
from .batching import collate, plan_batches
from .results import ClassificationResult, Evidence

Aggregation = Literal["max", "mean"]

# Absolute-position backbones whose position ids start after the padding index.
_POSITION_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "mpnet", "longformer"})
# The window of the official pipeline, used for relative-position backbones (DeBERTa-v3).
_RELATIVE_POSITION_WINDOW = 1024


class TruncationWarning(UserWarning):
    """Some texts were cut to fit the model (truncation="warn"); each result says by how much."""


def model_max_length(config: GLiClassConfig) -> int:
    """The longest input the backbone can take: its position table, or 1024 for relative positions."""
    backbone = config.encoder_config.get_text_config()
    positions = getattr(backbone, "max_position_embeddings", None)
    if positions is None or getattr(backbone, "position_biased_input", True) is False:
        return _RELATIVE_POSITION_WINDOW
    return int(positions) - (2 if backbone.model_type in _POSITION_OFFSET_TYPES else 0)


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto": CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise inputs.InputError(
            "device", f"{device!r} is not a device (auto, cpu, cuda, cuda:N, ...)"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise inputs.InputError("device", f"{device!r} asked for, but CUDA is not available here")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """ "auto": bf16 (or fp16) on CUDA, fp32 on CPU; names like "bf16", "float16" are accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in names:
        raise inputs.InputError("dtype", f"{dtype!r} is not one of 'auto', {', '.join(map(repr, names))}")
    return names[dtype]


@dataclass
class Prepared:
    """Everything `prepare` worked out; `passes[i]` is scored by the model, the rest decodes."""

    requests: list[Request]
    plans: list[RequestPlan]
    passes: list[Pass]
    request_of_text: list[int | None]  # per input text: its request, None for an empty text
    thresholds: list[dict[str, float]]
    hierarchies: list[Any]
    multi_label: bool
    aggregation: Aggregation
    truncation: Truncation


class Classifier:
    """Zero-shot and few-shot classification with a GLiClass model; one encoder pass per text."""

    def __init__(
        self,
        model: GLiClassModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        min_text_tokens: int = 64,
        descriptions: DescriptionMode = "ignore",
        mask_padding: bool = True,
    ) -> None:
        inputs.check_choice("descriptions", descriptions, ("label", "text", "ignore"))
        if batch_size < 1:
            raise inputs.InputError("batch_size", f"must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        torch.nn.Module.to(model, device=self.device, dtype=self.dtype)
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = cast(GLiClassConfig, model.config)
        limit = model_max_length(config)
        if max_length is not None and not 8 <= max_length <= limit:
            raise inputs.InputError("max_length", f"must be in [8, {limit}] for this model, got {max_length}")
        self.max_length = max_length or limit
        self.batch_size = batch_size
        default_tokens = 16384 if self.device.type == "cpu" else 262144
        self.max_batch_tokens = max(max_batch_tokens or default_tokens, self.max_length)
        self.builder = InputBuilder(
            tokenizer,
            config,
            self.max_length,
            min_text_tokens=min_text_tokens,
            description_mode=descriptions,
        )
        # Label descriptions reach the model only when asked ("label" slot or "text"): models trained
        # without descriptions, the default model included, lose accuracy with them (docs/benchmarks.md).
        # True: pool text over real tokens only, so a text's scores never depend on its batch.
        self.mask_padding = mask_padding
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        **options: Any,
    ) -> Classifier:
        """A classifier over a GLiClass checkpoint (local folder or hub id)."""
        resolved = resolve_device(device)
        model, tokenizer = load_model(path, dtype=resolve_dtype(dtype, resolved))
        return cls(model, tokenizer, device=resolved, dtype=dtype, **options)

    # -- stages ----------------------------------------------------------------------------------

    def prepare(
        self,
        texts: str | Sequence[str],
        labels: Any,
        *,
        multi_label: bool = True,
        threshold: Any = 0.5,
        prompt: str | Sequence[str | None] | None = None,
        examples: Any = None,
        truncation: Truncation = "warn",
        aggregation: Aggregation = "max",
        overlap: int | None = None,
    ) -> Prepared:
        """Validate every argument and lay out all model inputs; raises `InputError` before any work."""
        inputs.check_choice("truncation", truncation, inputs.VALID_TRUNCATION)
        inputs.check_choice("aggregation", aggregation, inputs.VALID_AGGREGATION)
        if not isinstance(multi_label, bool):
            raise inputs.InputError("multi_label", f"expected True or False, got {multi_label!r}")
        if overlap is not None and (not isinstance(overlap, int) or overlap < 0):
            raise inputs.InputError("overlap", f"expected a number of tokens >= 0, got {overlap!r}")
        text_list = inputs.normalize_texts(texts)
        count = len(text_list)
        label_info = inputs.normalize_labels(labels, count)
        label_sets = [labels_ for labels_, _ in label_info]
        prompts = inputs.normalize_prompts(prompt, count)
        shots = inputs.normalize_examples(examples, count)
        thresholds = inputs.normalize_thresholds(threshold, label_sets)
        all_requests = inputs.build_requests(text_list, label_sets, prompts, shots)

        request_of_text: list[int | None] = []
        requests: list[Request] = []
        for request in all_requests:
            if request.text.strip():
                request_of_text.append(len(requests))
                requests.append(request)
            else:
                request_of_text.append(None)
        try:
            passes, plans = self.builder.build(requests, truncation, overlap)
        except inputs.InputError as error:  # name the caller's index, not the non-empty one
            raise _renumber(error, request_of_text) from None
        return Prepared(
            requests,
            plans,
            passes,
            request_of_text,
            thresholds,
            [h for _, h in label_info],
            multi_label,
            aggregation,
            truncation,
        )

    def batches(self, prepared: Prepared, batch_size: int | None = None) -> list[list[int]]:
        """Pass indices grouped into length-sorted batches within the size and token budgets."""
        lengths = [len(p.input_ids) for p in prepared.passes]
        return plan_batches(lengths, batch_size or self.batch_size, self.max_batch_tokens)

    @torch.inference_mode()
    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_slots: int) -> np.ndarray:
        """Logits (batch, num_slots) as float32 numpy for one padded batch."""
        out = self.model(
            input_ids.to(self.device, non_blocking=True),
            attention_mask.to(self.device, non_blocking=True),
            max_num_classes=num_slots,
            mask_padding=self.mask_padding,
        )
        return out.logits.float().cpu().numpy()

    def score(
        self, prepared: Prepared, batch_size: int | None = None, progress: bool | None = None
    ) -> list[np.ndarray]:
        """Run every pass; returns each pass's logits for its own labels."""
        logits: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(prepared.passes)
        batches = self.batches(prepared, batch_size)
        bar = _progress(len(prepared.passes), progress)
        for batch in batches:
            rows = [prepared.passes[i] for i in batch]
            ids, mask = collate([p.input_ids for p in rows], self.pad_id)
            out = self.run(ids, mask, max(p.num_labels for p in rows))
            for row, index, item in zip(out, batch, rows, strict=True):
                logits[index] = row[: item.num_labels]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return logits

    def decode(self, prepared: Prepared, logits: Sequence[np.ndarray]) -> list[ClassificationResult]:
        """Scores of every label (windows and groups merged), predictions, and what was cut."""
        by_request: list[list[list[np.ndarray]]] = [
            [[] for _ in plan.groups] for plan in prepared.plans
        ]  # request -> group -> windows
        for item, row in zip(prepared.passes, logits, strict=True):
            by_request[item.request][item.group].append(row)

        results = []
        cut_count = 0
        for index, request_index in enumerate(prepared.request_of_text):
            if request_index is None:
                results.append(
                    ClassificationResult(index, [], {}, empty=True, hierarchy=prepared.hierarchies[index])
                )
                continue
            request = prepared.requests[request_index]
            plan = prepared.plans[request_index]
            scores, evidence = _merge(
                by_request[request_index], plan, prepared.multi_label, prepared.aggregation
            )
            names = request.labels
            score_map = dict(zip(names, scores.tolist(), strict=True))
            ranked = sorted(range(len(names)), key=lambda i: -scores[i])
            if prepared.multi_label:
                limits = prepared.thresholds[index]
                predicted = [names[i] for i in ranked if scores[i] >= limits[names[i]]]
            else:
                predicted = [names[ranked[0]]]
            chunked = prepared.truncation == "chunk" and any(len(w) > 1 for w in plan.windows)
            results.append(
                ClassificationResult(
                    index=index,
                    labels=predicted,
                    scores=score_map,
                    text_tokens=plan.text_tokens,
                    truncated=plan.cut_tokens > 0,
                    cut_tokens=plan.cut_tokens,
                    windows=max(len(w) for w in plan.windows),
                    label_groups=len(plan.groups),
                    evidence=_evidence(names, evidence, plan) if chunked else None,
                    hierarchy=prepared.hierarchies[index],
                )
            )
            cut_count += plan.cut_tokens > 0
        if cut_count:
            warnings.warn(
                f"{cut_count} of {len(results)} texts were cut to fit {self.max_length} tokens; "
                "see result.cut_tokens, or use truncation='chunk'",
                TruncationWarning,
                stacklevel=3,
            )
        return results

    def classify(
        self,
        texts: str | Sequence[str],
        labels: Any,
        *,
        multi_label: bool = True,
        threshold: Any = 0.5,
        prompt: str | Sequence[str | None] | None = None,
        examples: Any = None,
        truncation: Truncation = "warn",
        aggregation: Aggregation = "max",
        overlap: int | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> list[ClassificationResult]:
        """Classify `texts` against `labels`; one result per text, in input order.

        labels: one list for all texts, one list per text, or a hierarchy (nested dicts/lists,
        flattened to `parent.child`); an item is a name, `Label(name, description)`,
        `(name, description)` or `{"name", "description"}`. multi_label: sigmoid scores, every
        label >= its threshold (a number, one per text, or a dict label -> number); otherwise
        softmax over the labels and the top one. truncation: "warn" cuts the text (never the
        labels) and reports it, "error" raises, "chunk" scores overlapping windows and aggregates
        them ("max" or "mean"). An empty text is not scored: its result has no labels and
        `empty=True`.
        """
        prepared = self.prepare(
            texts,
            labels,
            multi_label=multi_label,
            threshold=threshold,
            prompt=prompt,
            examples=examples,
            truncation=truncation,
            aggregation=aggregation,
            overlap=overlap,
        )
        return self.decode(prepared, self.score(prepared, batch_size, progress))


def _merge(
    groups: list[list[np.ndarray]], plan: RequestPlan, multi_label: bool, aggregation: Aggregation
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label scores over windows and groups, and the window that gave each label its score."""
    parts, best = [], []
    for windows in groups:
        stacked = np.stack(windows)  # (windows, labels in group)
        values = 1.0 / (1.0 + np.exp(-stacked)) if multi_label else stacked
        parts.append(values.max(axis=0) if aggregation == "max" else values.mean(axis=0))
        best.append(values.argmax(axis=0))
    merged, where = np.concatenate(parts), np.concatenate(best)
    if not multi_label:  # softmax over every label, whichever pass scored it
        shifted = np.exp(merged - merged.max())
        merged = shifted / shifted.sum()
    return merged.astype(np.float64), where


def _evidence(names: list[str], windows: np.ndarray, plan: RequestPlan) -> dict[str, Evidence]:
    out = {}
    label_group = [g for g, (a, b) in enumerate(plan.groups) for _ in range(a, b)]
    for name, window, group in zip(names, windows.tolist(), label_group, strict=True):
        start, end = plan.windows[group][window]
        chars = plan.char_spans
        char_start = chars[start][0] if chars else None
        char_end = chars[end - 1][1] if chars else None
        out[name] = Evidence(window, start, end, char_start, char_end)
    return out


def _renumber(error: inputs.InputError, request_of_text: list[int | None]) -> inputs.InputError:
    if error.field.startswith("texts[") and error.field.endswith("]"):
        inner = int(error.field[6:-1])
        original = request_of_text.index(inner)
        return inputs.InputError(f"texts[{original}]", error.problem)
    return error


def _progress(total: int, enabled: bool | None) -> Any:
    show = enabled if enabled is not None else (sys.stderr.isatty() and total >= 64)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="input", desc="classify")
