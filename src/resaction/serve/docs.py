"""``/docs`` without a network: Swagger UI served by the service itself.

FastAPI's default page loads Swagger UI from a CDN, so on a machine without internet it is blank.
Here its script and stylesheet come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5,
which reads FastAPI's OpenAPI 3.1 schema) and are mounted under ``/docs-assets``, following
FastAPI's recipe for self-hosting the docs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's distribution files inside the installed package."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def add_offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from local files (build the app with ``docs_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_ui_dir()), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
