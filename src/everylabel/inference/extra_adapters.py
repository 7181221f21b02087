"""A classifier's extra LoRA adapters, as the engine sees them (torch-free).

`Classifier.load_adapter(name, folder)` registers an adapter; a call with `adapter=name` is laid
out as any other (the adapters share the model's tokenizer and input layout), run by the runtime
that holds the adapters (`AdapterRuntime`, the torch backend), and post-processed with the
adapter's own embedding blend and calibration, as `Classifier.from_pretrained(folder)` would.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from ..errors import InputError, NotSupportedError, UnknownAdapter
from .calibration import Calibration, choose_calibration
from .embedding_blend import EmbeddingBlend

MAX_LOADED_ADAPTERS = 8  # extra adapters held in memory at once, by default
# An adapter name: letters, digits and . _ / : - (a hub-style id such as "org/topics-v2" fits).
ADAPTER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/:-]{0,127}")


class AdapterRuntime(Protocol):
    """A runtime that runs extra adapters (the torch backend does; onnxruntime does not)."""

    def run_adapter(
        self,
        adapter: str,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        num_slots: int,
        label_vectors: Sequence[Any] | None,
        label_index: np.ndarray | None,
        label_block: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """`Backend.run` with adapter `adapter`'s weights."""
        ...

    def load_adapter(self, name: str, folder: str | os.PathLike[str]) -> Any:
        """Check and load an adapter folder; returns its config (what its embedding blend is)."""
        ...

    def forget_adapter(self, name: str) -> None: ...

    def loaded_adapters(self) -> list[str]:
        """The adapters held in memory now."""
        ...


@dataclass(frozen=True)
class AdapterScoring:
    """What an adapter's logits go through after the model: its own blend and calibration."""

    blend: EmbeddingBlend | None
    calibration: Calibration | None


class ExtraAdapters:
    """The registered adapters by name, their post-processing, and the runtime that runs them."""

    def __init__(self) -> None:
        self.scoring: dict[str, AdapterScoring] = {}
        self.runtime: AdapterRuntime | None = None
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.scoring)

    def check_new(self, name: Any) -> None:
        """A name to register: well formed and not taken (`InputError` on field "name")."""
        if not isinstance(name, str) or not ADAPTER_NAME.fullmatch(name):
            raise InputError(
                "name",
                f"expected an adapter name of letters, digits and . _ / : - (at most 128, not starting "
                f"with . / : -), got {name!r}",
            )
        if name in self.scoring:
            raise InputError(
                "name", f"an adapter named {name!r} is already loaded; give this one another name"
            )

    def load(
        self,
        backend: Any,
        name: str,
        folder: str | os.PathLike[str],
        calibration: bool | Calibration | None,
        blend_of: Callable[[Any], EmbeddingBlend | None],
    ) -> None:
        """Load adapter `name` from `folder` into `backend` (the torch runtime) and keep its
        post-processing: `blend_of` its config, and `calibration` as `choose_calibration` reads it."""
        if backend.kind != "torch":
            raise NotSupportedError(
                f"load_adapter: the {backend.kind} backend runs one exported model and takes no adapters; "
                "open the classifier with backend='torch'"
            )
        runtime = cast(AdapterRuntime, backend)
        with self._lock:
            self.check_new(name)
            chosen = choose_calibration(calibration, folder)
            config = runtime.load_adapter(name, folder)
            try:
                self.scoring[name] = AdapterScoring(blend_of(config), chosen)
            except BaseException:
                runtime.forget_adapter(name)
                raise
            self.runtime = runtime

    def check(self, adapter: Any) -> None:
        """A call's `adapter`: None (the model's own weights) or a registered name; else
        `UnknownAdapter` naming it and the known ones."""
        if adapter is None:
            return
        if not isinstance(adapter, str):
            raise InputError("adapter", f"expected an adapter name or null, got {adapter!r}")
        if adapter not in self.scoring:
            known = ", ".join(repr(name) for name in self.scoring) if self.scoring else "none"
            raise UnknownAdapter("adapter", f"no adapter named {adapter!r} (this classifier has: {known})")

    def run(self, adapter: str, *arguments: Any) -> np.ndarray:
        assert self.runtime is not None
        return self.runtime.run_adapter(adapter, *arguments)

    def status(self) -> dict[str, list[str]]:
        """{"registered": every name, "loaded": those held in memory now}."""
        loaded = self.runtime.loaded_adapters() if self.runtime is not None else []
        return {"registered": self.names, "loaded": loaded}
