"""The AsyncAPI docs page, with its JavaScript and CSS served by this app instead of a CDN.

fastws's page loads the AsyncAPI React component from a public CDN. Here the standalone
bundle comes from the ``@asyncapi/react-component`` npm package (``doc_assets``), and the
page itself is our own small HTML that names no external host.

The document is served twice: as built (AsyncAPI 2.6, what the generated types come from)
and restated as AsyncAPI 3.0 (``ws.spec3``) for tools that only read 3.x. One page shows
either (``?version=3``), linking to the other, so nobody has to know which one a tool wants.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from marketcast.doc_assets import CSS, JS, MISSING_ASSETS, Asset, mount_assets, npm_package_dir
from marketcast.ws.spec3 import ASYNCAPI3_VERSION, asyncapi3

__all__ = ["MISSING_ASSETS", "asyncapi_html", "default_assets_dir", "mount_asyncapi_docs"]

PACKAGE: Final = "@asyncapi/react-component"
#: The only files served.
ASSETS: Final = (
    Asset("index.js", "browser/standalone/index.js", JS),
    Asset("default.min.css", "styles/default.min.css", CSS),
)


def default_assets_dir() -> Path | None:
    """The installed ``@asyncapi/react-component`` of this checkout, or None if absent."""
    return npm_package_dir(PACKAGE)


def asyncapi_html(
    *,
    title: str,
    spec_url: str,
    js_url: str,
    css_url: str,
    links: Sequence[tuple[str, str]] = (),
) -> str:
    """The docs page: load the local bundle, then render the spec fetched from ``spec_url``.

    ``links``: (label, URL) pairs shown above the rendered document, such as the raw JSON
    and the REST docs. Values are escaped for their context (attribute or script), so a title
    or URL cannot break out of the page. The favicon is an inline empty data URL so the
    browser asks no host.
    """
    spec = _js_string(spec_url)
    missing = _js_string(MISSING_ASSETS)
    nav = " · ".join(
        f'<a href="{html.escape(url)}">{html.escape(label)}</a>' for label, url in links
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{html.escape(css_url)}">
<style>
  /* The renderer lower-cases a rule's label ("must match:") and, by inheritance, its value:
     show patterns and formats in their real case, which is what the server checks. */
  .aui-root .lowercase .font-bold {{ text-transform: none; }}
  #links {{ font: 14px sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; }}
</style>
</head>
<body>
<nav id="links">{nav}</nav>
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
    rest_docs_path: str | None = "/docs",
) -> None:
    """Register ``{base_path}.json``, ``{base_path}-3.json``, ``{base_path}`` and
    ``{base_path}/assets/{name}``.

    ``{base_path}.json`` is ``spec_provider()`` (AsyncAPI 2.6), ``{base_path}-3.json`` the
    same restated as AsyncAPI 3.0; the page shows the first, or with ``?version=3`` the
    second. All stay out of the OpenAPI schema: they document the WebSocket API, not the REST
    one. A missing assets directory is reported per request (404 with the fix), so the API
    itself still starts on a machine where ``make setup`` has not installed the Node side.
    """
    base = base_path.rstrip("/")
    #: (the provided document, its 3.0 form): at most one entry.
    converted: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def spec3() -> dict[str, Any]:
        # Converted once per provided document: the provider caches its document, and an
        # identity check (not equality) costs nothing per request yet follows a new one.
        source = spec_provider()
        if not converted or converted[0][0] is not source:
            converted[:] = [(source, asyncapi3(source))]
        return converted[0][1]

    async def spec_json() -> JSONResponse:
        return JSONResponse(spec_provider())

    async def spec3_json() -> JSONResponse:
        return JSONResponse(spec3())

    async def page(request: Request, version: Literal["2", "3"] = "2") -> HTMLResponse:
        # Behind a proxy that strips a prefix, the browser needs that prefix in each URL.
        prefix = str(request.scope.get("root_path", "")).rstrip("/")
        root = prefix + base
        source = spec_provider()
        info = source.get("info", {})
        if version == "3":
            spec_url = f"{root}-3.json"
            other = (f"The same in AsyncAPI {source.get('asyncapi', '2')}", root)
        else:
            spec_url = f"{root}.json"
            other = (f"The same in AsyncAPI {ASYNCAPI3_VERSION}", f"{root}?version=3")
        links = [("The document as JSON", spec_url), other]
        if rest_docs_path is not None:
            links.append(("The REST API", prefix + rest_docs_path))
        return HTMLResponse(
            asyncapi_html(
                title=str(info.get("title", "AsyncAPI")),
                spec_url=spec_url,
                js_url=f"{root}/assets/index.js",
                css_url=f"{root}/assets/default.min.css",
                links=links,
            )
        )

    app.add_api_route(f"{base}.json", spec_json, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{base}-3.json", spec3_json, methods=["GET"], include_in_schema=False)
    app.add_api_route(base, page, methods=["GET"], include_in_schema=False)
    mount_assets(app, f"{base}/assets", assets_dir, ASSETS)
