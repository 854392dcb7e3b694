"""The docs pages render in a real browser with the internet out of reach.

Headless Debian Chromium driven by ``pages_driver.mjs`` opens ``/docs`` (Swagger UI),
``/redoc`` and the AsyncAPI page of a real server on 127.0.0.1 while every request to any
other host is blocked. Each page must show the API's operations, try to load nothing from
elsewhere and raise no script error. A page that still pointed at a CDN would stay blank
(its bundle blocked) and show up here twice: not rendered, and a blocked URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.pages import open_pages
from tests.integration.harness import run_server

REST_PATHS = ["/api/v1/market-data/history", "/api/v1/market-data/symbols"]

pytestmark = pytest.mark.integration


def test_docs_pages_render_offline(tmp_path: Path) -> None:
    with run_server(tmp_path) as server:
        pages = [
            {"url": f"{server.http}/docs", "expect": REST_PATHS},
            {"url": f"{server.http}/redoc", "expect": REST_PATHS},
            {
                "url": f"{server.http}/api/v1/ws/asyncapi",
                # The text as shown, CSS applied: the symbol rule in its real (upper) case.
                "expect": ["bars.subscribe", "quotes.subscribe", "must match: ^[A-Z0-9]"],
                "expandAll": True,
            },
            {
                # The same document as AsyncAPI 3.0 (ws.spec3), read by the same bundle: its
                # operation ids and the raw streams' addresses show that it was parsed as 3.0.
                "url": f"{server.http}/api/v1/ws/asyncapi?version=3",
                "expect": [
                    "bars.subscribe",
                    "receiveBarsSubscribe",
                    "sendStreamBars",
                    "/stream/bars/{symbol}/{resolution}",
                    "The same in AsyncAPI 2.6.0",
                ],
            },
        ]
        report = open_pages(pages, tmp_path / "chromium-profile")

    assert report["blocked"] == [], "a docs page tried to load from another host"
    assert {urlsplit(url).hostname for url in report["local"]} == {"127.0.0.1"}
    for result in report["results"]:
        assert result["rendered"], f"{result['url']} did not render: {result['text'][:2000]}"
        assert result["problems"] == [], result
    swagger, redoc, asyncapi, asyncapi3 = report["results"]
    # The operations as each renderer shows them, with their HTTP method.
    assert "GET" in swagger["text"]
    assert "get" in redoc["text"].lower()
    # Summaries are plain text, and the page links to the raw document and the REST docs.
    assert "`" not in asyncapi["text"]
    assert "The document as JSON" in asyncapi["text"]
    assert "The REST API" in asyncapi["text"]
    assert "The same in AsyncAPI 3.0.0" in asyncapi["text"]
    assert "`" not in asyncapi3["text"]
    assert "The document as JSON" in asyncapi3["text"]
