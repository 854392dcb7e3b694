"""The AsyncAPI docs page, with its JavaScript and CSS served by this app instead of a CDN.

fastws's page loads the AsyncAPI React component from a public CDN: it breaks offline and
behind strict egress, and it runs third-party code fetched at view time. Here the standalone
bundle comes from the ``@asyncapi/react-component`` npm package that ``make setup`` installs
into ``frontend-types/node_modules`` (pinned by its package-lock), and the page itself is our
own small HTML that names no external host.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

#: Where the component package sits relative to the repository root.
_PACKAGE_DIR: Final = Path("frontend-types/node_modules/@asyncapi/react-component")
#: The only files served: URL name -> (path inside the package, content type).
_ASSETS: Final = (
    ("index.js", "browser/standalone/index.js", "text/javascript; charset=utf-8"),
    ("default.min.css", "styles/default.min.css", "text/css; charset=utf-8"),
)
MISSING_ASSETS: Final = "docs assets not installed: run make setup"


def default_assets_dir() -> Path | None:
    """The installed ``@asyncapi/react-component`` of this checkout, or None if absent.

    Looked up from this file upwards, so it works from a source checkout or an editable
    install; a wheel installed elsewhere has no ``frontend-types`` and gets None.
    """
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _PACKAGE_DIR
        if candidate.is_dir():
            return candidate
    return None


def asyncapi_html(*, title: str, spec_url: str, js_url: str, css_url: str) -> str:
    """The docs page: load the local bundle, then render the spec fetched from ``spec_url``.

    Values are escaped for their context (attribute or script), so a title or URL cannot break
    out of the page. The favicon is an inline empty data URL so the browser asks no host.
    """
    spec = _js_string(spec_url)
    missing = _js_string(MISSING_ASSETS)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{html.escape(css_url)}">
</head>
<body>
<div id="asyncapi"></div>
<script src="{html.escape(js_url)}"></script>
<script>
  (function () {{
    var el = document.getElementById("asyncapi");
    if (typeof AsyncApiStandalone === "undefined") {{
      el.textContent = {missing};
      return;
    }}
    AsyncApiStandalone.render(
      {{schema: {{url: {spec}}}, config: {{show: {{sidebar: true}}}}}},
      el
    );
  }})();
</script>
</body>
</html>
"""


def _js_string(value: str) -> str:
    """A JavaScript string literal that cannot end the ``<script>`` element it sits in."""
    literal = json.dumps(value)
    return literal.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def mount_asyncapi_docs(
    app: FastAPI,
    *,
    spec_provider: Callable[[], dict[str, Any]],
    base_path: str = "/api/v1/ws/asyncapi",
    assets_dir: Path | None,
) -> None:
    """Register ``{base_path}.json``, ``{base_path}`` and ``{base_path}/assets/{name}``.

    All three stay out of the OpenAPI schema: they document the WebSocket API, not the REST
    one. A missing assets directory is reported per request (404 with the fix), so the API
    itself still starts on a machine where ``make setup`` has not installed the Node side.
    """
    base = base_path.rstrip("/")

    async def spec_json() -> JSONResponse:
        return JSONResponse(spec_provider())

    async def page(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, the browser needs that prefix in each URL.
        root = str(request.scope.get("root_path", "")).rstrip("/") + base
        info = spec_provider().get("info", {})
        return HTMLResponse(
            asyncapi_html(
                title=str(info.get("title", "AsyncAPI")),
                spec_url=f"{root}.json",
                js_url=f"{root}/assets/index.js",
                css_url=f"{root}/assets/default.min.css",
            )
        )

    async def asset(name: str) -> Response:
        for url_name, relative, content_type in _ASSETS:
            if url_name != name:
                continue
            path = assets_dir / relative if assets_dir is not None else None
            if path is None or not path.is_file():
                return JSONResponse({"detail": MISSING_ASSETS}, status_code=404)
            return FileResponse(path, media_type=content_type)
        return JSONResponse({"detail": f"unknown docs asset {name!r}"}, status_code=404)

    app.add_api_route(f"{base}.json", spec_json, methods=["GET"], include_in_schema=False)
    app.add_api_route(base, page, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{base}/assets/{{name}}", asset, methods=["GET"], include_in_schema=False)
