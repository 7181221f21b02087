"""Dynamic batching: the texts of all concurrent requests share one queue and one model worker.

A request becomes a `Job`. The worker thread owns the classifier: it prepares each new job with the
classifier's own `prepare` (validation and layout), pools the model inputs (passes) of every job
waiting, packs them into length-sorted token-budget batches with the classifier's batch planner,
runs the batch that holds the oldest input, and when a job's last input is scored it adds the
embedding blend (for all jobs finishing together) and decodes it with the classifier's `decode`.
Results go back to the request's event loop. So the service gives what `Classifier.classify` gives
for the same texts, batched with whatever else is in flight.

A bad request fails alone (its `InputError` becomes a 422); a batch whose model call fails is
retried one job at a time, so only the job at fault fails. Jobs whose client went away are dropped
before their inputs reach the model.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..inference.batching import pad_rows
from ..inference.engine import ClassifierEngine, Prepared
from ..inference.results import ClassificationResult
from .metrics import ServiceMetrics

logger = logging.getLogger("everylabel.serve")

# A batch is packed from at most this many batches' worth of the oldest waiting inputs.
POOL_BATCHES = 8
# The embedding blend's terms are computed ahead for up to this many waiting texts at once.
BLEND_TEXTS = 64


class QueueFull(Exception):
    """The queue holds too many texts to take this request; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class ServiceClosed(Exception):
    """The service is shutting down and takes no new requests."""


@dataclass(eq=False)
class Job:
    """One request's texts on their way through the worker."""

    arguments: dict[str, Any]  # `prepare`'s keyword arguments: texts, labels, threshold, ...
    texts: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[ClassificationResult]]
    submitted: float = field(default_factory=time.monotonic)
    prepared: Prepared | None = None
    table: dict[str, Any] | None = None  # a bi-encoder's label vectors for this job
    terms: list[np.ndarray] | None = None  # the embedding blend's terms, per request
    logits: list[np.ndarray] = field(default_factory=list)  # per pass, once scored
    remaining: int = 0  # passes not yet scored
    started: bool = False  # the model has run one of its passes
    cancelled: bool = False  # its client went away (set from the event loop)
    done: bool = False  # answered, failed or dropped (worker only)

    def cancel(self) -> None:
        self.cancelled = True

    def settle(self, results: list[ClassificationResult] | None, error: BaseException | None = None) -> None:
        """Hand the outcome to the request's event loop (from the worker thread)."""
        self.done = True

        def deliver() -> None:
            if self.future.done():  # the request was cancelled meanwhile
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(results or [])

        self.loop.call_soon_threadsafe(deliver)


class Scheduler:
    """The queue and the model worker thread. `submit` from the event loop; `close` drains and stops."""

    def __init__(
        self,
        engine: ClassifierEngine,
        metrics: ServiceMetrics,
        *,
        max_batch_tokens: int,
        max_queue_texts: int,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.max_batch_tokens = max(max_batch_tokens, engine.max_length)
        self.max_queue_texts = max_queue_texts
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._pending: list[tuple[Job, int]] = []  # (job, pass index) waiting for the model, oldest first
        self._queued = 0  # texts accepted and not yet answered
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="everylabel-model-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def queued_texts(self) -> int:
        return self._queued

    def submit(self, arguments: dict[str, Any], texts: int) -> Job:
        """Queue a request (call from the event loop); raises `QueueFull` or `ServiceClosed`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closing:
                raise ServiceClosed("the service is shutting down")
            if self._queued + texts > self.max_queue_texts:
                raise QueueFull(self._retry_after())
            self._queued += texts
            self.metrics.queue_texts.set(self._queued)
            job = Job(arguments, texts, loop, loop.create_future())
            self._inbox.put(job)  # under the lock: never behind `close`'s stop mark
        return job

    def close(self, timeout: float | None = None) -> None:
        """Take no new jobs, finish the ones queued, then stop the worker."""
        with self._lock:
            self._closing = True
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained, at the recent rate (1 to 60)."""
        rate = self.metrics.texts_per_second()
        return int(min(60, max(1, math.ceil(self._queued / max(rate, 1.0)))))

    # -- the worker thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        stopping = False
        while not (stopping and not self._pending):
            try:
                for job in self._arrivals(block=not self._pending):
                    if job is None:
                        stopping = True
                    else:
                        self._admit(job)
                self._drop_abandoned()
                if self._pending:
                    self._blend_ahead()
                    self._step()
            except Exception as error:  # a fault in the scheduler itself: fail what it holds, go on
                logger.exception("model worker error")
                for job in {job for job, _ in self._pending}:
                    self._fail(job, error)
                self._pending = []

    def _arrivals(self, block: bool) -> list[Job | None]:
        arrived: list[Job | None] = []
        if block:
            arrived.append(self._inbox.get())
        while True:
            try:
                arrived.append(self._inbox.get_nowait())
            except queue.Empty:
                return arrived

    def _admit(self, job: Job) -> None:
        if job.cancelled:
            self._drop(job)
            return
        try:
            prepared = self.engine.prepare(**job.arguments)
            job.table = self.engine.label_table(prepared)
        except Exception as error:  # InputError: the client's fault (422); anything else: 500
            self._fail(job, error)
            return
        job.prepared = prepared
        job.logits = [np.empty(0, dtype=np.float32)] * len(prepared.passes)
        job.remaining = len(prepared.passes)
        if job.remaining == 0:  # only empty texts
            self._finish([job])
        else:
            self._pending.extend((job, index) for index in range(job.remaining))

    def _drop_abandoned(self) -> None:
        if not any(job.cancelled or job.done for job, _ in self._pending):
            return
        gone = {job for job, _ in self._pending if job.cancelled and not job.done}
        self._pending = [(job, i) for job, i in self._pending if not (job.cancelled or job.done)]
        for job in gone:
            self._drop(job)

    def _step(self) -> None:
        """Run a batch around the oldest waiting input, then answer the jobs it completed.

        The batch holds the oldest input and the inputs of the nearest lengths among the oldest
        `POOL_BATCHES` batches' worth (within the batch size and token budget): full batches of
        similar lengths, as `classify` packs them, while requests finish in arrival order.
        """
        limit = self.engine.batch_limit([job.prepared.passes[i] for job, i in self._pending if job.prepared])
        pool = self._pending[: POOL_BATCHES * limit]
        lengths = [len(job.prepared.passes[i].input_ids) for job, i in pool if job.prepared is not None]
        chosen = nearest_lengths(lengths, limit, self.max_batch_tokens)
        taken = set(chosen)
        items = [self._pending[k] for k in sorted(chosen)]
        self._pending = [item for k, item in enumerate(self._pending) if k not in taken]
        now = time.monotonic()
        for job, _ in items:
            if not job.started:
                job.started = True
                self.metrics.queue_seconds.observe(now - job.submitted)
        jobs = list(dict.fromkeys(job for job, _ in items))
        try:
            self._run(items)
        except Exception as error:
            if len(jobs) == 1:
                self._fail(jobs[0], error)
            else:  # find the job at fault: run each alone
                for job in jobs:
                    try:
                        self._run([item for item in items if item[0] is job])
                    except Exception as own_error:
                        self._fail(job, own_error)
        self._finish([job for job in jobs if job.remaining == 0 and not job.done])

    def _blend_ahead(self) -> None:
        """The embedding blend's terms of the oldest waiting jobs that lack them, in one embedding
        pass over up to `BLEND_TEXTS` texts (as many as `classify` embeds at once)."""
        if self.engine.blend is None or self._pending[0][0].terms is not None:
            return
        jobs: list[Job] = []
        texts = 0
        for job in dict.fromkeys(job for job, _ in self._pending):
            if job.terms is None and job.prepared is not None:
                jobs.append(job)
                texts += len(job.prepared.requests)
                if texts >= BLEND_TEXTS:
                    break
        try:
            terms = self.engine.blend_terms([job.prepared for job in jobs if job.prepared is not None])
        except Exception:
            return  # each job then gets its own terms when it finishes, so only the one at fault fails
        for job, own in zip(jobs, terms, strict=True):
            job.terms = own

    def _run(self, items: list[tuple[Job, int]]) -> None:
        """One model call over these inputs; stores each input's logits in its job."""
        engine = self.engine
        rows = [job.prepared.passes[i] for job, i in items if job.prepared is not None]
        ids, mask = pad_rows([p.input_ids for p in rows], engine.pad_id)  # (batch, seq) each
        tables = [job.table for job in dict.fromkeys(job for job, _ in items) if job.table is not None]
        table = {k: v for t in tables for k, v in t.items()} if tables else None
        slot_labels = None
        if table is not None:
            slot_labels = [
                engine.slot_labels(job.prepared, job.prepared.passes[i])
                for job, i in items
                if job.prepared is not None
            ]
        slots = max(p.num_labels for p in rows)
        out = engine.run_rows(ids, mask, slots, table, slot_labels)  # (batch, slots)
        self.metrics.batch_texts.observe(len(rows))
        self.metrics.batch_tokens.observe(ids.size)
        for (job, index), row, item in zip(items, out, rows, strict=True):
            job.logits[index] = row[: item.num_labels]
            job.remaining -= 1

    def _finish(self, jobs: list[Job]) -> None:
        """Blend (with the terms computed ahead), calibrate, decode and answer."""
        if not jobs:
            return
        engine = self.engine
        if engine.blend is not None:
            for job in jobs:
                if job.prepared is None:
                    continue
                try:
                    terms = job.terms if job.terms is not None else engine.blend_terms([job.prepared])[0]
                    engine.apply_blend(job.prepared, job.logits, terms)
                except Exception as error:
                    self._fail(job, error)
        for job in jobs:
            if job.done or job.prepared is None:
                continue
            try:
                if engine.calibration is not None:
                    engine.apply_calibration(job.prepared, job.logits)
                results = engine.decode(job.prepared, job.logits, warn=False)
            except Exception as error:
                self._fail(job, error)
                continue
            self._release(job)
            self.metrics.count_texts(job.texts)
            job.settle(results)

    def _fail(self, job: Job, error: BaseException) -> None:
        if job.done:
            return
        self._release(job)
        job.settle(None, error)

    def _drop(self, job: Job) -> None:
        job.done = True
        self._release(job)
        self.metrics.dropped.inc(job.texts)

    def _release(self, job: Job) -> None:
        with self._lock:
            self._queued -= job.texts
            self.metrics.queue_texts.set(self._queued)


def nearest_lengths(lengths: list[int], max_size: int, max_tokens: int) -> list[int]:
    """Item 0 and the items closest to it in length, within `max_size` items and `max_tokens`
    padded tokens (items x longest). [50, 10, 48, 300, 52], 3 items -> [0, 2, 4]."""
    anchor = lengths[0]
    chosen: list[int] = []
    longest = 0
    for k in sorted(range(len(lengths)), key=lambda k: (abs(lengths[k] - anchor), k)):
        widest = max(longest, lengths[k])
        if chosen and widest * (len(chosen) + 1) > max_tokens:
            continue
        chosen.append(k)
        longest = widest
        if len(chosen) == max_size:
            break
    return chosen
