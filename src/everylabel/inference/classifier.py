"""`Classifier`: texts and candidate labels in, decisions out, in public stages.

prepare (validate, lay out token ids) -> batches (length-sorted, token-budget packed) -> run (the
model on one padded batch) -> decode (scores, windows and label groups merged, thresholds).
The CLI, the benchmarks and later the server call these same stages.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..config import GLiClassConfig
from ..errors import NumericalError
from ..loading import is_gliclass_checkpoint, load_model
from ..modeling.bi_encoder import BiEncoder
from ..modeling.model import GLiClassModel
from ..paths import MINILM_NAME
from ..prompt import DescriptionMode, InputBuilder, Pass, Request, RequestPlan, Truncation
from ..runtime import model_max_length, resolve_device, resolve_dtype
from ..tokenization import load_label_tokenizer
from . import inputs, streaming
from .batching import collate, plan_batches
from .embedding_blend import EmbeddingBlend
from .label_vectors import LABEL_VECTOR_CACHE_SIZE, LabelVectors, slot_inputs
from .results import ClassificationResult, Evidence, Shortlist
from .retrieval import LABEL_TEMPLATE, BiEncoderRetriever, EmbeddingRetriever, Retriever, shortlist_labels

__all__ = ["Classifier", "Prepared", "TruncationWarning"]

Aggregation = Literal["max", "mean"]

# Texts read ahead of the results by `classify_iter`: enough to sort by length and fill batches.
STREAM_WINDOW = 1024
# A bi-encoder batch holds at most this many label-slot values (texts x labels x the values per
# slot: a hidden-size vector, or one logit where the dot product runs as one matrix product).
MAX_BATCH_LABEL_VALUES = 2**25


class TruncationWarning(UserWarning):
    """Some texts were cut to fit the model (truncation="warn"); each result says by how much."""


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
    shortlists: list[Shortlist | None] | None = None  # per input text, with shortlist=k


class Classifier:
    """Zero-shot and few-shot classification with a GLiClass model; one encoder pass per text.

    The classifier owns the model it is given: it moves it to `device`, casts it to `dtype` and
    puts it in eval mode, in place (no copy is made, so a large model is not held twice). A caller
    who keeps using the same model object sees those changes; `Classifier.from_pretrained` loads a
    model of its own. One classifier may be called from several threads at once: the stages keep
    no per-call state on the object, and tokenisation and the label cache are locked.

    `mask_padding`: pool the text over real tokens only (True), so a text's scores never depend on
    the batch it lands in, or with the padding as the official poolers do (False). Default: as the
    checkpoint's config records it from everylabel training, else True.

    `embedding_blend`: add the sentence-embedding term of a checkpoint whose config has one (see
    `inference/embedding_blend.py`; the default model does); False scores with the model alone.

    Bi-encoders (`bi-encoder`, `bi-encoder-fused`) read label names with their label encoder
    (`label_tokenizer`, default: the one stored with the checkpoint or of `label_model_name`).
    Each distinct label is encoded once and kept in an LRU cache of `label_cache_size` labels;
    `encode_labels` gives those vectors to a caller who wants to store them.
    """

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
        mask_padding: bool | None = None,
        label_tokenizer: PreTrainedTokenizerBase | None = None,
        label_cache_size: int = LABEL_VECTOR_CACHE_SIZE,
        embedding_blend: bool = True,
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
        # without descriptions lost accuracy with them (a few-shot MiniLM model, docs/benchmarks.md).
        self.mask_padding = (
            config.pooling_mask_padding(default=True) if mask_padding is None else mask_padding
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._retrievers: dict[str, Retriever] = {}
        self.label_vectors: LabelVectors | None = None
        if config.is_bi_encoder:
            self.label_vectors = LabelVectors(
                model,
                label_tokenizer if label_tokenizer is not None else load_label_tokenizer(config),
                self.mask_padding,
                label_cache_size,
            )
        self.blend: EmbeddingBlend | None = None
        if embedding_blend and config.embedding_blend is not None:
            spec = config.embedding_blend
            retriever = self._embedding_retriever(spec["model"], spec["template"])
            self.blend = EmbeddingBlend.from_config(spec, retriever)

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
        if model.config.is_bi_encoder and "label_tokenizer" not in options:
            options["label_tokenizer"] = load_label_tokenizer(model.config, str(path))
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
        check_threshold_names: bool = True,
        shortlist: int | None = None,
        retriever: Any = None,
    ) -> Prepared:
        """Validate every argument and lay out all model inputs; raises `InputError` before any work.

        A threshold mapping that names a label no text has is an error (a typo, most likely);
        `check_threshold_names=False` allows it, for texts that come in parts. With `shortlist`,
        the retriever ranks each text's labels first and only the top `shortlist` are laid out.
        """
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
        thresholds = inputs.normalize_thresholds(threshold, label_sets, check_threshold_names)
        shortlists = None
        if retriever is not None and shortlist is None:
            raise inputs.InputError("retriever", "ranks labels for shortlist=k; give shortlist too")
        if shortlist is not None:
            if any(h is not None for _, h in label_info):
                raise inputs.InputError("shortlist", "works on a flat label list, not a hierarchy")
            if not isinstance(shortlist, int) or isinstance(shortlist, bool) or shortlist < 1:
                raise inputs.InputError("shortlist", f"expected a number of labels >= 1, got {shortlist!r}")
            ranker = self.retriever(retriever)
            label_sets, shortlists = shortlist_labels(ranker, text_list, label_sets, shortlist)
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
            shortlists,
        )

    def retriever(self, spec: Any = None) -> Retriever:
        """The retriever `shortlist` uses: `spec` as given (a `Retriever`, a bi-encoder `Classifier`,
        a bi-encoder checkpoint or a sentence-embedding backbone), else this model if it is a plain
        bi-encoder, else the packaged all-MiniLM-L6-v2. Built once per spec and kept."""
        if hasattr(spec, "rank"):
            return cast(Retriever, spec)
        if isinstance(spec, Classifier):
            return BiEncoderRetriever(spec)
        if spec is None and self.model.config.architecture_type == "bi-encoder":
            return self._retrievers.setdefault("self", BiEncoderRetriever(self))
        name = str(spec) if spec is not None else MINILM_NAME
        if name not in self._retrievers and is_gliclass_checkpoint(name):
            other = Classifier.from_pretrained(name, device=self.device)
            self._retrievers[name] = BiEncoderRetriever(other)
        return self._retrievers.get(name) or self._embedding_retriever(name, LABEL_TEMPLATE)

    def _embedding_retriever(self, name: str, template: str) -> EmbeddingRetriever:
        """One embedding backbone per (name, template), shared by shortlists and the blend."""
        key = name if template == LABEL_TEMPLATE else f"{name}\n{template}"
        if key not in self._retrievers:
            self._retrievers[key] = EmbeddingRetriever(name, device=self.device, template=template)
        return cast(EmbeddingRetriever, self._retrievers[key])

    def batches(self, prepared: Prepared, batch_size: int | None = None) -> list[list[int]]:
        """Pass indices grouped into length-sorted batches within the size and token budgets."""
        lengths = [len(p.input_ids) for p in prepared.passes]
        size = batch_size or self.batch_size
        if self.label_vectors is not None and prepared.passes:  # label slots hold vectors too
            inner = self.model.model
            per_slot = (
                1
                if isinstance(inner, BiEncoder) and inner.scores_by_matmul
                else inner.config.encoder_hidden_size
            )
            most = max(p.num_labels for p in prepared.passes)
            size = max(1, min(size, MAX_BATCH_LABEL_VALUES // (most * per_slot)))
        return plan_batches(lengths, size, self.max_batch_tokens)

    @torch.inference_mode()
    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_slots: int,
        label_embeddings: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Logits (batch, num_slots) as float32 numpy for one padded batch.

        Bi-encoders also take the label vectors (labels, hidden) and each slot's row in them
        (batch, num_slots), -1 for padding. Raises `NumericalError` when a logit is inf or nan
        (float16 overflows on some models).
        """
        extra = {}
        if label_embeddings is not None and label_index is not None:
            extra = {"label_embeddings": label_embeddings, "label_index": label_index.to(self.device)}
        out = self.model(
            input_ids.to(self.device, non_blocking=True),
            attention_mask.to(self.device, non_blocking=True),
            max_num_classes=num_slots,
            mask_padding=self.mask_padding,
            **extra,
        )
        logits = out.logits.float().cpu().numpy()
        if not np.isfinite(logits).all():
            raise NumericalError(_non_finite_message(self.dtype))
        return logits

    def score(
        self, prepared: Prepared, batch_size: int | None = None, progress: bool | None = None
    ) -> list[np.ndarray]:
        """Run every pass; returns each pass's logits for its own labels."""
        logits: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(prepared.passes)
        batches = self.batches(prepared, batch_size)
        bar = _progress(len(prepared.passes), progress)
        table = self._call_label_vectors(prepared)
        for batch in batches:
            rows = [prepared.passes[i] for i in batch]
            ids, mask = collate([p.input_ids for p in rows], self.pad_id)
            vectors, slot_rows = slot_inputs(table, [self._slot_labels(prepared, p) for p in rows])
            out = self.run(ids, mask, max(p.num_labels for p in rows), vectors, slot_rows)
            for row, index, item in zip(out, batch, rows, strict=True):
                logits[index] = row[: item.num_labels]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        if self.blend is not None:
            self._add_blend(prepared, logits)
        return logits

    def _add_blend(self, prepared: Prepared, logits: list[np.ndarray]) -> None:
        """Add the embedding term to each pass's logits, in place (one text embedding per request)."""
        assert self.blend is not None
        requests = prepared.requests
        pieces = [
            [self.builder.label_piece(n, d) for n, d in zip(r.labels, r.descriptions, strict=True)]
            for r in requests
        ]
        terms = self.blend.terms([r.text for r in requests], pieces)  # request -> (labels,)
        for index, item in enumerate(prepared.passes):
            start, end = prepared.plans[item.request].groups[item.group]
            logits[index] = self.blend.combine(logits[index], terms[item.request][start:end])

    def _slot_labels(self, prepared: Prepared, item: Pass) -> list[str]:
        """The label strings the label encoder reads for one pass's slots."""
        request = prepared.requests[item.request]
        start, end = prepared.plans[item.request].groups[item.group]
        pieces = zip(request.labels[start:end], request.descriptions[start:end], strict=True)
        return [self.builder.label_piece(name, description) for name, description in pieces]

    def _call_label_vectors(self, prepared: Prepared) -> dict[str, torch.Tensor] | None:
        """A bi-encoder's vectors of the call's distinct labels (see `LabelVectors.for_call`)."""
        if self.label_vectors is None or not prepared.requests:
            return None
        per_pass = [self._slot_labels(prepared, item) for item in prepared.passes]
        first = prepared.requests[0]
        shared = all(
            r.labels == first.labels and r.descriptions == first.descriptions for r in prepared.requests
        )
        return self.label_vectors.for_call(per_pass, shared, self.max_length)

    def encode_labels(self, labels: Any) -> np.ndarray:
        """(len(labels), hidden) float32 vectors of a bi-encoder's labels, as `classify` scores them.

        `labels` is a list of names, `Label(name, description)` items and the like (descriptions
        are read with `descriptions="label"`). The vectors are cached; give them back to another
        classifier of the same model with `store_label_embeddings`.
        """
        encoder = self._require_label_vectors("encode_labels")
        pieces = self._label_pieces(labels)
        return encoder.vectors(pieces).float().cpu().numpy()

    def store_label_embeddings(self, labels: Any, vectors: np.ndarray) -> None:
        """Put vectors from `encode_labels` into the label cache, so those labels are not encoded."""
        encoder = self._require_label_vectors("store_label_embeddings")
        pieces = self._label_pieces(labels)
        array = np.asarray(vectors)
        width = self.model.config.encoder_hidden_size
        if array.shape != (len(pieces), width):
            raise inputs.InputError("vectors", f"expected shape ({len(pieces)}, {width}), got {array.shape}")
        tensor = torch.from_numpy(array).to(self.device, self.dtype)
        encoder.store(pieces, tensor)

    def clear_label_cache(self) -> None:
        """Forget cached label vectors (needed after the model's weights change)."""
        if self.label_vectors is not None:
            self.label_vectors.cache.clear()

    def _require_label_vectors(self, name: str) -> LabelVectors:
        if self.label_vectors is None:
            raise inputs.InputError(
                name, "only bi-encoders encode labels apart from the text; this model is a uni-encoder"
            )
        return self.label_vectors

    def _label_pieces(self, labels: Any) -> list[str]:
        label_set, _ = inputs.normalize_labels(labels, 1)[0]
        return [self.builder.label_piece(label.name, label.description) for label in label_set]

    def decode(
        self, prepared: Prepared, logits: Sequence[np.ndarray], warn: bool = True
    ) -> list[ClassificationResult]:
        """Scores of every label (windows and groups merged), predictions, and what was cut.

        With `warn`, a `TruncationWarning` says how many texts were cut (each result says by how much).
        """
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
                    shortlist=prepared.shortlists[index] if prepared.shortlists else None,
                )
            )
            cut_count += plan.cut_tokens > 0
        if cut_count and warn:
            self._warn_truncation(cut_count, len(results))
        return results

    def _warn_truncation(self, cut: int, total: int) -> None:
        warnings.warn(
            f"{cut} of {total} texts were cut to fit {self.max_length} tokens; "
            "see result.cut_tokens, or use truncation='chunk'",
            TruncationWarning,
            stacklevel=4,
        )

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
        shortlist: int | None = None,
        retriever: Any = None,
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

        shortlist: for thousands of labels, first rank each text's labels with `retriever` (see
        `Classifier.retriever`), then score only the top `shortlist` with this model; each result's
        `shortlist` names them, with the retriever's scores. Single-label softmax is then over the
        shortlisted labels.
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
            shortlist=shortlist,
            retriever=retriever,
        )
        return self.decode(prepared, self.score(prepared, batch_size, progress))

    def classify_iter(
        self,
        texts: Iterable[str],
        labels: Any,
        *,
        multi_label: bool = True,
        threshold: Any = 0.5,
        prompt: Any = None,
        examples: Any = None,
        truncation: Truncation = "warn",
        aggregation: Aggregation = "max",
        overlap: int | None = None,
        batch_size: int | None = None,
        window: int = STREAM_WINDOW,
        progress: bool | None = None,
        shortlist: int | None = None,
        retriever: Any = None,
    ) -> Iterator[ClassificationResult]:
        """Classify a stream of texts (any iterable, a generator over a huge file included).

        Yields one result per text in input order, the same results as `classify`, while holding at
        most `window` texts at a time. `labels`, `prompt`, `threshold` and `examples` take what
        `classify` takes; a per-text value may also be an iterator, read alongside the texts. Each
        window is validated before it is scored, so bad input raises `InputError` (naming the
        text's index in the whole stream) after the results before its window were yielded.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise inputs.InputError("window", f"expected a number of texts >= 1, got {window!r}")
        args = streaming.StreamArguments(labels=labels, prompt=prompt, threshold=threshold, examples=examples)
        total = len(texts) if isinstance(texts, Sequence) else None
        bar = _progress(total, progress)
        source = iter(texts)
        offset = cut = 0
        try:
            while chunk := streaming.take(source, window):
                try:
                    prepared = self.prepare(
                        chunk,
                        **args.take(len(chunk), offset),
                        multi_label=multi_label,
                        truncation=truncation,
                        aggregation=aggregation,
                        overlap=overlap,
                        check_threshold_names=not args.labels_per_text,
                        shortlist=shortlist,
                        retriever=retriever,
                    )
                except inputs.InputError as error:
                    raise args.renumber(error, offset) from None
                results = self.decode(prepared, self.score(prepared, batch_size, False), warn=False)
                for result in results:
                    result.index += offset
                    cut += result.truncated
                    yield result
                offset += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            args.check_exhausted(offset)
        finally:
            if bar is not None:
                bar.close()
        if cut:
            self._warn_truncation(cut, offset)


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


def _non_finite_message(dtype: torch.dtype) -> str:
    if dtype == torch.float16:
        return (
            "the model's logits overflowed in float16 (inf or nan); load it with dtype='fp32', "
            "or 'bf16' on a GPU that supports it"
        )
    name = str(dtype).replace("torch.", "")
    return f"the model produced inf or nan logits in {name}; try dtype='fp32'"


def _renumber(error: inputs.InputError, request_of_text: list[int | None]) -> inputs.InputError:
    if error.field.startswith("texts[") and error.field.endswith("]"):
        inner = int(error.field[6:-1])
        original = request_of_text.index(inner)
        return inputs.InputError(f"texts[{original}]", error.problem)
    return error


def _progress(total: int | None, enabled: bool | None) -> Any:
    """A progress bar on stderr: when asked, or on a terminal for 64 inputs or more (or an unknown count)."""
    show = enabled if enabled is not None else (sys.stderr.isatty() and (total is None or total >= 64))
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="input", desc="classify")
