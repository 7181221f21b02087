"""Dynamic batching: the passes of all concurrent requests share one queue and one model worker.

A request arrives prepared (the engine's `prepare` ran in the app's preparing threads, so a large
request never holds the model) and becomes a `Job`. The worker thread decides only which passes run
together and when: each step it takes the oldest waiting pass and the passes nearest to it in
length among the oldest few batches' worth of the same adapter (a request may name one of the
classifier's extra LoRA adapters; a batch never mixes them), runs them with the engine's
`run_batch`, and hands the
jobs that are complete to the engine's `finish` (the logit steps for all of them at once, then
decoding). So the service gives exactly what `Classifier.classify` gives for the same call, batched
with whatever else is in flight; no scoring happens here.

A step costs the same however long the queue is: jobs wait in a deque, each with its own
unscheduled passes, and a step touches only the jobs its pool reads. A batch whose model call
fails is retried one job at a time, so only the job at fault fails; the same for `finish`. A
request whose client went away is dropped at once (the event loop posts its cancellation).
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..inference.engine import ClassifierEngine
from ..inference.prepared import Prepared
from ..inference.results import ClassificationResult
from .metrics import ServiceMetrics

logger = logging.getLogger("everylabel.serve")

# A batch is packed from at most this many batches' worth of the oldest waiting passes.
POOL_BATCHES = 8


class QueueFull(Exception):
    """The queue holds too much work to take this request; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class ServiceClosed(Exception):
    """The service is shutting down and takes no new requests."""


@dataclass(eq=False)
class Job:
    """One prepared request on its way through the worker."""

    prepared: Prepared
    texts: int
    tokens: int  # over all its passes: the work it asks of the model
    limit: int  # the most of its passes one batch may hold (the engine's batch limit)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[ClassificationResult]]
    submitted: float = field(default_factory=time.monotonic)
    logits: list[np.ndarray] = field(default_factory=list)  # per pass, once scored
    unscheduled: dict[int, None] = field(default_factory=dict)  # pass indices not yet run, in order
    remaining: int = 0  # passes not yet scored
    started: bool = False  # the model has run one of its passes
    done: bool = False  # answered, failed or dropped (worker only)

    @property
    def adapter(self) -> str | None:
        """The extra adapter its passes run with (None: the model's own weights)."""
        return self.prepared.adapter

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
    """The queue and the model worker thread. `submit` and `cancel` from the event loop; `close`
    drains and stops."""

    def __init__(
        self,
        engine: ClassifierEngine,
        metrics: ServiceMetrics,
        *,
        max_batch_tokens: int,
        max_queue_texts: int,
        max_queue_tokens: int,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.max_batch_tokens = max(max_batch_tokens, engine.max_length)
        self.max_queue_texts = max_queue_texts
        self.max_queue_tokens = max_queue_tokens
        self._inbox: queue.SimpleQueue[tuple[str, Job] | None] = queue.SimpleQueue()
        self._waiting: deque[Job] = deque()  # jobs with unscheduled passes, oldest first
        self._running: set[Job] = set()  # jobs admitted and not yet answered (worker only)
        self._queued_texts = 0  # accepted and not yet answered
        self._queued_tokens = 0
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="everylabel-model-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def submit(self, prepared: Prepared, texts: int) -> Job:
        """Queue a prepared request (call from the event loop); raises `QueueFull` or `ServiceClosed`.

        The queue is bounded both in texts and in tokens (the work waiting), so a few huge requests
        fill it as many small ones do."""
        loop = asyncio.get_running_loop()
        tokens = prepared.tokens
        with self._lock:
            if self._closing:
                raise ServiceClosed("the service is shutting down")
            over_texts = self._queued_texts + texts > self.max_queue_texts
            over_tokens = self._queued_tokens and self._queued_tokens + tokens > self.max_queue_tokens
            if over_texts or over_tokens:
                raise QueueFull(self._retry_after())
            self._queued_texts += texts
            self._queued_tokens += tokens
            self.metrics.queue_texts.set(self._queued_texts)
            limit = self.engine.batch_limit(prepared.passes)
            job = Job(prepared, texts, tokens, limit, loop, loop.create_future())
            self._inbox.put(("run", job))  # under the lock: never behind `close`'s stop mark
        return job

    def cancel(self, job: Job) -> None:
        """The job's client went away: drop what it has not run (call from the event loop)."""
        self._inbox.put(("cancel", job))

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
        return int(min(60, max(1, math.ceil(self._queued_texts / max(rate, 1.0)))))

    # -- the worker thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        stopping = False
        while not (stopping and not self._waiting):
            try:
                for message in self._arrivals(block=not self._waiting):
                    if message is None:
                        stopping = True
                    elif message[0] == "run":
                        self._admit(message[1])
                    else:
                        self._drop(message[1])
                if self._waiting:
                    self._step()
            except Exception as error:  # a fault in the scheduler itself: fail what it holds, go on
                logger.exception("model worker error")
                for job in list(self._running):
                    self._fail(job, error)
                self._waiting.clear()

    def _arrivals(self, block: bool) -> list[tuple[str, Job] | None]:
        arrived: list[tuple[str, Job] | None] = []
        if block:
            arrived.append(self._inbox.get())
        while True:
            try:
                arrived.append(self._inbox.get_nowait())
            except queue.Empty:
                return arrived

    def _admit(self, job: Job) -> None:
        count = len(job.prepared.passes)
        job.logits = [np.empty(0, dtype=np.float32)] * count
        job.remaining = count
        self._running.add(job)
        if count == 0:  # only empty texts
            self._finish([job])
            return
        job.unscheduled = dict.fromkeys(range(count))
        self._waiting.append(job)

    def _step(self) -> None:
        """Run a batch around the oldest waiting pass, then answer the jobs it completed.

        The batch holds the oldest pass and the passes of the nearest lengths among the oldest
        `POOL_BATCHES` batches' worth (within the batch size and token budget): full batches of
        similar lengths, as `classify` packs them, while requests finish in arrival order.
        """
        pool, limit, visited = self._pool()
        lengths = [job.prepared.passes[i].tokens for job, i in pool]
        items = [pool[k] for k in sorted(nearest_lengths(lengths, limit, self.max_batch_tokens))]
        for job, index in items:
            del job.unscheduled[index]
        kept = [job for job in (self._waiting.popleft() for _ in range(visited)) if job.unscheduled]
        self._waiting.extendleft(reversed(kept))
        now = time.monotonic()
        jobs = list(dict.fromkeys(job for job, _ in items))
        for job in jobs:
            if not job.started:
                job.started = True
                self.metrics.queue_seconds.observe(now - job.submitted)
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

    def _pool(self) -> tuple[list[tuple[Job, int]], int, int]:
        """The oldest waiting passes of the oldest job's adapter (at most `POOL_BATCHES` batches'
        worth, from at most as many jobs), the batch size they allow, and how many jobs were read for
        them. A batch never mixes adapters: one model call runs one adapter."""
        pool: list[tuple[Job, int]] = []
        limit = self.engine.batch_size
        visited = 0
        adapter = self._waiting[0].adapter
        for job in self._waiting:
            if len(pool) >= POOL_BATCHES * limit or visited >= POOL_BATCHES * limit:
                break
            visited += 1
            if job.adapter != adapter:
                continue
            limit = min(limit, job.limit)
            for index in job.unscheduled:
                pool.append((job, index))
                if len(pool) >= POOL_BATCHES * limit:
                    break
        return pool, limit, visited

    def _run(self, items: list[tuple[Job, int]]) -> None:
        """One model call over these passes; stores each pass's logits in its job."""
        out = self.engine.run_batch([(job.prepared, index) for job, index in items])
        self.metrics.batch_texts.observe(len(items))
        self.metrics.batch_tokens.observe(len(items) * max(job.prepared.passes[i].tokens for job, i in items))
        for (job, index), row in zip(items, out, strict=True):
            if job.done:
                continue
            job.logits[index] = row
            job.remaining -= 1

    def _finish(self, jobs: list[Job]) -> None:
        """The engine's last stage for these jobs together; a failure is retried job by job."""
        if not jobs:
            return
        try:
            results = self.engine.finish([(job.prepared, job.logits) for job in jobs])
        except Exception as error:
            if len(jobs) == 1:
                self._fail(jobs[0], error)
            else:
                for job in jobs:
                    self._finish([job])
            return
        for job, own in zip(jobs, results, strict=True):
            self._release(job)
            self.metrics.count_texts(job.texts)
            job.settle(own)

    def _fail(self, job: Job, error: BaseException) -> None:
        if job.done:
            return
        self._forget(job)
        self._release(job)
        job.settle(None, error)

    def _drop(self, job: Job) -> None:
        """A cancelled job: its waiting passes never reach the model."""
        if job.done:
            return
        job.done = True
        self._forget(job)
        self._release(job)
        self.metrics.dropped.inc(job.texts)

    def _forget(self, job: Job) -> None:
        if job.unscheduled:
            job.unscheduled = {}
            self._waiting.remove(job)

    def _release(self, job: Job) -> None:
        self._running.discard(job)
        with self._lock:
            self._queued_texts -= job.texts
            self._queued_tokens -= job.tokens
            self.metrics.queue_texts.set(self._queued_texts)


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
