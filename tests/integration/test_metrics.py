"""``/metrics`` on a real server: it parses with prometheus-client's own text parser, and its
counters move when clients subscribe and updates flow (issue 7, acceptance 2)."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Server, client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: Server) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.http}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_counters_move(server: Server) -> None:
    before = await scrape(server)
    assert value(before, "marketcast_ready") == 1
    assert value(before, "marketcast_upstream_up", feed="simulator") == 1
    assert value(before, "process_resident_memory_bytes") > 0

    # max_queue=None: a client that stops reading (websockets' default queue of 16 frames
    # full) would not read the server's close frame either, and closing would wait 2 s.
    async with client(server, max_queue=None) as bars, client(server, max_queue=None) as quotes:
        await bars.subscribe_bars("BTCUSDT", "1")
        await quotes.request("quotes.subscribe", {"symbol": "EUR/USD", "params": {}})
        for _ in range(20):
            await bars.recv()
        for _ in range(5):
            await quotes.recv()
        during = await scrape(server)

    assert value(during, "marketcast_ws_connections") >= 2
    for route in ("bars", "quotes"):
        assert value(during, "marketcast_ws_subscriptions", route=route) >= 1 + value(
            before, "marketcast_ws_subscriptions", route=route
        )
        assert value(during, "marketcast_ws_topics", route=route) >= 1
    # 2 replies and 25 updates at least reached the clients, and the hub published them.
    sent = "marketcast_ws_messages_sent_total"
    assert value(during, sent) >= value(before, sent) + 27
    published = "marketcast_updates_published_total"
    assert value(during, published) >= value(before, published) + 25
    # The bars client got at least 16 frames: one of them was timed.
    latency = "marketcast_fanout_latency_seconds_count"
    assert value(during, latency) >= value(before, latency) + 1
    assert value(during, "marketcast_fanout_latency_seconds_bucket", le="+Inf") == value(
        during, latency
    )
    assert value(during, "marketcast_streams_active") >= 2
    # Reported; how recent the last tick was is the machine's business, not asserted.
    age = ("marketcast_upstream_last_message_age_seconds", (("feed", "simulator"),))
    assert during[age] >= 0

    # Once both clients left: their connections are counted as closed, nothing was lost
    # from the totals, and their subscriptions are gone.
    closed = "marketcast_ws_connections_closed_total"
    for _ in range(300):  # polled for the event; bounded only to name a hang
        after = await scrape(server)
        if value(after, closed, code="peer") >= value(before, closed, code="peer") + 2:
            break
        await asyncio.sleep(0.1)
    assert value(after, closed, code="peer") >= value(before, closed, code="peer") + 2
    assert value(after, sent) >= value(during, sent)
    assert value(after, "marketcast_ws_connections") == value(before, "marketcast_ws_connections")
    assert value(after, "marketcast_ws_subscriptions", route="bars") == value(
        before, "marketcast_ws_subscriptions", route="bars"
    )


async def test_book_relay_topics_are_not_client_subscriptions(server: Server) -> None:
    """A served order book's relay link (``cluster.book_relay``) is a hub subscriber of an
    internal topic: the per-route gauges count clients' topics only."""
    async with client(server) as books:
        reply = await books.request("orderbook.subscribe", {"symbol": "BTCUSDT", "params": {}})
        assert reply["payload"]["status"] == "ok", reply
        during = await scrape(server)
    routes = {
        dict(labels).get("route")
        for name, labels in during
        if name in ("marketcast_ws_subscriptions", "marketcast_ws_topics")
    }
    assert "orderbook" in routes
    assert not [route for route in routes if route and "~" in route], routes
    assert value(during, "marketcast_ws_topics", route="orderbook") >= 1
