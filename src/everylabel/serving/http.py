"""Small HTTP helpers of the service: error answers and bounded body reading."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response


def error(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return error(413, f"body: {declared} bytes; this server takes at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return error(413, f"body: over {limit} bytes, the most this server takes")
    return bytes(body)


# For the service's HTML pages (the try page, /docs, /redoc): the browser loads scripts, styles,
# images and data from this server only, so a page never reaches the network even where a bundled
# library would (ReDoc's footer asks a CDN for its logo; the browser refuses and the logo is hidden).
LOCAL_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
