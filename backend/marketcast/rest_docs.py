"""The REST docs pages, ``/docs`` (Swagger UI) and ``/redoc``, working offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, their favicon from FastAPI's site
and ReDoc's fonts from Google: without internet they are blank. These are the same pages
with every URL pointing at this app: bundles from the ``swagger-ui-dist`` and ``redoc`` npm
packages (``doc_assets``), an inline empty favicon, no web fonts, Swagger UI's online
validator switched off (it would send the schema to a public host) and ReDoc's logo URL
rewritten.
"""

from __future__ import annotations

import html
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from marketcast.doc_assets import CSS, JS, MISSING_ASSETS, Asset, mount_assets, npm_package_dir

SWAGGER_PACKAGE: Final = "swagger-ui-dist"
SWAGGER_ASSETS: Final = (
    Asset("swagger-ui-bundle.js", "swagger-ui-bundle.js", JS),
    Asset("swagger-ui.css", "swagger-ui.css", CSS),
)
REDOC_PACKAGE: Final = "redoc"
#: A favicon the browser need not fetch from anywhere.
NO_FAVICON: Final = "data:,"
REDOC_ASSETS: Final = (
    Asset(
        "redoc.standalone.js",
        "bundles/redoc.standalone.js",
        JS,
        # Its sidebar logo is fetched from the vendor's CDN with no option to turn it off; an
        # image that fails to load is hidden by the bundle itself.
        offline=(("https://cdn.redoc.ly/redoc/logo-mini.svg", NO_FAVICON),),
    ),
)


def mount_rest_docs(app: FastAPI, *, title: str, openapi_url: str = "/openapi.json") -> None:
    """Register ``/docs`` and ``/redoc`` with their assets under ``/docs/assets/``.

    The app must be built with ``docs_url=None, redoc_url=None`` so that FastAPI's CDN pages
    do not claim the same paths first.
    """

    swagger_dir, redoc_dir = npm_package_dir(SWAGGER_PACKAGE), npm_package_dir(REDOC_PACKAGE)

    def root(request: Request) -> str:
        # Behind a proxy that strips a prefix, the browser needs that prefix in each URL.
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger(request: Request) -> HTMLResponse:
        if swagger_dir is None:
            return _missing(title)
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{title} — REST API",
            swagger_js_url=f"{base}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/docs/assets/swagger-ui.css",
            swagger_favicon_url=NO_FAVICON,
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def redoc(request: Request) -> HTMLResponse:
        if redoc_dir is None:
            return _missing(title)
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{title} — REST API",
            redoc_js_url=f"{base}/redoc/assets/redoc.standalone.js",
            redoc_favicon_url=NO_FAVICON,
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    mount_assets(app, "/docs/assets", swagger_dir, SWAGGER_ASSETS)
    mount_assets(app, "/redoc/assets", redoc_dir, REDOC_ASSETS)


def _missing(title: str) -> HTMLResponse:
    """Instead of a blank page (its script would 404): what is missing and the fix. The REST
    API itself is described by ``/openapi.json`` either way."""
    text = html.escape(f"{title}: {MISSING_ASSETS}. The schema is at /openapi.json.")
    return HTMLResponse(f"<!doctype html><title>{html.escape(title)}</title><p>{text}</p>", 503)
