"""`ClassifyBatch`: the core of batch mode, a callable class that adds everylabel's results to a
batch of rows (the batch formats of Ray Data: a `pyarrow.Table`, a `pandas.DataFrame` or a dict
of numpy arrays), and the result columns' schema.

Each instance loads the classifier once (`Classifier.from_pretrained`, the one resolver);
every batch comes back in the same kind with its columns and the result columns of
`RESULT_COLUMNS`, one value per row, as `ClassificationResult.to_dict()` has them. Ray is not
imported here: `everylabel batch --engine local` runs this class in-process, and
`everylabel.integrations.ray` hands it to Ray Data.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, cast

from ..backends import resolve_backend
from ..errors import InputError
from ..extras import require
from ..inference.classifier import Classifier
from ..inference.results import ClassificationResult
from ..prompt import Truncation

__all__ = ["RESULT_COLUMNS", "ClassifyBatch", "result_fields"]

# The result columns, in order; "evidence" and "nested" hold JSON text (null when absent).
RESULT_COLUMNS = (
    "labels",
    "scores",
    "text_tokens",
    "truncated",
    "cut_tokens",
    "windows",
    "label_groups",
    "empty",
    "evidence",
    "nested",
)


def result_fields() -> list[Any]:
    """The pyarrow fields of the result columns: `scores` is a map label -> score, in label order."""
    pa = require("pyarrow", "batch", "ClassifyBatch")
    types = {
        "labels": pa.list_(pa.string()),
        "scores": pa.map_(pa.string(), pa.float64()),
        "text_tokens": pa.int64(),
        "truncated": pa.bool_(),
        "cut_tokens": pa.int64(),
        "windows": pa.int64(),
        "label_groups": pa.int64(),
        "empty": pa.bool_(),
        "evidence": pa.string(),
        "nested": pa.string(),
    }
    return [pa.field(name, types[name]) for name in RESULT_COLUMNS]


class ClassifyBatch:
    """Classify the `text_column` of each batch against `labels`; add the result columns.

    Options as `everylabel classify` has them (`labels` a list or a hierarchy; `truncation` "warn",
    "error" or "chunk"). A null text is classified as an empty one (`empty` true, no scores).
    Truncation is not warned about: each row's `truncated` and `cut_tokens` say what was cut.
    `threads`: the classifier's intra-op threads (torch's are set for each call and put back). A
    score can move in its last bits (about 1e-7) with the thread count and with the texts batched
    beside it; the same rows in one batch with the same threads give the same bytes.
    """

    def __init__(
        self,
        model: str = "default",
        labels: Any = None,
        text_column: str = "text",
        multi_label: bool = True,
        threshold: float | None = None,
        prompt: str | None = None,
        truncation: str = "warn",
        backend: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int | None = None,
    ) -> None:
        if labels is None:
            raise InputError("labels", "ClassifyBatch needs the candidate labels (labels=[...])")
        self.labels = labels
        self.text_column = text_column
        self.multi_label = multi_label
        self.threshold = threshold
        self.prompt = prompt
        self.truncation = truncation
        self.backend = resolve_backend(model, backend, device, dtype)
        self.threads = threads
        self.classifier = Classifier.from_pretrained(
            model,
            backend=self.backend,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            max_length=max_length,
            **({"threads": threads} if self.backend == "onnx" else {}),
        )

    @property
    def runtime(self) -> dict[str, str]:
        """What classifies: the backend, its dtype, and the kind of device ("cpu", "cuda"); the same
        rows give the same scores (to about 1e-7) only on the same runtime."""
        described = self.classifier.backend.describe()
        return {**described, "device": described["device"].split(":")[0]}

    def classify(self, texts: Sequence[str]) -> list[ClassificationResult]:
        from ..inference.engine import TruncationWarning

        with warnings.catch_warnings(), _torch_threads(self.threads if self.backend == "torch" else None):
            warnings.simplefilter("ignore", TruncationWarning)
            return list(
                self.classifier.classify(
                    list(texts),
                    self.labels,
                    multi_label=self.multi_label,
                    threshold=self.threshold,
                    prompt=self.prompt,
                    truncation=cast(Truncation, self.truncation),
                    progress=False,
                )
            )

    def __call__(self, batch: Any) -> Any:
        """The batch with the result columns added: the same kind as given (see the module)."""
        return self.add_results(batch)

    def add_results(self, batch: Any) -> Any:
        """What a call does, under a name of its own: Ray Data wraps `__call__` of the instance, and
        a subclass may override it."""
        if isinstance(batch, dict):
            _check_names(list(batch), self.text_column)
            columns = result_columns(self.classify(_texts(list(batch[self.text_column]), self.text_column)))
            return {**batch, **{name: _numpy(values) for name, values in columns.items()}}
        if type(batch).__module__.split(".")[0] == "pandas":
            _check_names(list(batch.columns), self.text_column)
            column = batch[self.text_column]
            texts = column.astype(object).where(column.notna(), None).tolist()  # NaN, NA -> None
            columns = result_columns(self.classify(_texts(texts, self.text_column)))
            return batch.assign(**columns)
        pa = require("pyarrow", "batch", "ClassifyBatch")
        if not isinstance(batch, pa.Table):
            raise InputError(
                "batch", f"expected a pyarrow.Table, pandas.DataFrame or dict, got {type(batch)}"
            )
        _check_names(batch.column_names, self.text_column)
        texts = _texts(batch.column(self.text_column).to_pylist(), self.text_column)
        columns = result_columns(self.classify(texts))
        for field in result_fields():
            batch = batch.append_column(field, to_arrow(field, columns[field.name]))
        return batch


def result_columns(results: Sequence[ClassificationResult]) -> dict[str, list[Any]]:
    """One list per result column, a value per result (see `RESULT_COLUMNS`)."""
    return {
        "labels": [list(r.labels) for r in results],
        "scores": [dict(r.scores) for r in results],
        "text_tokens": [r.text_tokens for r in results],
        "truncated": [r.truncated for r in results],
        "cut_tokens": [r.cut_tokens for r in results],
        "windows": [r.windows for r in results],
        "label_groups": [r.label_groups for r in results],
        "empty": [r.empty for r in results],
        "evidence": [
            None if r.evidence is None else json.dumps({k: vars(v) for k, v in r.evidence.items()})
            for r in results
        ],
        "nested": [None if r.hierarchy is None else json.dumps(r.nested()) for r in results],
    }


def to_arrow(field: Any, values: list[Any]) -> Any:
    """A pyarrow array of `field`'s type; the `scores` dicts become map entries in label order."""
    pa = require("pyarrow", "batch", "ClassifyBatch")
    if field.name == "scores":
        values = [list(scores.items()) for scores in values]
    return pa.array(values, type=field.type)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` for the block (process-wide), then put back."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _texts(values: list[Any], column: str) -> list[str]:
    """The texts of a column; a null (None or NaN) is an empty text, any other non-string an error."""
    texts = []
    for row, value in enumerate(values):
        if isinstance(value, str):
            texts.append(value)
        elif value is None or (isinstance(value, float) and value != value):
            texts.append("")
        else:
            raise InputError(f"{column}[{row}]", f"expected a string, got {type(value).__name__}")
    return texts


def _check_names(names: list[str], text_column: str) -> None:
    if text_column not in names:
        raise InputError(
            "text_column", f"the batch has no column {text_column!r} (columns: {', '.join(names)})"
        )
    clash = [name for name in RESULT_COLUMNS if name in names]
    if clash:
        raise InputError("batch", f"column {clash[0]!r} would be overwritten by the results; rename it first")


def _numpy(values: list[Any]) -> Any:
    """A numpy array of one result column: numbers and flags typed, lists and dicts as objects."""
    import numpy as np

    if values and isinstance(values[0], (bool, int)):
        return np.asarray(values)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
