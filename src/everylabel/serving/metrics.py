"""The service's Prometheus metrics, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

import collections
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: a short text on a GPU takes milliseconds, a queue of long ones on a CPU tens of seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TEXT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
# texts_per_second averages over this many trailing seconds.
RATE_WINDOW = 10.0


class ServiceMetrics:
    """Requests by endpoint and status, latencies, the queue, batch sizes and the text rate."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "everylabel_requests", "Requests answered, by endpoint and HTTP status", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "everylabel_request_seconds", "Time from a classify request's arrival to its answer",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "everylabel_queue_seconds", "Time a request waits before the model first runs one of its texts",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_texts = Gauge(
            "everylabel_queue_texts", "Texts accepted and not yet answered (queued or running)", registry=r
        )
        self.batch_texts = Histogram(
            "everylabel_batch_texts", "Model inputs (texts, windows, label groups) per model batch",
            buckets=TEXT_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_tokens = Histogram(
            "everylabel_batch_tokens", "Padded tokens per model batch (inputs x longest input)",
            buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.texts = Counter("everylabel_texts", "Texts classified", registry=r)
        self.dropped = Counter(
            "everylabel_texts_dropped", "Texts dropped unscored because their client disconnected", registry=r
        )
        self.rate = Gauge(
            "everylabel_texts_per_second", f"Texts classified per second over the last {RATE_WINDOW:g} s",
            registry=r,
        )  # fmt: skip
        self.rate.set_function(self.texts_per_second)
        self._finished: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def count_texts(self, count: int) -> None:
        """`count` texts were answered just now."""
        self.texts.inc(count)
        now = time.monotonic()
        with self._lock:
            self._finished.append((now, count))
            self._trim(now)

    def texts_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return sum(count for _, count in self._finished) / RATE_WINDOW

    def _trim(self, now: float) -> None:
        while self._finished and self._finished[0][0] < now - RATE_WINDOW:
            self._finished.popleft()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
