"""Streaming sessions over a decoder-kv model: a growing document per session id, its decoder KV cache
kept between chunks, classified when the session's strategy fires.

Each chunk runs through the decoder once, on top of the session's cache (positions continuing), and
extends it; classifying runs only the label section `<<SEP>> l1 <<LABEL>> ... <<SEP>>` on top of the
cache (or of its last `window` tokens) and leaves the cache as it was. So a stream of n chunks costs
one decoder pass over the document plus one short pass per firing, where re-classifying the whole
document at every chunk costs n passes over a growing text.

Bounds: `max_cached_tokens` per session (older tokens leave its cache, as the official
`max_cache_len`); `max_resident` sessions hold a cache on the model's device: beyond it the least
recently used session's cache moves to the CPU (on an accelerator; up to `max_offloaded` there),
and beyond that it is dropped. A session without a cache replays its chunks when it is fed again,
so its scores are the same as if it had never left.
`max_sessions` bounds the sessions open at once (a new one beyond it is refused: close some).
Thread-safe: one lock serialises the sessions' model calls.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from ..errors import InputError, NotSupportedError, TooMuchWork
from ..inference import inputs
from ..inference.postprocess import decide, sigmoid, softmax
from ..inference.results import ClassificationResult
from ..modeling.decoder_kv import DecoderKV
from ..prompt import example_segment
from .strategies import Strategy, parse_strategy


@dataclass
class Session:
    """One document: its chunks' token ids (to replay), its cache and the decoder's states of it."""

    strategy: Strategy
    prefix: tuple[str, tuple[Any, ...]]  # the prompt and examples it was opened with
    chunks: list[np.ndarray] = field(default_factory=list)  # token ids per fed chunk, prefix in the first
    cache: DynamicCache | None = None  # None: not resident (never built, or dropped)
    states: torch.Tensor | None = None  # (cached, dim) decoder states of the cached tokens
    cached: int = 0  # tokens in the cache
    position: int = 0  # the next token's position: every token fed so far

    def drop(self) -> None:
        self.cache, self.states, self.cached, self.position = None, None, 0, 0


class StreamingSessions:
    """Streaming classification sessions of one decoder-kv `Classifier` (torch backend).

    `feed(session_id, chunk, labels)` opens the session on first use (with `strategy`, `prompt`,
    `examples`), caches the chunk and returns a `ClassificationResult` when the strategy fires,
    else None; `close(session_id)` forgets it.
    """

    def __init__(
        self,
        classifier: Any,
        *,
        strategy: Any = "every_chunk",
        max_cached_tokens: int | None = None,
        max_resident: int = 64,
        max_offloaded: int = 256,
        max_sessions: int = 10_000,
    ) -> None:
        backend = classifier.backend
        model = getattr(getattr(backend, "model", None), "model", None)
        if not isinstance(model, DecoderKV):
            raise NotSupportedError(
                f"streaming sessions need a decoder-kv model on the torch backend; this is a "
                f"{classifier.architecture_type} on {backend.kind}"
            )
        if model.bidirectional:
            raise NotSupportedError(
                "streaming sessions: this backbone (EmbeddingGemma 2) attends both ways and keeps no cache; "
                "classify the whole text instead"
            )
        layer_types = getattr(model.decoder_model.config, "layer_types", None) or []
        if "linear_attention" in layer_types:
            raise NotSupportedError(
                "streaming sessions: this backbone mixes linear-attention layers, whose states cannot be "
                "windowed or replayed from a cache; classify the whole text instead"
            )
        bounds = (
            ("max_resident", max_resident),
            ("max_offloaded", max_offloaded),
            ("max_sessions", max_sessions),
        )
        for name, value in bounds:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(name, f"expected a whole number >= 1, got {value!r}")
        if max_cached_tokens is not None and (
            not isinstance(max_cached_tokens, int) or max_cached_tokens < 1
        ):
            raise InputError(
                "max_cached_tokens", f"expected a whole number >= 1 or None, got {max_cached_tokens!r}"
            )
        self.classifier, self.model = classifier, model
        self.builder = classifier.builder
        self.device = backend.device
        self.default_strategy = parse_strategy(strategy)
        self.max_cached_tokens, self.max_sessions = max_cached_tokens, max_sessions
        self.max_resident, self.max_offloaded = max_resident, max_offloaded
        self.sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    # -- the public calls ---------------------------------------------------------------------------

    def feed(
        self,
        session_id: str,
        chunk: str,
        labels: Any,
        *,
        strategy: Any = None,
        prompt: str | None = None,
        examples: Any = None,
        threshold: Any = 0.5,
        multi_label: bool = True,
    ) -> ClassificationResult | None:
        """Append `chunk` to the session's document; its result if the strategy fires, else None.

        `strategy`, `prompt` and `examples` are the session's from its first feed (a later feed may
        repeat them, not change them: close the session first)."""
        if not isinstance(session_id, str) or not session_id:
            raise InputError("session_id", f"expected a non-empty string, got {session_id!r}")
        if not isinstance(chunk, str):
            raise InputError("chunk", f"expected a string, got {type(chunk).__name__}")
        ((label_set, hierarchy),) = inputs.normalize_labels(labels, 1)
        if hierarchy is not None:
            raise InputError("labels", "streaming sessions take a flat list of labels, not a hierarchy")
        if not label_set:
            raise InputError("labels", "at least one label is required")
        limits = inputs.normalize_thresholds(threshold, [label_set])[0]
        prefix = (prompt or "", inputs.normalize_examples(examples, 1)[0])
        with self._lock:
            session = self._session(session_id, strategy, prefix)
            self.sessions.move_to_end(session_id)
            self._make_resident(session_id, session)
            added = self._append(session, chunk) if chunk else 0
            if not (chunk and added > 0 and session.strategy.fires(added, session.cached, chunk)):
                return None
            names = [label.name for label in label_set]
            pieces = [self.builder.label_piece(label.name, label.description) for label in label_set]
            logits = self._classify(session, self.builder.label_ids(pieces))
        return _result(names, logits, limits, multi_label, session.position)

    def close(self, session_id: str) -> bool:
        """Forget the session; False if there was none."""
        with self._lock:
            return self.sessions.pop(session_id, None) is not None

    def describe(self) -> dict[str, Any]:
        """Open sessions, how many hold a cache, and the tokens cached (for /info and metrics)."""
        with self._lock:
            resident = [s for s in self.sessions.values() if s.cache is not None]
            return {
                "sessions": len(self.sessions),
                "resident": len(resident),
                "cached_tokens": sum(s.cached for s in resident),
            }

    # -- sessions -----------------------------------------------------------------------------------

    def _session(self, session_id: str, strategy: Any, prefix: tuple[str, tuple[Any, ...]]) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            if len(self.sessions) >= self.max_sessions:
                raise TooMuchWork(
                    "session_id", f"{self.max_sessions} sessions are open; close one before opening another"
                )
            chosen = parse_strategy(strategy) if strategy is not None else self.default_strategy
            session = Session(chosen.fresh(), prefix)
            self.sessions[session_id] = session
        elif session.chunks and (prefix[0] or prefix[1]) and prefix != session.prefix:
            raise InputError(
                "prompt", f"session {session_id!r} was opened with another prompt or examples; close it first"
            )
        return session

    def _make_resident(self, session_id: str, session: Session) -> None:
        """Rebuild a dropped session's cache by replaying its chunks; keep at most `max_resident`
        caches on the device (the least recently used move to the CPU, where at most `max_offloaded`
        stay; on a CPU device they are dropped)."""
        if session.cache is None and session.chunks:
            chunks, session.chunks = session.chunks, []
            for ids in chunks:
                self._extend(session, ids)
        elif session.states is not None and session.states.device != self.device:
            _move(session, self.device)
        others = [s for s in self.sessions.values() if s.states is not None and s is not session]
        on_device = [s for s in others if s.states is not None and s.states.device == self.device]
        for oldest in on_device[: max(0, len(on_device) + 1 - self.max_resident)]:
            if self.device.type == "cpu":
                oldest.drop()
            else:
                _move(oldest, torch.device("cpu"))
        if self.device.type != "cpu":
            offloaded = [s for s in others if s.states is not None and s.states.device.type == "cpu"]
            for oldest in offloaded[: max(0, len(offloaded) - self.max_offloaded)]:
                oldest.drop()

    # -- model work ---------------------------------------------------------------------------------

    def _append(self, session: Session, chunk: str) -> int:
        """Tokenise the chunk (after the prompt and examples, for the first) and cache it."""
        if session.chunks:
            ids = self.builder.encode([chunk])[0][0]
        else:
            prompt, examples = session.prefix
            block: list[int] = []
            for example in examples:
                block += [self.builder.example_id, *self.builder.encode([example_segment(example)])[0][0]]
            if block:
                block.append(self.builder.sep_id)
            if examples or not prompt:
                ids = self.builder.encode([prompt])[0][0] + block + self.builder.encode([chunk])[0][0]
            else:  # "prompt text" as one string, as the official first chunk is tokenised
                ids = self.builder.encode([prompt + chunk])[0][0]
        if not ids:
            return 0
        self._extend(session, np.asarray(ids, dtype=np.int64))
        return len(ids)

    @torch.inference_mode()
    def _extend(self, session: Session, ids: np.ndarray) -> None:
        """Run the chunk on top of the cache, keep its states, then cut the cache to `max_cached_tokens`."""
        session.chunks.append(ids)
        new = torch.from_numpy(ids).to(self.device).unsqueeze(0)  # (1, chunk)
        if session.cache is None:
            session.cache = DynamicCache()
        out = self.model.decoder_model(
            input_ids=new,
            attention_mask=torch.ones(1, session.cached + new.shape[1], dtype=torch.long, device=self.device),
            position_ids=torch.arange(session.position, session.position + new.shape[1], device=self.device)[
                None
            ],
            past_key_values=session.cache,
            use_cache=True,
            return_dict=True,
        )
        states = out.last_hidden_state[0]  # (chunk, dim)
        session.states = states if session.states is None else torch.cat([session.states, states])
        session.cached += new.shape[1]
        session.position += new.shape[1]
        if self.max_cached_tokens is not None and session.cached > self.max_cached_tokens:
            session.cache = _last_tokens(session.cache, self.max_cached_tokens)
            session.states = session.states[-self.max_cached_tokens :]
            session.cached = self.max_cached_tokens

    @torch.inference_mode()
    def _classify(self, session: Session, label_ids: list[list[int]]) -> np.ndarray:
        """Logits of the labels over the session's cache (or its strategy's window of it)."""
        assert session.cache is not None and session.states is not None
        label_id, sep_id = self.builder.label_id, self.builder.sep_id
        section = [sep_id, *(t for ids in label_ids for t in (*ids, label_id)), sep_id]
        window = session.strategy.window()
        cached = session.cached if window is None else min(window, session.cached)
        cache = session.cache if cached == session.cached else _last_tokens(session.cache, cached)
        ids = torch.tensor([section], device=self.device)  # (1, section)
        try:
            out = self.model.decoder_model(
                input_ids=ids,
                attention_mask=torch.ones(1, cached + ids.shape[1], dtype=torch.long, device=self.device),
                position_ids=torch.arange(
                    session.position, session.position + ids.shape[1], device=self.device
                )[None],
                past_key_values=cache,
                use_cache=False,
                return_dict=True,
            )
        finally:
            if cache is session.cache:
                cache.crop(-ids.shape[1])  # drop the labels' keys: they are not part of the document
        steps, halt = self.model.steps()
        text = None
        if self.model.scorer.read_text and steps > 1:
            states = session.states[-cached:].unsqueeze(0)  # (1, cached, dim)
            text = (states, torch.ones(1, cached, dtype=torch.bool, device=self.device))
        mask = torch.ones_like(ids)
        result = self.model.scorer(out.last_hidden_state, ids, mask, len(label_ids), steps, halt, text=text)
        logits = result.logits[-1][0].float().cpu().numpy()
        if not np.isfinite(logits).all():
            from ..errors import NumericalError

            raise NumericalError("the model produced inf or nan logits")
        return logits


def _last_tokens(cache: DynamicCache, count: int) -> DynamicCache:
    """A new cache of the last `count` tokens of each layer of `cache` (positions kept as they were)."""
    kept = DynamicCache()
    layers: list[Any] = list(cache.layers)  # attention layers only (linear ones are refused)
    for index, layer in enumerate(layers):
        kept.update(layer.keys[:, :, -count:, :].clone(), layer.values[:, :, -count:, :].clone(), index)
    return kept


def _move(session: Session, device: torch.device) -> None:
    assert session.cache is not None and session.states is not None
    layers: list[Any] = list(session.cache.layers)
    for layer in layers:
        layer.keys, layer.values = layer.keys.to(device), layer.values.to(device)
    session.states = session.states.to(device)


def _result(
    names: list[str], logits: np.ndarray, limits: dict[str, float], multi_label: bool, tokens: int
) -> ClassificationResult:
    values = logits.astype(np.float64)
    scores = sigmoid(values) if multi_label else softmax(values)
    predicted = decide(names, scores, limits, multi_label)
    return ClassificationResult(
        index=0,
        labels=predicted,
        scores={n: float(s) for n, s in zip(names, scores, strict=True)},
        text_tokens=tokens,
    )
