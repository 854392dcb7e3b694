"""REST endpoints and the AsyncAPI docs page, served by the real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.harness import Server


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http, timeout=10) as session:
        yield session


def test_history_returns_ascending_bars(http: httpx.Client) -> None:
    body = http.get(
        "/api/v1/market-data/history", params={"symbol": "BTCUSDT", "resolution": "5", "limit": 50}
    ).json()
    times = [b["time"] for b in body["bars"]]
    assert len(times) == 50
    assert times == sorted(set(times))
    assert all(
        b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"]
        for b in body["bars"]
    )


def test_history_range_is_from_inclusive_to_exclusive(http: httpx.Client) -> None:
    bars = http.get(
        "/api/v1/market-data/history", params={"symbol": "EUR/USD", "resolution": "1", "limit": 20}
    ).json()["bars"]
    start, end = bars[5]["time"], bars[10]["time"]
    window = http.get(
        "/api/v1/market-data/history",
        params={"symbol": "EUR/USD", "resolution": "1", "from": start, "to": end},
    ).json()["bars"]
    assert [b["time"] for b in window] == [b["time"] for b in bars[5:10]]


def test_history_accepts_resolution_aliases(http: httpx.Client) -> None:
    body = http.get(
        "/api/v1/market-data/history", params={"symbol": "AAPL", "resolution": "1D", "limit": 3}
    ).json()
    assert body["resolution"] == "D"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"symbol": "DOGEUSDT", "resolution": "1"}, 404, "unknown_symbol"),
        ({"symbol": "BTCUSDT", "resolution": "7"}, 400, "unsupported_resolution"),
        ({"symbol": "BTCUSDT", "resolution": "1", "from": 10, "to": 5}, 400, "validation_error"),
    ],
)
def test_history_errors_are_typed(
    http: httpx.Client, params: dict[str, object], status: int, code: str
) -> None:
    response = http.get("/api/v1/market-data/history", params=params)
    assert response.status_code == status
    assert response.json()["detail"]["code"] == code
    assert response.json()["detail"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"symbol": "btcusdt", "resolution": "1"},
        {"resolution": "1"},
        {"symbol": "BTCUSDT", "resolution": "1", "limit": 0},
        {"symbol": "BTCUSDT", "resolution": "1", "limit": 5000},
        {"symbol": "BTCUSDT", "resolution": "1", "from": -1},
        {"symbol": "BTCUSDT", "resolution": "1", "to": "yesterday"},
    ],
)
def test_history_rejects_bad_parameters_with_422(
    http: httpx.Client, params: dict[str, object]
) -> None:
    assert http.get("/api/v1/market-data/history", params=params).status_code == 422


def test_symbols_and_filter(http: httpx.Client) -> None:
    symbols = http.get("/api/v1/market-data/symbols").json()["symbols"]
    assert {s["symbol"] for s in symbols} == {"BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL"}
    assert all(s["source"] == "simulator" and "1" in s["resolutions"] for s in symbols)
    forex = http.get("/api/v1/market-data/symbols", params={"asset_class": "forex"}).json()[
        "symbols"
    ]
    assert [s["symbol"] for s in forex] == ["EUR/USD"]


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_openapi_lists_rest_routes_only(http: httpx.Client) -> None:
    paths = set(http.get("/openapi.json").json()["paths"])
    assert paths == {
        "/api/v1/market-data/history",
        "/api/v1/market-data/symbols",
        "/healthz",
        "/readyz",
    }


def test_asyncapi_docs_page_is_self_contained(http: httpx.Client) -> None:
    page = http.get("/api/v1/ws/asyncapi")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert not re.search(r"https?://|//[a-z0-9]", page.text, re.IGNORECASE)
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assets = [u for u in urls if u.startswith("/")]
    assert len(assets) >= 2
    for url in assets:
        assert http.get(url).status_code == 200, url
    document = http.get("/api/v1/ws/asyncapi.json").json()
    assert document["asyncapi"].startswith("2.")
    assert "BarsUpdateMessage" in document["components"]["messages"]
