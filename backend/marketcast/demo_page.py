"""The demo page at ``/``: a live candlestick chart of any served symbol, with its trades tape.

The page is front-end code and lives with the rest of it, in ``frontend-types/demo`` (HTML,
CSS and TypeScript that uses the package's own typed client). ``make setup`` compiles it with
``tsc`` into ``frontend-types/dist/demo`` (git-ignored); this module only serves files, all from
this checkout:

- ``/`` — ``demo/index.html``; ``/demo/style.css`` — its stylesheet;
- ``/demo/app/<path>.js`` — the compiled modules (the page's and the client's);
- ``/demo/vendor/lightweight-charts.standalone.production.js`` — the chart library, from
  ``frontend-types/node_modules`` as pinned by the package-lock.

Why a Content-Security-Policy: it turns "no CDN, no other host" into something the browser
enforces — scripts, styles, images and connections may only come from this server (the
WebSocket included: ``connect-src 'self'`` covers ``ws:`` to the same host and port).
Inline styles stay allowed because the chart library sets element styles from script. The
page's one inline script, the import map that lets it import the client by its package name
(as an app would), is allowed by its hash, computed from the page as served.

Why a missing build is answered per request (503 naming the fix) rather than refused at start:
the API itself must run on a machine without Node.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

#: Relative to the ``frontend-types`` directory.
_PAGE: Final = Path("demo/index.html")
_STYLE: Final = Path("demo/style.css")
_BUILD: Final = Path("dist/demo")
_ENTRY: Final = Path("demo/main.js")  # inside _BUILD
_CHART_LIBRARY: Final = Path(
    "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
)
CHART_LIBRARY_URL: Final = "/demo/vendor/lightweight-charts.standalone.production.js"
NOT_BUILT: Final = (
    "The demo page is not built on this server: run `make setup` "
    "(it compiles frontend-types/demo into frontend-types/dist/demo)."
)

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Rebuilt by every `make setup`: the browser revalidates instead of running stale code.
    "Cache-Control": "no-cache",
}
_JS: Final = "text/javascript; charset=utf-8"
_IMPORT_MAP: Final = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def headers_for_page(page: str) -> dict[str, str]:
    """The headers, with the page's inline import maps allowed by their SHA-256 (CSP Level 2
    hashes cover a script element's exact text) and nothing else inline."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _IMPORT_MAP.findall(page)
    ]
    if not hashes:
        return dict(_HEADERS)
    policy = CONTENT_SECURITY_POLICY.replace(
        "script-src 'self'", "script-src 'self' " + " ".join(hashes), 1
    )
    return {**_HEADERS, "Content-Security-Policy": policy}


def default_frontend_dir() -> Path | None:
    """The ``frontend-types`` directory of this checkout, or None (an installed wheel).

    Looked up from this file upwards, like the AsyncAPI page's assets (``ws.docs_page``).
    """
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "frontend-types"
        if (candidate / _PAGE).is_file():
            return candidate
    return None


def is_built(frontend_dir: Path | None) -> bool:
    """Whether every file the page needs is there (sources, compiled modules, library)."""
    if frontend_dir is None:
        return False
    needed = (_PAGE, _STYLE, _BUILD / _ENTRY, _CHART_LIBRARY)
    return all((frontend_dir / path).is_file() for path in needed)


def _file(path: Path, media_type: str) -> Response:
    if not path.is_file():
        return PlainTextResponse(NOT_BUILT, status_code=404, headers=_HEADERS)
    return FileResponse(path, media_type=media_type, headers=_HEADERS)


def mount_demo_page(app: FastAPI, *, frontend_dir: Path | None) -> None:
    """Register ``/`` and the ``/demo/...`` files it loads; none of them is in OpenAPI."""
    build = (frontend_dir / _BUILD).resolve() if frontend_dir is not None else None

    async def page() -> Response:
        if frontend_dir is None or not is_built(frontend_dir):
            return HTMLResponse(
                f"<!doctype html><title>marketcast</title><p>{NOT_BUILT}</p>",
                status_code=503,
                headers=_HEADERS,
            )
        text = (frontend_dir / _PAGE).read_text(encoding="utf-8")
        return HTMLResponse(text, headers=headers_for_page(text))

    async def style() -> Response:
        if frontend_dir is None:
            return PlainTextResponse(NOT_BUILT, status_code=404, headers=_HEADERS)
        return _file(frontend_dir / _STYLE, "text/css; charset=utf-8")

    async def chart_library() -> Response:
        if frontend_dir is None:
            return PlainTextResponse(NOT_BUILT, status_code=404, headers=_HEADERS)
        return _file(frontend_dir / _CHART_LIBRARY, _JS)

    async def module(path: str) -> Response:
        """A compiled module; only ``.js`` files inside the build directory."""
        if build is None:
            return PlainTextResponse(NOT_BUILT, status_code=404, headers=_HEADERS)
        target = (build / path).resolve()
        if target.suffix != ".js" or build not in target.parents:
            return PlainTextResponse(f"no such demo module: {path}", status_code=404)
        return _file(target, _JS)

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/demo/style.css", style, methods=["GET"], include_in_schema=False)
    app.add_api_route(CHART_LIBRARY_URL, chart_library, methods=["GET"], include_in_schema=False)
    app.add_api_route("/demo/app/{path:path}", module, methods=["GET"], include_in_schema=False)
