"""The backend-independent half of a classifier: texts and labels in, decisions out.

prepare (validate, lay out token ids) -> batches (length-sorted, token-budget packed) -> score
(the backend runs the model on each padded batch) -> decode (scores, windows and label groups
merged, thresholds). `Classifier` (torch) and `OnnxClassifier` (onnxruntime) share all of it and
differ only in how a batch of token ids becomes logits. Nothing here imports torch.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..prompt import InputBuilder, Pass, Request, RequestPlan, Truncation
from . import inputs, streaming
from .batching import pad_rows, plan_batches
from .calibration import Calibration
from .embedding_blend import EmbeddingBlend
from .label_order import VALID_LABEL_ORDERS, LabelOrder, label_orders
from .results import ClassificationResult, Evidence, Shortlist
from .shortlists import Retriever, shortlist_labels

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
    # label_order other than "given": per input text, how many consecutive requests score its labels
    # in different orders, and the caller's label names (results keep the caller's order).
    orders: list[int] | None = None
    label_names: list[list[str]] | None = None


class ClassifierEngine:
    """Validation, layout, batching, the embedding blend and decoding, for any backend.

    A backend sets the attributes below and implements `retriever`, `label_table` and `run_rows`.
    """

    builder: InputBuilder
    max_length: int
    batch_size: int
    max_batch_tokens: int
    pad_id: int
    blend: EmbeddingBlend | None = None
    calibration: Calibration | None = None  # applied to every logit (see `inference/calibration.py`)

    # -- what a backend provides -------------------------------------------------------------------

    def retriever(self, spec: Any = None) -> Retriever:
        """The retriever `shortlist` uses (see the backend's own documentation)."""
        raise NotImplementedError

    def label_table(self, prepared: Prepared) -> dict[str, Any] | None:
        """A bi-encoder's vectors of the call's distinct labels (label piece -> vector); None for a
        model that reads its labels in the text."""
        return None

    def values_per_slot(self) -> int | None:
        """How many values a label slot holds in a batch (bounds a bi-encoder's batch); None: no bound."""
        return None

    def run_rows(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        table: dict[str, Any] | None,
        slot_labels: list[list[str]] | None,
    ) -> np.ndarray:
        """Logits (batch, num_slots) float32 for one padded batch (ids and mask int64, (batch, seq))."""
        raise NotImplementedError

    # -- stages ----------------------------------------------------------------------------------

    def prepare(
        self,
        texts: str | Sequence[str],
        labels: Any,
        *,
        multi_label: bool = True,
        threshold: Any = None,
        prompt: str | Sequence[str | None] | None = None,
        examples: Any = None,
        truncation: Truncation = "warn",
        aggregation: Aggregation = "max",
        overlap: int | None = None,
        check_threshold_names: bool = True,
        shortlist: int | None = None,
        retriever: Any = None,
        label_order: LabelOrder = "given",
    ) -> Prepared:
        """Validate every argument and lay out all model inputs; raises `InputError` before any work.

        A threshold mapping that names a label no text has is an error (a typo, most likely);
        `check_threshold_names=False` allows it, for texts that come in parts. With `shortlist`,
        the retriever ranks each text's labels first and only the top `shortlist` are laid out.
        """
        inputs.check_choice("truncation", truncation, inputs.VALID_TRUNCATION)
        inputs.check_choice("aggregation", aggregation, inputs.VALID_AGGREGATION)
        inputs.check_choice("label_order", label_order, VALID_LABEL_ORDERS)
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
        if threshold is None:  # the model's tuned thresholds, if it was calibrated with them
            names = [[label.name for label in labels] for labels in label_sets]
            threshold = self.calibration.decision_thresholds(names) if self.calibration else 0.5
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
        variants = [label_orders(labels, label_order) for labels in label_sets]  # text -> orders
        request_of_text: list[int | None] = []
        text_of_request: list[int] = []
        requests: list[Request] = []
        for index, text in enumerate(text_list):
            if not text.strip():
                request_of_text.append(None)
                continue
            request_of_text.append(len(requests))
            count = len(variants[index])
            requests += inputs.build_requests(
                [text] * count, variants[index], [prompts[index]] * count, [shots[index]] * count
            )
            text_of_request += [index] * count
        try:
            passes, plans = self.builder.build(requests, truncation, overlap)
        except inputs.InputError as error:  # name the caller's index, not the request's
            raise _renumber(error, text_of_request) from None
        reordered = label_order != "given"
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
            [len(v) for v in variants] if reordered else None,
            [[label.name for label in labels] for labels in label_sets] if reordered else None,
        )

    def batches(self, prepared: Prepared, batch_size: int | None = None) -> list[list[int]]:
        """Pass indices grouped into length-sorted batches within the size and token budgets."""
        lengths = [len(p.input_ids) for p in prepared.passes]
        return plan_batches(lengths, self.batch_limit(prepared.passes, batch_size), self.max_batch_tokens)

    def batch_limit(self, passes: Sequence[Pass], batch_size: int | None = None) -> int:
        """The most passes one batch of these may hold: `batch_size` (default the classifier's), less
        for a bi-encoder whose label slots hold vectors (see `MAX_BATCH_LABEL_VALUES`)."""
        size = batch_size or self.batch_size
        per_slot = self.values_per_slot()
        if per_slot is not None and passes:
            most = max(p.num_labels for p in passes)
            size = max(1, min(size, MAX_BATCH_LABEL_VALUES // (most * per_slot)))
        return size

    def score(
        self,
        prepared: Prepared,
        batch_size: int | None = None,
        progress: bool | None = None,
        calibrated: bool = True,
    ) -> list[np.ndarray]:
        """Run every pass; returns each pass's logits for its own labels (blended, if the model is;
        calibrated, if it has a calibration and `calibrated`)."""
        logits: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(prepared.passes)
        batches = self.batches(prepared, batch_size)
        bar = _progress(len(prepared.passes), progress)
        table = self.label_table(prepared)
        for batch in batches:
            rows = [prepared.passes[i] for i in batch]
            ids, mask = pad_rows([p.input_ids for p in rows], self.pad_id)
            slot_labels = [self.slot_labels(prepared, p) for p in rows] if table is not None else None
            out = self.run_rows(ids, mask, max(p.num_labels for p in rows), table, slot_labels)
            for row, index, item in zip(out, batch, rows, strict=True):
                logits[index] = row[: item.num_labels]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        self.finish_logits([(prepared, logits)], calibrated)
        return logits

    def finish_logits(
        self, calls: Sequence[tuple[Prepared, list[np.ndarray]]], calibrated: bool = True
    ) -> None:
        """What follows the model, in place: the embedding blend, then the calibration."""
        if self.blend is not None:
            self.add_blend(calls)
        if calibrated and self.calibration is not None:
            for prepared, logits in calls:
                self.apply_calibration(prepared, logits)

    def apply_calibration(self, prepared: Prepared, logits: list[np.ndarray]) -> None:
        """Each pass's logits -> scale * logit + bias of its labels, in place."""
        assert self.calibration is not None
        for index, item in enumerate(prepared.passes):
            start, end = prepared.plans[item.request].groups[item.group]
            names = prepared.requests[item.request].labels[start:end]
            logits[index] = self.calibration.apply(names, logits[index])

    def add_blend(self, calls: Sequence[tuple[Prepared, list[np.ndarray]]]) -> None:
        """Add the embedding term to each pass's logits, in place, for one or more calls at once."""
        for (prepared, logits), terms in zip(calls, self.blend_terms([p for p, _ in calls]), strict=True):
            self.apply_blend(prepared, logits, terms)

    def blend_terms(self, calls: Sequence[Prepared]) -> list[list[np.ndarray]]:
        """Per call, per request, the embedding term of each of its labels (the request's order), with
        one embedding pass for all of them (the server computes many calls' terms together). A text
        is embedded once however many requests read it: a label's term does not depend on the order."""
        assert self.blend is not None
        keys: dict[tuple[str, tuple[str, ...]], int] = {}  # (text, sorted label pieces) -> unique index
        wanted: list[list[tuple[int, list[str]]]] = []  # per call, per request: (unique index, pieces)
        for prepared in calls:
            wanted.append([])
            for r in prepared.requests:
                pieces = [
                    self.builder.label_piece(n, d) for n, d in zip(r.labels, r.descriptions, strict=True)
                ]
                key = keys.setdefault((r.text, tuple(sorted(pieces))), len(keys))
                wanted[-1].append((key, pieces))
        unique = list(keys)
        terms = self.blend.terms([text for text, _ in unique], [list(labels) for _, labels in unique])
        tables = [
            dict(zip(labels, values.tolist(), strict=True))
            for (_, labels), values in zip(unique, terms, strict=True)
        ]
        return [
            [np.array([tables[key][p] for p in pieces], dtype=np.float32) for key, pieces in per_request]
            for per_request in wanted
        ]

    def apply_blend(self, prepared: Prepared, logits: list[np.ndarray], terms: list[np.ndarray]) -> None:
        """`scale * (logits + terms)` for each pass, in place (`terms`: per request, from `blend_terms`)."""
        assert self.blend is not None
        for index, item in enumerate(prepared.passes):
            start, end = prepared.plans[item.request].groups[item.group]
            logits[index] = self.blend.combine(logits[index], terms[item.request][start:end])

    def slot_labels(self, prepared: Prepared, item: Pass) -> list[str]:
        """The label strings the label encoder reads for one pass's slots."""
        request = prepared.requests[item.request]
        start, end = prepared.plans[item.request].groups[item.group]
        pieces = zip(request.labels[start:end], request.descriptions[start:end], strict=True)
        return [self.builder.label_piece(name, description) for name, description in pieces]

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
            if prepared.label_names is not None and prepared.orders is not None:
                count = prepared.orders[index]
                merged = [
                    _merge(by_request[r], prepared.plans[r], prepared.multi_label, prepared.aggregation)[0]
                    for r in range(request_index + 1, request_index + count)
                ]
                names = prepared.label_names[index]
                scores = _average_orders(
                    names,
                    [prepared.requests[request_index + v].labels for v in range(count)],
                    [scores, *merged],
                )
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
                    evidence=_evidence(request.labels, evidence, plan) if chunked else None,
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
        threshold: Any = None,
        prompt: str | Sequence[str | None] | None = None,
        examples: Any = None,
        truncation: Truncation = "warn",
        aggregation: Aggregation = "max",
        overlap: int | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        shortlist: int | None = None,
        retriever: Any = None,
        label_order: LabelOrder = "given",
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

        label_order: "given" scores the labels in the caller's order; "sorted" in one canonical
        order, so the answer is the same for any order of the same labels; "robust" averages four
        canonical orders (see `inference/label_order.py`), at up to four times the cost.
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
            label_order=label_order,
        )
        return self.decode(prepared, self.score(prepared, batch_size, progress))

    def classify_iter(
        self,
        texts: Iterable[str],
        labels: Any,
        *,
        multi_label: bool = True,
        threshold: Any = None,
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
        label_order: LabelOrder = "given",
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
                        label_order=label_order,
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


def _renumber(error: inputs.InputError, text_of_request: list[int]) -> inputs.InputError:
    if error.field.startswith("texts[") and error.field.endswith("]"):
        inner = int(error.field[6:-1])
        return inputs.InputError(f"texts[{text_of_request[inner]}]", error.problem)
    return error


def _average_orders(names: list[str], orders: list[list[str]], scores: list[np.ndarray]) -> np.ndarray:
    """The mean over label orders of each label's score, in the order of `names`."""
    total = np.zeros(len(names))
    where = {name: i for i, name in enumerate(names)}
    for order, values in zip(orders, scores, strict=True):
        total[[where[name] for name in order]] += values
    return total / len(orders)


def _progress(total: int | None, enabled: bool | None) -> Any:
    """A progress bar on stderr: when asked, or on a terminal for 64 inputs or more (or an unknown count)."""
    show = enabled if enabled is not None else (sys.stderr.isatty() and (total is None or total >= 64))
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="input", desc="classify")
