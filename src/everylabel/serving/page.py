"""`GET /`: a page to try the model from a browser, with no build step and nothing from the network.

The page (`page.html`, package data: inline CSS and JavaScript only) takes a text, labels
(comma-separated, or one per line), single- or multi-label and a threshold, and posts them to
`POST /v1/classify`, so it runs through the same engine, limits and error answers as any client.
It shows the scores as bars, best first, with the chosen labels marked, the request's JSON and the
curl command that sends the same request; an error answer shows the server's `detail`. Only the
GET is registered here: other protocols may answer `POST /`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from .http import LOCAL_ONLY


@cache
def page_html() -> str:
    """The page, read once from the package."""
    return files("everylabel.serving").joinpath("page.html").read_text(encoding="utf-8")


def add_page_routes(app: FastAPI) -> None:
    """Register `GET /` (kept out of the OpenAPI schema: it is a page, not part of the API)."""

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def try_page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers={"Content-Security-Policy": LOCAL_ONLY})
