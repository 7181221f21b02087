"""The HTTP service: `POST /v1/classify`, `GET /health`, `/info`, `/metrics`, a page to try the model at
`GET /` (page.py), and OpenAPI docs at `/docs` and `/redoc` that load nothing from the network (docs.py).
Other services' protocols (compat.py): Hugging Face inference zero-shot classification at `POST /` and
`POST /models/{model_id}`; the official gliclass server's `POST /gliclass`, `GET /gliclass/-/healthz`
and `GET /gliclass/adapter-cache`. Every protocol ends in `classify_arguments`, under the same limits.

`create_app(load, settings)` returns a FastAPI app that loads its classifier in a background
thread when it starts (so `/health` answers 503 until the model is loaded and a warm-up pass ran).
A request is read and bounded, prepared by the engine in one of a few preparing threads (validation,
layout, label vectors; bounded by `ServeSettings`' work limits before any model input is built),
then queued to one `Scheduler` (dynamic batching, one model worker), so a large request never
holds up the others. Status codes: 200 results; 404 an adapter the server was not started with
(field "adapter", the message lists the known ones); 413 too many texts, labels, passes or tokens,
or too large a body; 422 bad input, with the library's field-and-item message; 429 a full queue,
with Retry-After; 503 loading or shutting down; 500 an internal error, for that request only.
A request may name one of the classifier's extra LoRA adapters (`serve --adapter NAME=DIR`);
`/info` lists them ("registered") and those held in memory now ("loaded").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import InputError, TooMuchWork, UnknownAdapter
from ..inference.engine import ClassifierEngine
from ..inference.results import ClassificationResult
from ..prompt import WorkBudget
from .compat import add_compat_routes
from .docs import add_docs_routes
from .http import error as _error
from .http import read_body as _read_body
from .metrics import ServiceMetrics
from .page import add_page_routes
from .requests import ClassifyRequest, TooLarge, parse_body
from .scheduler import QueueFull, Scheduler, ServiceClosed
from .sessions import add_session_routes

logger = logging.getLogger("everylabel.serve")

# Texts of the pass that warms the model up before /health says ready.
WARM_UP = (["A short text to warm the model up."], ["first label", "second label"])


@dataclass(frozen=True)
class ServeSettings:
    """The service's limits. `max_batch_tokens` None: the classifier's own budget.

    One request may ask for at most `max_request_texts` texts, `max_labels` candidate labels per
    text (counted in every label order), `max_request_passes` model inputs (windows x label groups
    x label orders) and `max_request_tokens` tokens over them, and a bi-encoder refits its label
    vectors to at most `max_request_refits` distinct example lists; the queue holds at most
    `max_queue_texts` texts and `max_queue_tokens` tokens."""

    model: str = "default"  # the name answers and /info give
    max_batch_tokens: int | None = None
    max_queue_texts: int = 1024
    max_queue_tokens: int = 2**21
    max_request_texts: int = 256
    max_labels: int = 16384
    max_request_passes: int = 2048
    max_request_tokens: int = 2**19
    max_request_refits: int = 4
    max_body_bytes: int = 8 * 2**20
    retriever: str | None = None  # what ranks labels for `shortlist` (None: the classifier's default)
    preparing_threads: int = 2
    # Streaming sessions (decoder-kv models, `sessions.py`): open at once, holding a cache at once,
    # and the tokens one session's cache keeps.
    max_sessions: int = 1024
    max_resident_sessions: int = 64
    max_session_tokens: int = 8192

    def __post_init__(self) -> None:
        for name in (
            "max_queue_texts",
            "max_queue_tokens",
            "max_request_texts",
            "max_labels",
            "max_request_passes",
            "max_request_tokens",
            "max_request_refits",
            "max_body_bytes",
            "preparing_threads",
            "max_sessions",
            "max_resident_sessions",
            "max_session_tokens",
        ):
            if getattr(self, name) < 1:
                raise InputError(name, f"must be >= 1, got {getattr(self, name)}")
        for request, queued in (("texts", "texts"), ("tokens", "tokens")):
            if getattr(self, f"max_request_{request}") > getattr(self, f"max_queue_{queued}"):
                raise InputError(
                    f"max_request_{request}",
                    f"{getattr(self, f'max_request_{request}')} is more than the queue holds (max_queue_"
                    f"{queued} {getattr(self, f'max_queue_{queued}')}): such a request could never be taken",
                )

    @property
    def budget(self) -> WorkBudget:
        """The work one request may cause, as the engine checks it while preparing."""
        return WorkBudget(
            self.max_labels, self.max_request_passes, self.max_request_tokens, self.max_request_refits
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
        self.classifier: ClassifierEngine | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self.sessions: Any = None  # the streaming sessions, made on first use (sessions.py)
        self.preparing = ThreadPoolExecutor(
            settings.preparing_threads, thread_name_prefix="everylabel-prepare"
        )

    def start(self) -> None:
        """Load, warm up, start the worker (in the calling thread; the app calls it in its own)."""
        try:
            classifier = self.load_classifier()
            classifier.classify(*WARM_UP, progress=False)
            scheduler = Scheduler(
                classifier,
                self.metrics,
                max_batch_tokens=self.settings.max_batch_tokens or classifier.max_batch_tokens,
                max_queue_texts=self.settings.max_queue_texts,
                max_queue_tokens=self.settings.max_queue_tokens,
            )
            scheduler.start()
        except BaseException as error:
            self.status, self.error = "failed", f"{type(error).__name__}: {error}"
            logger.error("everylabel serve: the model did not load: %s", self.error)
            if self.on_failure is not None:
                self.on_failure(error)
            return
        self.info = describe(classifier, self.settings, scheduler.max_batch_tokens)
        self.classifier = classifier
        self.scheduler = scheduler
        self.status = "ready"
        logger.info("everylabel serve: ready (%s)", self.info)

    @property
    def adapters(self) -> list[str] | None:
        """The extra adapters a request may name (None: the classifier has none, or is not loaded)."""
        return (self.classifier.adapters or None) if self.classifier is not None else None

    def stop(self) -> None:
        self.preparing.shutdown(wait=True)
        if self.scheduler is not None:
            self.scheduler.close()


def describe(classifier: ClassifierEngine, settings: ServeSettings, max_batch_tokens: int) -> dict[str, Any]:
    """`/info`: which model runs where, and the service's limits."""
    from .. import __version__

    calibration = classifier.calibration
    return {
        "model": settings.model,
        "architecture": classifier.architecture_type,
        **classifier.backend.describe(),
        "window": classifier.max_length,
        "embedding_blend": classifier.blend is not None,
        "calibration": None
        if calibration is None
        else {"method": calibration.method, "mode": calibration.mode},
        "version": __version__,
        "max_batch_tokens": max_batch_tokens,
        "max_queue_texts": settings.max_queue_texts,
        "max_queue_tokens": settings.max_queue_tokens,
        "max_request_texts": settings.max_request_texts,
        "max_labels": settings.max_labels,
        "max_request_passes": settings.max_request_passes,
        "max_request_tokens": settings.max_request_tokens,
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
        docs_url=None,  # served offline by add_docs_routes
        redoc_url=None,
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

    add_session_routes(app, service)
    add_compat_routes(app, service, classify_arguments)
    add_page_routes(app)
    add_docs_routes(app)

    @app.get("/health", summary="200 once the model is loaded and warmed up, 503 before")
    async def health() -> Response:
        code = 200 if service.status == "ready" else 503
        body: dict[str, Any] = {"status": service.status}
        if service.error:
            body["error"] = service.error
        return JSONResponse(body, status_code=code)

    @app.get(
        "/info", summary="The model, its architecture, backend, device, dtype, window, limits and adapters"
    )
    async def info() -> dict[str, Any]:
        answer = {**service.info, "status": service.status}
        if service.classifier is not None:
            answer["adapters"] = service.classifier.adapter_status()
        return answer

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _classify(service: Service, request: Request) -> Response:
    """`POST /v1/classify`: everylabel's own protocol."""
    if service.scheduler is None or service.classifier is None:
        return not_ready(service)
    body = await _read_body(request, service.settings.max_body_bytes)
    if isinstance(body, Response):
        return body
    try:
        arguments, count = parse_body(body, service.settings.max_request_texts)
    except TooLarge as error:
        return _error(413, str(error))
    except InputError as error:
        return _error(422, str(error), field=error.field)
    outcome = await classify_arguments(service, request, arguments, count)
    if isinstance(outcome, Response):
        return outcome
    return JSONResponse({"model": service.settings.model, "results": [r.to_dict() for r in outcome]})


def not_ready(service: Service) -> Response:
    """503 while the model loads, or after it failed to."""
    loading = service.status == "loading"
    detail = "the model is loading" if loading else f"the model failed: {service.error}"
    return _error(503, detail, retry_after=5)


async def classify_arguments(
    service: Service, request: Request, arguments: dict[str, Any], count: int
) -> list[ClassificationResult] | Response:
    """Classify with `prepare`'s keyword arguments (`count` texts, already bounded by the protocol's
    parser with `requests.count_texts`) through the scheduler: the results, or the error answer.
    Every protocol the service speaks ends here, so each is bounded, batched and answered as
    `Classifier.classify` would."""
    settings, scheduler, classifier = service.settings, service.scheduler, service.classifier
    if scheduler is None or classifier is None:
        return not_ready(service)
    try:
        if settings.retriever is not None and arguments.get("shortlist") is not None:
            arguments["retriever"] = settings.retriever
        prepared = await asyncio.get_running_loop().run_in_executor(
            service.preparing, partial(classifier.prepare, **arguments, budget=settings.budget)
        )
        job = scheduler.submit(prepared, count)
    except TooMuchWork as error:
        return _error(413, str(error), field=error.field)
    except UnknownAdapter as error:
        return _error(404, str(error), field=error.field)
    except InputError as error:
        return _error(422, str(error), field=error.field)
    except QueueFull as error:
        return _error(429, str(error), retry_after=error.retry_after)
    except ServiceClosed as error:
        return _error(503, str(error))
    except Exception as error:  # a fault while preparing: this request only
        logger.error("classify failed: %s: %s", type(error).__name__, error, exc_info=error)
        return _error(500, f"internal error: {type(error).__name__}: {error}")
    watcher: asyncio.Future[Any] = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait([job.future, watcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not job.future.done():  # the client went away (or the server is stopping this request)
            scheduler.cancel(job)
        watcher.cancel()
    if not job.future.done():
        return _error(499, "client closed the request")
    failure = job.future.exception()
    if isinstance(failure, InputError):
        return _error(422, str(failure), field=failure.field)
    if failure is not None:
        logger.error("classify failed: %s: %s", type(failure).__name__, failure, exc_info=failure)
        return _error(500, f"internal error: {type(failure).__name__}: {failure}")
    return job.future.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so nothing else arrives)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
