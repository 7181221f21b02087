"""The HTTP service: `POST /v1/classify`, `GET /health`, `/info`, `/metrics`, and OpenAPI docs at `/docs`.

`create_app(load, settings)` returns a FastAPI app that loads its classifier in a background
thread when it starts (so `/health` answers 503 until the model is loaded and a warm-up pass ran)
and serves every request through one `Scheduler` (dynamic batching, one model worker). Status
codes: 200 results; 413 too many texts or too large a body; 422 bad input, with the library's
field-and-item message; 429 a full queue, with Retry-After; 503 loading or shutting down; 500 an
internal error, for that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import InputError
from ..inference.engine import ClassifierEngine
from .metrics import ServiceMetrics
from .requests import ClassifyRequest, TooLarge, parse_body
from .scheduler import QueueFull, Scheduler, ServiceClosed

logger = logging.getLogger("everylabel.serve")

# Texts of the pass that warms the model up before /health says ready.
WARM_UP = (["A short text to warm the model up."], ["first label", "second label"])


@dataclass(frozen=True)
class ServeSettings:
    """The service's limits. `max_batch_tokens` None: the classifier's own budget."""

    model: str = "default"  # the name answers and /info give
    max_batch_tokens: int | None = None
    max_queue_texts: int = 1024
    max_request_texts: int = 256
    max_body_bytes: int = 8 * 2**20
    retriever: str | None = None  # what ranks labels for `shortlist` (None: the classifier's default)

    def __post_init__(self) -> None:
        for name in ("max_queue_texts", "max_request_texts", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise InputError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.max_request_texts > self.max_queue_texts:
            raise InputError(
                "max_request_texts",
                f"{self.max_request_texts} is more than the queue holds (max_queue_texts "
                f"{self.max_queue_texts}): such a request could never be taken",
            )


class Service:
    """What the app holds: the classifier once loaded, its scheduler, the metrics and the status."""

    def __init__(self, load: Callable[[], ClassifierEngine], settings: ServeSettings) -> None:
        self.load_classifier = load
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.status = "loading"  # then "ready" or "failed"
        self.error: str | None = None
        self.info: dict[str, Any] = {"model": settings.model}
        self.scheduler: Scheduler | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    def start(self) -> None:
        """Load, warm up, start the worker (in the calling thread; the app calls it in its own)."""
        try:
            classifier = self.load_classifier()
            classifier.classify(*WARM_UP, progress=False)
            tokens = self.settings.max_batch_tokens or classifier.max_batch_tokens
            limit = self.settings.max_queue_texts
            scheduler = Scheduler(classifier, self.metrics, max_batch_tokens=tokens, max_queue_texts=limit)
            scheduler.start()
        except BaseException as error:
            self.status, self.error = "failed", f"{type(error).__name__}: {error}"
            logger.error("everylabel serve: the model did not load: %s", self.error)
            if self.on_failure is not None:
                self.on_failure(error)
            return
        self.info = describe(classifier, self.settings, scheduler.max_batch_tokens)
        self.scheduler = scheduler
        self.status = "ready"
        logger.info("everylabel serve: ready (%s)", self.info)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()


def describe(classifier: Any, settings: ServeSettings, max_batch_tokens: int) -> dict[str, Any]:
    """`/info`: which model runs where, and the service's limits."""
    from .. import __version__

    manifest = getattr(classifier, "manifest", None)
    if manifest is not None:  # the ONNX runtime
        architecture = manifest.architecture_type
        backend, device, dtype = "onnx", "cpu", "int8" if manifest.int8 else "fp32"
    else:
        architecture = classifier.model.config.architecture_type
        backend, device, dtype = "torch", str(classifier.device), str(classifier.dtype).replace("torch.", "")
    return {
        "model": settings.model,
        "architecture": architecture,
        "backend": backend,
        "device": device,
        "dtype": dtype,
        "window": classifier.max_length,
        "embedding_blend": classifier.blend is not None,
        "version": __version__,
        "max_batch_tokens": max_batch_tokens,
        "max_queue_texts": settings.max_queue_texts,
        "max_request_texts": settings.max_request_texts,
        "max_body_bytes": settings.max_body_bytes,
    }


def create_app(load: Callable[[], ClassifierEngine], settings: ServeSettings | None = None) -> FastAPI:
    """The service over the classifier `load()` returns (called once, in a background thread)."""
    service = Service(load, settings or ServeSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=service.start, name="everylabel-model-loader", daemon=True).start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, service.stop)

    app = FastAPI(
        title="everylabel",
        summary="Zero-shot and few-shot text classification: one encoder pass scores every label.",
        lifespan=lifespan,
    )
    app.state.service = service
    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}},
        }
    }

    @app.post("/v1/classify", openapi_extra=body_schema, summary="Classify texts against candidate labels")
    async def classify(request: Request) -> Response:
        started = time.monotonic()
        response = await _classify(service, request)
        service.metrics.requests.labels("classify", str(response.status_code)).inc()
        service.metrics.request_seconds.observe(time.monotonic() - started)
        return response

    @app.get("/health", summary="200 once the model is loaded and warmed up, 503 before")
    async def health() -> Response:
        code = 200 if service.status == "ready" else 503
        body: dict[str, Any] = {"status": service.status}
        if service.error:
            body["error"] = service.error
        return JSONResponse(body, status_code=code)

    @app.get("/info", summary="The model, its architecture, backend, device, dtype, window and limits")
    async def info() -> dict[str, Any]:
        return {**service.info, "status": service.status}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def _classify(service: Service, request: Request) -> Response:
    settings, scheduler = service.settings, service.scheduler
    if scheduler is None:
        loading = service.status == "loading"
        detail = "the model is loading" if loading else f"the model failed: {service.error}"
        return _error(503, detail, retry_after=5)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        return _error(413, f"body: {declared} bytes; this server takes at most {settings.max_body_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            return _error(413, f"body: over {settings.max_body_bytes} bytes, the most this server takes")
    try:
        arguments, count = parse_body(bytes(body), settings.max_request_texts)
    except InputError as error:
        return _error(422, str(error), field=error.field)
    except TooLarge as error:
        return _error(413, str(error))
    if settings.retriever is not None and arguments.get("shortlist") is not None:
        arguments["retriever"] = settings.retriever
    try:
        job = scheduler.submit(arguments, count)
    except QueueFull as error:
        return _error(429, str(error), retry_after=error.retry_after)
    except ServiceClosed as error:
        return _error(503, str(error))
    watcher: asyncio.Future[Any] = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait([job.future, watcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not job.future.done():  # the client went away (or the server is stopping this request)
            job.cancel()
        watcher.cancel()
    if not job.future.done():
        return _error(499, "client closed the request")
    failure = job.future.exception()
    if isinstance(failure, InputError):
        return _error(422, str(failure), field=failure.field)
    if failure is not None:
        logger.error("classify failed: %s: %s", type(failure).__name__, failure, exc_info=failure)
        return _error(500, f"internal error: {type(failure).__name__}: {failure}")
    results = [result.to_dict() for result in job.future.result()]
    return JSONResponse({"model": settings.model, "results": results})


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so nothing else arrives)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
