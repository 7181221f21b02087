"""The one engine behind every entry point: texts and labels in, decisions out (torch-free).

prepare (validate, lay out token ids, a bi-encoder's label vectors) -> batches (length-sorted,
token-budget packed) -> run_batch (the backend runs the model on one padded batch, whose passes may
come from several calls) -> finish (the logit steps and decoding of `postprocess.py`). `classify`,
`classify_iter`, the HTTP server's scheduler, batch mode and Ray all run these stages; the server
only decides which passes run together and when. The runtime is a `Backend` (`backend.py`): torch
or onnxruntime, swapped underneath.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import ConfigError
from ..label_tokens import slot_index
from ..padding import pad_rows
from ..prompt import DescriptionMode, Example, InputBuilder, Pass, Request, Truncation, WorkBudget
from . import inputs, streaming
from .backend import Backend
from .batching import plan_batches
from .calibration import Calibration
from .embedding_blend import EmbeddingBlend
from .example_vectors import check_examples, refit_key, refit_requests
from .extra_adapters import ExtraAdapters
from .label_order import VALID_LABEL_ORDERS, LabelOrder, label_orders
from .labels import Label, hierarchy_groups
from .postprocess import BlendStep, CalibrationStep, Call, LogitStep, decode
from .prepared import Aggregation, Prepared
from .results import ClassificationResult, Shortlist
from .shortlists import Retriever, shortlist_labels

Engine = TypeVar("Engine", bound="ClassifierEngine")

# Texts read ahead of the results by `classify_iter`: enough to sort by length and fill batches.
STREAM_WINDOW = 1024
# A bi-encoder batch holds at most this many label-slot values (texts x labels x the values per
# slot: a hidden-size vector, or one logit where the dot product runs as one matrix product).
MAX_BATCH_LABEL_VALUES = 2**25


class TruncationWarning(UserWarning):
    """Some texts were cut to fit the model (truncation="warn"); each result says by how much."""


class ClassifierEngine:
    """Validation, layout, batching, post-processing and decoding over a `Backend`.

    Safe to call from several threads at once: the stages keep no per-call state on the object;
    tokenisation, the label caches and the retrievers are locked.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        min_text_tokens: int = 64,
        descriptions: DescriptionMode = "ignore",
        embedding_blend: bool = True,
        calibration: Calibration | None = None,
    ) -> None:
        inputs.check_choice("descriptions", descriptions, ("label", "text", "ignore"))
        if not isinstance(batch_size, int) or batch_size < 1:
            raise inputs.InputError("batch_size", f"must be >= 1, got {batch_size}")
        limit = backend.window
        if max_length is not None and not 8 <= max_length <= limit:
            raise inputs.InputError("max_length", f"must be in [8, {limit}] for this model, got {max_length}")
        self.backend = backend
        self.max_length = max_length or limit
        self.batch_size = batch_size
        self.max_batch_tokens = max(max_batch_tokens or backend.default_batch_tokens, self.max_length)
        # Label descriptions reach the model only when asked ("label" slot or "text"): models trained
        # without descriptions lost accuracy with them (a few-shot MiniLM model, docs/benchmarks.md).
        self.builder = InputBuilder(
            backend.tokenizer,
            backend.layout,
            self.max_length,
            min_text_tokens=min_text_tokens,
            description_mode=descriptions,
        )
        self.use_embedding_blend = embedding_blend
        self.blend = self.blend_of(backend.layout)
        self.calibration = calibration
        self.extra_adapters = ExtraAdapters()  # see `Classifier.load_adapter`
        self._retrievers: dict[str, Retriever] = {}  # by name, built by `retriever`
        self._retriever_lock = threading.Lock()

    @classmethod
    def from_backend(cls: type[Engine], backend: Backend, **options: Any) -> Engine:
        """An instance of this class (a `Classifier`, say) over a runtime already built; `options`
        are the engine's (max_length, batch_size, ..., calibration)."""
        engine = cls.__new__(cls)
        ClassifierEngine.__init__(engine, backend, **options)
        return engine

    # -- what the backend decides ------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def pad_id(self) -> int:
        return self.backend.pad_id

    @property
    def mask_padding(self) -> bool:
        return self.backend.mask_padding

    @property
    def architecture_type(self) -> str:
        return self.backend.architecture_type

    @property
    def steps(self) -> list[LogitStep]:
        """The logit steps of `postprocess.py`, in the order they run."""
        return self.steps_for(None)

    def steps_for(self, adapter: str | None) -> list[LogitStep]:
        """The logit steps of calls with this extra adapter (None: the model's own weights)."""
        blend, calibration = self.blend, self.calibration
        if adapter is not None:
            scoring = self.extra_adapters.scoring[adapter]
            blend, calibration = scoring.blend, scoring.calibration
        out: list[LogitStep] = []
        if blend is not None:
            out.append(BlendStep(blend, self.builder.described))
        if calibration is not None:
            out.append(CalibrationStep(calibration))
        return out

    def blend_of(self, layout: Any) -> EmbeddingBlend | None:
        """The embedding blend a config (or manifest) asks for, if this classifier blends at all."""
        spec = getattr(layout, "embedding_blend", None)
        if not self.use_embedding_blend or spec is None:
            return None
        retriever = self.backend.embedding_retriever(spec["model"], spec["template"])
        if retriever is None:
            raise ConfigError(f"embedding_blend.model: {spec['model']!r} cannot run on this backend")
        return EmbeddingBlend.from_config(spec, retriever)

    def load_adapter(self, name: str, folder: str | os.PathLike[str], *, calibration: Any = True) -> None:
        """Register the everylabel LoRA adapter in `folder` (as `save_adapter` or LoRA training write
        it) under `name`; then `classify(..., adapter=name)` scores with it, giving the results of
        `Classifier.from_pretrained(folder)` (its embedding blend and, with `calibration=True`, its
        stored calibration included) with this classifier's options. Torch runtime only; see
        `inference/adapter_host.py` for what adapters fit a model and how they are held."""
        self.extra_adapters.load(self.backend, name, folder, calibration, self.blend_of)

    @property
    def adapters(self) -> list[str]:
        """The names of the extra adapters registered with `load_adapter`."""
        return self.extra_adapters.names

    def adapter_status(self) -> dict[str, list[str]]:
        """{"registered": the extra adapters' names, "loaded": those held in memory now}."""
        return self.extra_adapters.status()

    def retriever(self, spec: Any = None) -> Retriever:
        """What ranks labels for `shortlist`: `Classifier.retriever` resolves it."""
        raise NotImplementedError

    # -- prepare ---------------------------------------------------------------------------------

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
        budget: WorkBudget | None = None,
        adapter: str | None = None,
    ) -> Prepared:
        """Validate every argument and lay out all model inputs; raises `InputError` before any work.

        A threshold mapping that names a label no text has is an error (a typo, most likely);
        `check_threshold_names=False` allows it, for texts that come in parts. With `shortlist`,
        the retriever ranks each text's labels first and only the top `shortlist` are laid out.
        `budget` bounds the labels, passes and tokens of the call (`TooMuchWork` beyond them).
        `adapter` names an extra adapter to score with (`UnknownAdapter` for one not registered).
        """
        self.extra_adapters.check(adapter)
        _check_options(multi_label, truncation, aggregation, overlap, label_order, shortlist, retriever)
        text_list = inputs.normalize_texts(texts)
        count = len(text_list)
        label_info = inputs.normalize_labels(labels, count)
        label_sets = [labels_ for labels_, _ in label_info]
        hierarchies = [h for _, h in label_info]
        prompts = inputs.normalize_prompts(prompt, count)
        shots = inputs.normalize_examples(examples, count)
        shown = None  # a bi-encoder's examples refit its label vectors instead of joining its text
        if self.backend.is_bi_encoder and any(shots):
            check_examples(
                shots,
                label_sets,
                inputs.examples_per_text(examples),
                self.backend.dot_scored,
                self.architecture_type,
            )
            shown, shots = shots, [()] * count
        thresholds = self._thresholds(threshold, label_sets, check_threshold_names, adapter)
        if budget is not None:
            orders = 4 if label_order == "robust" else 1
            for index, labels_ in enumerate(label_sets):
                budget.check_labels(f"labels[{index}]", len(labels_) * (1 if shortlist else orders))
        shortlists: list[Shortlist | None] | None = None
        if shortlist is not None:
            if any(h is not None for h in hierarchies):
                raise inputs.InputError("shortlist", "works on a flat label list, not a hierarchy")
            label_sets, shortlists = shortlist_labels(
                self.retriever(retriever), text_list, label_sets, shortlist
            )
        variants = [label_orders(labels_, label_order) for labels_ in label_sets]  # text -> orders
        requests, request_of_text, text_of_request = _requests(text_list, variants, prompts, shots)
        try:
            passes, plans = self.builder.build(requests, truncation, overlap, budget)
        except inputs.InputError as error:  # name the caller's index, not the request's
            raise _renumber(error, text_of_request) from None
        reordered = label_order != "given"
        prepared = Prepared(
            requests=requests,
            plans=plans,
            passes=passes,
            request_of_text=request_of_text,
            thresholds=thresholds,
            hierarchies=hierarchies,
            multi_label=multi_label,
            aggregation=aggregation,
            truncation=truncation,
            shortlists=shortlists,
            orders=[len(v) for v in variants] if reordered else None,
            label_names=[[label.name for label in labels_] for labels_ in label_sets] if reordered else None,
            choice_groups=None if multi_label else _choice_groups(hierarchies),
            adapter=adapter,
        )
        prepared.label_table = self._label_table(prepared)
        if shown is not None:
            requests_shown = [shown[index] for index in text_of_request]
            prepared.label_fits = self._refit_labels(prepared, requests_shown, budget)
        return prepared

    def _refit_labels(
        self, prepared: Prepared, shown: list[tuple[Example, ...]], budget: WorkBudget | None
    ) -> list[int | None]:
        """Each request's label vectors refit to its examples, added to the call's label table
        (`example_vectors.py`); per request, the key of its refit or None."""
        assert prepared.label_table is not None
        requests = prepared.requests
        pieces = [self.request_pieces(r) for r in requests]
        if budget is not None:
            refits = {refit_key(e, p, r.prompt) for r, e, p in zip(requests, shown, pieces, strict=True) if e}
            budget.check_refits(len(refits))
        pairs = zip(requests, shown, strict=True)
        strings = list(dict.fromkeys((e.text, r.prompt) for r, examples in pairs for e in examples))
        texts = self.scaled_text_vectors(strings, prepared, budget)
        return refit_requests(
            shown,
            [r.labels for r in requests],
            pieces,
            [r.prompt for r in requests],
            prepared.label_table,
            texts,
            self.backend.vectors_array,
        )

    def scaled_text_vectors(
        self, strings: list[tuple[str, str]], prepared: Prepared, budget: WorkBudget | None
    ) -> dict[tuple[str, str], np.ndarray]:
        """(text, prompt) -> the text's vector times the logit scale (width,), as the model reads the
        text with that prompt: its logits against the unit vectors of the label space. A text over
        the window is cut (an error with truncation="error"), and a warning says how many were."""
        mode: Truncation = "error" if prepared.truncation == "error" else "warn"
        requests = [Request(text, ["example"], [None], prompt) for text, prompt in strings]
        try:
            passes, plans = self.builder.build(requests, mode)
        except inputs.InputError as error:  # the example's text, not texts[i]
            field = error.field
            shown = strings[int(field[6:-1])][0] if field.startswith("texts[") else ""
            raise type(error)("examples", f"the example {shown[:40]!r}: {error.problem}") from None
        if budget is not None:
            budget.check(len(prepared.passes) + len(passes), prepared.tokens + sum(p.tokens for p in passes))
        width = self.backend.label_width
        basis = list(np.eye(width, dtype=np.float32))  # (width,) each
        out: dict[tuple[str, str], np.ndarray] = {}
        lengths = [p.tokens for p in passes]
        for batch in plan_batches(lengths, self.batch_limit(passes), self.max_batch_tokens):
            ids, mask = pad_rows([passes[i].input_ids for i in batch], self.pad_id)  # (batch, seq) each
            index = np.tile(np.arange(width, dtype=np.int64), (len(batch), 1))  # (batch, width)
            rows = self._run_model(prepared.adapter, ids, mask, width, basis, index, None)  # (batch, width)
            for i, row in zip(batch, rows, strict=True):
                out[strings[passes[i].request]] = row
        cut = sum(plan.cut_tokens > 0 for plan in plans)
        if cut:
            warnings.warn(
                f"{cut} of {len(plans)} examples were cut to fit {self.max_length} tokens",
                TruncationWarning,
                stacklevel=4,
            )
        return out

    def _thresholds(
        self, threshold: Any, label_sets: list[list[Label]], check_names: bool, adapter: str | None
    ) -> list[dict[str, float]]:
        if threshold is None:  # the model's tuned thresholds, if it was calibrated with them
            names = [[label.name for label in labels] for labels in label_sets]
            own = self.calibration if adapter is None else self.extra_adapters.scoring[adapter].calibration
            threshold = own.decision_thresholds(names) if own else 0.5
        return inputs.normalize_thresholds(threshold, label_sets, check_names)

    def _label_table(self, prepared: Prepared) -> dict[str, Any] | None:
        """A bi-encoder's vectors of the call's distinct labels; None for a model that reads its labels
        in the text."""
        if not self.backend.is_bi_encoder or not prepared.requests:
            return None
        per_pass = [self.slot_labels(prepared, item) for item in prepared.passes]
        first = prepared.requests[0]
        shared = all(
            r.labels == first.labels and r.descriptions == first.descriptions for r in prepared.requests
        )
        return self.backend.label_table(per_pass, shared, self.max_length)

    def slot_labels(self, prepared: Prepared, item: Pass) -> list[str]:
        """The label strings the label encoder reads for one pass's slots."""
        start, end = prepared.plans[item.request].groups[item.group]
        return self.request_pieces(prepared.requests[item.request], start, end)

    def request_pieces(self, request: Request, start: int = 0, end: int | None = None) -> list[str]:
        """The label strings the label encoder reads for a request's labels [start:end]."""
        pieces = zip(request.labels[start:end], request.descriptions[start:end], strict=True)
        return [self.builder.label_piece(name, description) for name, description in pieces]

    def slot_keys(self, prepared: Prepared, item: Pass) -> list[Any]:
        """Where the call's label table holds one pass's slot vectors: the label strings, or with
        the request's examples (label string, refit key)."""
        pieces = self.slot_labels(prepared, item)
        fit = prepared.label_fits[item.request] if prepared.label_fits is not None else None
        return pieces if fit is None else [(piece, fit) for piece in pieces]

    # -- run ----------------------------------------------------------------------------------------

    def batch_limit(self, passes: Sequence[Pass], batch_size: int | None = None) -> int:
        """The most passes one batch of these may hold: `batch_size` (default the classifier's), less
        for a bi-encoder whose label slots hold vectors (see `MAX_BATCH_LABEL_VALUES`)."""
        size = batch_size or self.batch_size
        per_slot = self.backend.values_per_slot()
        if per_slot is not None and passes:
            most = max(p.num_labels for p in passes)
            size = max(1, min(size, MAX_BATCH_LABEL_VALUES // (most * per_slot)))
        return size

    def batches(self, prepared: Prepared, batch_size: int | None = None) -> list[list[int]]:
        """Pass indices grouped into length-sorted batches within the size and token budgets."""
        lengths = [p.tokens for p in prepared.passes]
        return plan_batches(lengths, self.batch_limit(prepared.passes, batch_size), self.max_batch_tokens)

    def run_batch(self, rows: Sequence[tuple[Prepared, int]]) -> list[np.ndarray]:
        """One model call over these passes (a call and a pass index each; calls may differ, but all
        name the same adapter): each pass's logits for its own labels, float32, before any logit step."""
        adapter = rows[0][0].adapter
        if any(prepared.adapter != adapter for prepared, _ in rows):
            raise ValueError("run_batch: one batch runs one adapter; these passes name several")
        passes = [prepared.passes[index] for prepared, index in rows]
        ids, mask = pad_rows([p.input_ids for p in passes], self.pad_id)  # (batch, seq) each
        vectors: list[Any] | None = None
        index = None
        if any(prepared.label_table is not None for prepared, _ in rows):
            calls = list(dict.fromkeys(prepared for prepared, _ in rows))
            position = {prepared: k for k, prepared in enumerate(calls)}
            keys = [
                [(position[prepared], key) for key in self.slot_keys(prepared, prepared.passes[i])]
                for prepared, i in rows
            ]  # a label's vector can differ between calls (official padding): keyed by call too
            distinct, index = slot_index(keys)
            vectors = [calls[call].label_table[key] for call, key in distinct]  # type: ignore[index]
        label_block = None
        if passes[0].label_ids is not None:  # encoder-decoder: the label blocks, (batch, label_seq) each
            label_block = pad_rows([p.label_ids or [] for p in passes], self.pad_id)
        slots = max(p.num_labels for p in passes)
        out = self._run_model(adapter, ids, mask, slots, vectors, index, label_block)  # (batch, slots)
        return [row[: item.num_labels] for row, item in zip(out, passes, strict=True)]

    def _run_model(self, adapter: str | None, *arguments: Any) -> np.ndarray:
        """`Backend.run(*arguments)` with the model's own weights (adapter None) or an extra adapter's."""
        if adapter is None:
            return self.backend.run(*arguments)
        return self.extra_adapters.run(adapter, *arguments)

    def transform(self, calls: Sequence[Call], calibrated: bool = True) -> None:
        """The logit steps (blend, calibration), in place, for one or more calls at once (the calls of
        each adapter together, with that adapter's steps)."""
        by_adapter: dict[str | None, list[Call]] = {}
        for call in calls:
            by_adapter.setdefault(call[0].adapter, []).append(call)
        for adapter, group in by_adapter.items():
            for step in self.steps_for(adapter):
                if calibrated or not isinstance(step, CalibrationStep):
                    step(group)

    def score(
        self,
        prepared: Prepared,
        batch_size: int | None = None,
        progress: bool | None = None,
        calibrated: bool = True,
    ) -> list[np.ndarray]:
        """Run every pass; returns each pass's logits for its own labels after the logit steps (the
        calibration only if `calibrated`)."""
        logits: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(prepared.passes)
        bar = _progress(len(prepared.passes), progress)
        for batch in self.batches(prepared, batch_size):
            for index, row in zip(batch, self.run_batch([(prepared, i) for i in batch]), strict=True):
                logits[index] = row
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        self.transform([(prepared, logits)], calibrated)
        return logits

    # -- decode ----------------------------------------------------------------------------------

    def decode(
        self, prepared: Prepared, logits: Sequence[np.ndarray], warn: bool = True
    ) -> list[ClassificationResult]:
        """Scores of every label (windows and groups merged), predictions, and what was cut.

        With `warn`, a `TruncationWarning` says how many texts were cut (each result says by how much).
        """
        results = decode(prepared, logits)
        cut = sum(result.truncated for result in results)
        if cut and warn:
            self._warn_truncation(cut, len(results))
        return results

    def finish(self, calls: Sequence[Call]) -> list[list[ClassificationResult]]:
        """The logit steps for all these calls at once (one embedding pass for the blend), then each
        call decoded: the server's last stage for the calls that complete together."""
        self.transform(calls)
        return [decode(prepared, logits) for prepared, logits in calls]

    def _warn_truncation(self, cut: int, total: int) -> None:
        warnings.warn(
            f"{cut} of {total} texts were cut to fit {self.max_length} tokens; "
            "see result.cut_tokens, or use truncation='chunk'",
            TruncationWarning,
            stacklevel=4,
        )

    # -- the user-facing calls ------------------------------------------------------------------------

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
        adapter: str | None = None,
    ) -> list[ClassificationResult]:
        """Classify `texts` against `labels`; one result per text, in input order.

        labels: one list for all texts, one list per text, or a hierarchy (nested dicts/lists,
        flattened to `parent.child`); an item is a name, `Label(name, description)`,
        `(name, description)` or `{"name", "description"}`. multi_label: sigmoid scores, every
        label >= its threshold (a number, one per text, or a dict label -> number); otherwise
        softmax over the labels and the top one (with a hierarchy: the top one of each top-level
        group). truncation: "warn" cuts the text (never the labels) and reports it, "error" raises,
        "chunk" scores overlapping windows (`overlap` tokens, at most half a window) and aggregates
        them ("max" or "mean"). An empty text is not scored: its result has no labels and
        `empty=True`.

        shortlist: for thousands of labels, first rank each text's labels with `retriever` (see
        `retriever`), then score only the top `shortlist` with this model; each result's
        `shortlist` names them, with the retriever's scores. Single-label softmax is then over the
        shortlisted labels.

        label_order: "given" scores the labels in the caller's order; "sorted" in one canonical
        order, so the answer is the same for any order of the same labels; "robust" averages four
        canonical orders (see `inference/label_order.py`), at up to four times the cost.

        adapter: score with an extra LoRA adapter registered by `load_adapter` (the results of
        `Classifier.from_pretrained` of its folder, with this classifier's options); None: the
        model's own weights.
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
            adapter=adapter,
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
        total: int | None = None,
        adapter: str | None = None,
    ) -> Iterator[ClassificationResult]:
        """Classify a stream of texts (any iterable, a generator over a huge file included).

        Yields one result per text in input order, the same results as `classify`, while holding at
        most `window` texts at a time. `labels`, `prompt`, `threshold` and `examples` take what
        `classify` takes; a per-text value may also be an iterator, read alongside the texts. Each
        window is validated before it is scored, so bad input raises `InputError` (naming the
        text's index in the whole stream) after the results before its window were yielded.
        `total`, the number of texts an iterator will give, lets the progress bar show how far along
        the stream is and the time left (a sequence's own length is used instead).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise inputs.InputError("window", f"expected a number of texts >= 1, got {window!r}")
        if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
            raise inputs.InputError("total", f"expected a number of texts >= 0, got {total!r}")
        args = streaming.StreamArguments(labels=labels, prompt=prompt, threshold=threshold, examples=examples)
        total = len(texts) if isinstance(texts, Sequence) else total
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
                        adapter=adapter,
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


def _check_options(
    multi_label: Any,
    truncation: Any,
    aggregation: Any,
    overlap: Any,
    label_order: Any,
    shortlist: Any,
    retriever: Any,
) -> None:
    """The call's scalar options, each named when bad."""
    inputs.check_choice("truncation", truncation, inputs.VALID_TRUNCATION)
    inputs.check_choice("aggregation", aggregation, inputs.VALID_AGGREGATION)
    inputs.check_choice("label_order", label_order, VALID_LABEL_ORDERS)
    if not isinstance(multi_label, bool):
        raise inputs.InputError("multi_label", f"expected True or False, got {multi_label!r}")
    if overlap is not None and (not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0):
        raise inputs.InputError("overlap", f"expected a number of tokens >= 0, got {overlap!r}")
    if retriever is not None and shortlist is None:
        raise inputs.InputError("retriever", "ranks labels for shortlist=k; give shortlist too")
    if shortlist is not None and (
        not isinstance(shortlist, int) or isinstance(shortlist, bool) or shortlist < 1
    ):
        raise inputs.InputError("shortlist", f"expected a number of labels >= 1, got {shortlist!r}")


def _requests(
    texts: list[str], variants: list[list[list[Label]]], prompts: list[str], shots: list[Any]
) -> tuple[list[Request], list[int | None], list[int]]:
    """One request per text and label order (none for an empty text); each text's first request,
    and each request's text."""
    requests: list[Request] = []
    request_of_text: list[int | None] = []
    text_of_request: list[int] = []
    for index, text in enumerate(texts):
        if not text.strip():
            request_of_text.append(None)
            continue
        request_of_text.append(len(requests))
        count = len(variants[index])
        requests += inputs.build_requests(
            [text] * count, variants[index], [prompts[index]] * count, [shots[index]] * count
        )
        text_of_request += [index] * count
    return requests, request_of_text, text_of_request


def _choice_groups(hierarchies: list[Any]) -> list[dict[str, int] | None]:
    """Each text's label -> top-level group; a hierarchy shared by every text is read once."""
    groups: dict[int, dict[str, int] | None] = {}
    for hierarchy in hierarchies:
        if id(hierarchy) not in groups:
            groups[id(hierarchy)] = hierarchy_groups(hierarchy)
    return [groups[id(hierarchy)] for hierarchy in hierarchies]


def _renumber(error: inputs.InputError, text_of_request: list[int]) -> inputs.InputError:
    if error.field.startswith("texts[") and error.field.endswith("]"):
        inner = int(error.field[6:-1])
        return type(error)(f"texts[{text_of_request[inner]}]", error.problem)
    return error


def shows_progress(total: int | None, enabled: bool | None) -> bool:
    """Whether a run shows a progress bar: when asked, or on a terminal for 64 inputs or more (or an
    unknown count)."""
    return enabled if enabled is not None else (sys.stderr.isatty() and (total is None or total >= 64))


def _progress(total: int | None, enabled: bool | None) -> Any:
    """A progress bar on stderr when `shows_progress`, with the time left when `total` is known."""
    if not shows_progress(total, enabled):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="input", desc="classify")
