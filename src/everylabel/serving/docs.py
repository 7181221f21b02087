"""`/docs` (Swagger UI) and `/redoc` (ReDoc) served offline, from files installed with the service.

FastAPI's own doc pages load their JavaScript and CSS from a CDN, so they stay blank on a machine
without internet access. Here the app is created with `docs_url=None, redoc_url=None` and these
routes serve the same pages with their assets taken from the `fastapi-offline` package (MIT; it
ships Swagger UI 5, which reads the OpenAPI 3.1 schema FastAPI writes, and ReDoc 2) under
`/docs/assets/`, with no web fonts and no validator badge, and a Content-Security-Policy that keeps
the browser on this server (ReDoc's footer would fetch its logo from a CDN): nothing comes from elsewhere.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from .http import LOCAL_ONLY, error

ASSETS_PATH = "/docs/assets"
# file in fastapi_offline/static (served under ASSETS_PATH) -> media type
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


@cache
def asset(name: str) -> bytes:
    """One asset's bytes, read once from the installed package."""
    return files("fastapi_offline").joinpath("static", name).read_bytes()


def local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = LOCAL_ONLY
    return page


def add_docs_routes(app: FastAPI) -> None:
    """Register `/docs`, `/redoc` and their assets (the app must be made with `docs_url=None` and
    `redoc_url=None`, so FastAPI does not register its CDN-backed pages)."""

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return local_only(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return local_only(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:  # sync: the first read runs in the thread pool
        if name not in ASSETS:
            return error(404, f"{name}: no such docs asset (assets: {', '.join(ASSETS)})")
        return Response(asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})
