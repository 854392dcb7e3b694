"""The AsyncAPI docs page works offline: it names no external host and its assets are ours.

The bundle comes from ``frontend-types/node_modules`` (``make setup``); without it the page
would silently render nothing, so its absence fails here instead of being skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketcast.ws.docs_page import (
    MISSING_ASSETS,
    asyncapi_html,
    default_assets_dir,
    mount_asyncapi_docs,
)
from marketcast.ws.spec3 import asyncapi3

BASE = "/api/v1/ws/asyncapi"
SPEC: dict[str, Any] = {
    "asyncapi": "2.6.0",
    "info": {"title": "marketcast", "version": "0.1.0"},
    "channels": {},
}
#: Any absolute or protocol-relative URL: ``http://x``, ``https://x``, ``//x``.
EXTERNAL_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//[^/\s\"'<>]", re.IGNORECASE)


def _client(assets_dir: Path | None, **kwargs: Any) -> TestClient:
    app = FastAPI()
    mount_asyncapi_docs(app, spec_provider=lambda: SPEC, assets_dir=assets_dir)
    return TestClient(app, **kwargs)


@pytest.fixture(scope="module")
def assets() -> Path:
    found = default_assets_dir()
    if found is None:
        pytest.fail("@asyncapi/react-component is not installed: run `make setup`")
    return found


def _local_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_page_names_no_external_host(assets: Path) -> None:
    page = _client(assets).get(BASE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "http://" not in text
    assert "https://" not in text
    assert EXTERNAL_URL.search(text) is None, EXTERNAL_URL.search(text)
    assert "AsyncApiStandalone.render" in text
    assert f'{{url: "{BASE}.json"}}' in text
    assert "sidebar: true" in text


def test_asset_urls_in_the_page_are_served(assets: Path) -> None:
    client = _client(assets)
    page = client.get(BASE).text
    urls = [u for u in _local_urls(page) if u.startswith(f"{BASE}/assets/")]
    assert sorted(urls) == [f"{BASE}/assets/default.min.css", f"{BASE}/assets/index.js"]
    # Besides the assets, only the links to the raw document, its 3.0 page and the REST docs.
    others = {u for u in _local_urls(page) if not u.startswith((f"{BASE}/assets/", "data:"))}
    assert others == {f"{BASE}.json", f"{BASE}?version=3", "/docs"}
    kinds = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 1000
        kinds[url.rsplit("/", 1)[1]] = response.headers["content-type"]
    assert kinds["index.js"].startswith("text/javascript")
    assert kinds["default.min.css"].startswith("text/css")
    assert b"AsyncApiStandalone" in client.get(f"{BASE}/assets/index.js").content


def test_json_route_returns_the_spec(assets: Path) -> None:
    response = _client(assets).get(f"{BASE}.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == SPEC


def test_the_3_0_document_is_served_converted_once(
    assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketcast.ws import docs_page

    calls: list[dict[str, Any]] = []

    def counting(document: dict[str, Any]) -> dict[str, Any]:
        calls.append(document)
        return asyncapi3(document)

    monkeypatch.setattr(docs_page, "asyncapi3", counting)
    client = _client(assets)
    for _ in range(3):
        response = client.get(f"{BASE}-3.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == asyncapi3(SPEC)
        assert response.json()["asyncapi"] == "3.0.0"
    assert calls == [SPEC]
    assert calls[0] is SPEC


def test_the_page_shows_either_version_and_links_to_the_other(assets: Path) -> None:
    client = _client(assets)
    page3 = client.get(BASE, params={"version": "3"})
    assert page3.status_code == 200
    assert f'{{url: "{BASE}-3.json"}}' in page3.text
    assert f'<a href="{BASE}-3.json">The document as JSON</a>' in page3.text
    assert f'<a href="{BASE}">The same in AsyncAPI 2.6.0</a>' in page3.text
    page2 = client.get(BASE, params={"version": "2"}).text
    assert page2 == client.get(BASE).text
    assert f'{{url: "{BASE}.json"}}' in page2
    assert f'<a href="{BASE}?version=3">The same in AsyncAPI 3.0.0</a>' in page2
    assert client.get(BASE, params={"version": "4"}).status_code == 422


def test_only_the_two_assets_are_served(assets: Path) -> None:
    client = _client(assets)
    for name in ("package.json", "default.css", "without-parser.js", "..%2Fpackage.json"):
        assert client.get(f"{BASE}/assets/{name}").status_code == 404, name


@pytest.mark.parametrize("assets_dir", [None, Path("/nonexistent/react-component")])
def test_missing_assets_say_how_to_fix(assets_dir: Path | None) -> None:
    client = _client(assets_dir)
    for name in ("index.js", "default.min.css"):
        response = client.get(f"{BASE}/assets/{name}")
        assert response.status_code == 404
        assert response.json() == {"detail": MISSING_ASSETS}
        assert "make setup" in MISSING_ASSETS
    assert client.get(BASE).status_code == 200


def test_routes_stay_out_of_openapi() -> None:
    app = FastAPI()
    mount_asyncapi_docs(app, spec_provider=lambda: SPEC, assets_dir=None)
    assert not [path for path in app.openapi()["paths"] if path.startswith(BASE)]


def test_page_escapes_its_inputs() -> None:
    page = asyncapi_html(
        title="</title><script>x()</script>",
        spec_url='/s"</script><script>y()</script>',
        js_url='/a.js" onload="z()',
        css_url="/a.css",
    )
    assert "<script>x()" not in page
    assert "<script>y()" not in page
    assert 'onload="z()' not in page


def test_urls_follow_the_proxy_root_path(assets: Path) -> None:
    client = _client(assets, root_path="/proxy")
    page = client.get(BASE).text
    assert f'{{url: "/proxy{BASE}.json"}}' in page
    assert f'src="/proxy{BASE}/assets/index.js"' in page
    page3 = client.get(BASE, params={"version": "3"}).text
    assert f'{{url: "/proxy{BASE}-3.json"}}' in page3
    assert f'href="/proxy{BASE}"' in page3
