"""Streaming sessions over HTTP: `POST /v1/sessions/{id}` feeds a chunk, `DELETE` closes the session.

Only a decoder-kv model on the torch backend has them (anything else answers 404 naming why). The
work of one request is bounded: the chunk by the body size and `max_request_tokens`, the labels by
`max_labels`, each session's cache by `max_session_tokens`, the open sessions by `max_sessions`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ..errors import InputError, NotSupportedError, TooMuchWork
from .http import error as _error
from .http import read_body as _read_body

_OPENING = threading.Lock()  # two first requests make one set of sessions
FIELDS = ("text", "labels", "strategy", "prompt", "examples", "threshold", "multi_label")


def open_sessions(service: Any) -> Any:
    """The service's streaming sessions, made on first use; raises NotSupportedError for a model
    without them."""
    with _OPENING:
        return _open(service)


def _open(service: Any) -> Any:
    if service.sessions is None:
        from ..streaming.sessions import StreamingSessions

        settings = service.settings
        service.sessions = StreamingSessions(
            service.classifier,
            max_cached_tokens=settings.max_session_tokens,
            max_resident=settings.max_resident_sessions,
            max_sessions=settings.max_sessions,
        )
    return service.sessions


def parse_feed(body: bytes, max_labels: int) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError("body", f"not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InputError("body", "expected a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(unknown[0], f"is not a field of a session request (fields: {', '.join(FIELDS)})")
    for required in ("text", "labels"):
        if required not in data:
            raise InputError(required, "is required")
    labels = data["labels"]
    if isinstance(labels, list) and len(labels) > max_labels:
        raise TooMuchWork("labels", f"{len(labels)} candidate labels; this server takes at most {max_labels}")
    multi_label = data.get("multi_label", True)
    if not isinstance(multi_label, bool):
        raise InputError("multi_label", f"expected true or false, got {multi_label!r}")
    return {"chunk": data["text"], **{k: data[k] for k in FIELDS[1:] if k in data and k != "text"}}


def feed_bounded(sessions: Any, session_id: str, arguments: dict[str, Any], max_tokens: int) -> Any:
    """Feed the chunk unless it is over `max_tokens` tokens (counted under the builder's lock)."""
    chunk = arguments["chunk"]
    if isinstance(chunk, str):
        tokens = len(sessions.builder.encode([chunk])[0][0])
        if tokens > max_tokens:
            raise TooMuchWork("text", f"{tokens} tokens; this server takes at most {max_tokens}")
    return sessions.feed(session_id, **arguments)


def add_session_routes(app: FastAPI, service: Any) -> None:
    """The session routes over `service` (the app's `Service`: its classifier, settings, sessions)."""

    @app.post("/v1/sessions/{session_id}", summary="Feed a chunk to a streaming session (decoder-kv models)")
    async def feed(session_id: str, request: Request) -> Response:
        if service.classifier is None:
            return _error(503, "the model is loading" if service.status == "loading" else "the model failed")
        body = await _read_body(request, service.settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            sessions = open_sessions(service)
            arguments = parse_feed(body, service.settings.max_labels)
            result = await asyncio.get_running_loop().run_in_executor(
                None,
                partial(feed_bounded, sessions, session_id, arguments, service.settings.max_request_tokens),
            )
        except NotSupportedError as error:
            return _error(404, str(error))
        except TooMuchWork as error:
            return _error(413, str(error), field=error.field)
        except InputError as error:
            return _error(422, str(error), field=error.field)
        answer = {"session_id": session_id, "fired": result is not None}
        answer["result"] = result.to_dict() if result is not None else None
        return JSONResponse(answer)

    @app.delete("/v1/sessions/{session_id}", summary="Close a streaming session")
    async def close(session_id: str) -> Response:
        if service.sessions is None or not service.sessions.close(session_id):
            return _error(404, f"session_id: no open session {session_id!r}")
        return JSONResponse({"session_id": session_id, "closed": True})
