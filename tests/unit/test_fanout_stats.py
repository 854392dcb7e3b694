"""Plain-integer fan-out counters (``delivery.stats``), the optional feed ``status()``
(``feeds.status``, the simulator's) and the metrics collector over them — no server."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from marketcast.delivery.hub import Hub
from marketcast.delivery.stats import PEER_CLOSED, FanoutStats, LatencyHistogram
from marketcast.feeds.status import FeedStatus, feed_status
from marketcast.market import BarKey
from marketcast.metrics import MetricsSources, build_registry
from tests.unit.test_simulator import FakeTime, Recorder, make_feed


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    histogram = LatencyHistogram([0.001, 0.01])
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        histogram.observe(seconds)
    assert histogram.buckets() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert histogram.count == 4
    assert histogram.total == pytest.approx(0.5035)


def test_histogram_refuses_unordered_bounds() -> None:
    with pytest.raises(ValueError, match="ascending"):
        LatencyHistogram([0.1, 0.01])


@dataclass
class FakeOutbox:
    queued: int = 0
    conflated: int = 0
    nbytes: int = 0

    def __len__(self) -> int:
        return self.queued


@dataclass
class FakeConnection:
    frames_sent: int = 0
    close_code: int | None = None
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    #: What the WebSocket layer sent on its own (``delivery.direct.layer_close_code``).
    layer_code: int | None = None

    def layer_close_code(self) -> int | None:
        return self.layer_code


def test_closed_connections_are_folded_in_by_close_code_and_reason() -> None:
    stats = FanoutStats(sample_every=4)
    stats.connection_closed(FakeConnection(10, None, FakeOutbox(0, 3)))
    stats.connection_closed(FakeConnection(5, 4008, FakeOutbox(7, 1)))
    stats.connection_closed(FakeConnection(2, 1001, FakeOutbox(1, 0)))
    assert stats.closed == {PEER_CLOSED: 1, "4008": 1, "1001": 1}
    assert stats.sent == 17
    assert stats.conflated == 4
    assert stats.unsent == {"slow_consumer": 7, "disconnected": 1}


def test_closes_by_the_websocket_layer_and_refusals_get_their_own_code() -> None:
    stats = FanoutStats()
    # A keepalive ping went unanswered: uvicorn sent 1011, the application saw a disconnect.
    stats.connection_closed(FakeConnection(close_code=None, layer_code=1011))
    # The server's own close wins over what the layer recorded for it.
    stats.connection_closed(FakeConnection(close_code=4008, layer_code=4008))
    stats.connection_closed(FakeConnection())
    stats.turned_away(1013)
    stats.turned_away(1013)
    assert stats.closed == {"1011": 1, "4008": 1, PEER_CLOSED: 1, "1013": 2}


def test_slow_consumers_are_counted_by_limit_and_dropped_frames_by_close_code() -> None:
    stats = FanoutStats()
    stats.slow_consumer("lag")
    stats.slow_consumer("lag")
    stats.slow_consumer("queue")
    assert stats.slow_consumers == {"lag": 2, "queue": 1}
    stats.dropped(4008, 5)
    stats.dropped(1001, 2)
    stats.dropped(None, 0)
    assert stats.unsent == {"slow_consumer": 5, "disconnected": 2}


async def test_simulator_reports_its_status() -> None:
    fake = FakeTime()
    feed = make_feed(fake, tick_interval=0.5)
    idle = feed_status(feed)
    assert idle == FeedStatus(connected=False, connections=0, state="stopped")
    await feed.watch(BarKey("BTCUSDT", "1"))
    await feed.start(Recorder(feed))
    await fake.advance(2.0)
    status = feed_status(feed)
    assert status is not None
    assert status.connected
    assert status.state == "running"
    assert status.last_message_age is not None
    assert 0 <= status.last_message_age <= 0.5
    assert status.lag is not None
    assert status.lag >= 0
    await feed.close()
    stopped = feed_status(feed)
    assert stopped is not None
    assert (stopped.connected, stopped.state, stopped.lag) == (False, "stopped", None)
    assert stopped.last_message_age is not None


def test_a_feed_without_or_with_a_broken_status_is_skipped() -> None:
    class Plain:
        name = "plain"

    class Broken:
        name = "broken"

        def status(self) -> FeedStatus:
            raise RuntimeError("not today")

    assert feed_status(Plain()) is None
    assert feed_status(Broken()) is None


@dataclass
class FakeAdapter:
    open_connections: dict[str, FakeConnection]
    stats: FanoutStats


@dataclass
class FakeRelay:
    asks, replays, gaps = 4, 5, 6


class FakeStreams:
    repeats_dropped: int = 2
    book_relay = FakeRelay()

    def active_keys(self) -> list[object]:
        return ["a"]

    def stale_topics(self) -> list[str]:
        return []


def test_collector_sums_live_and_closed_connections_and_never_goes_back() -> None:
    stats = FanoutStats()
    stats.connection_closed(FakeConnection(100, None, FakeOutbox(0, 5)))
    live = FakeConnection(7, None, FakeOutbox(queued=3, conflated=1, nbytes=300))
    adapter = FakeAdapter({"a": live}, stats)
    hub = Hub()
    hub.add('bars:{"resolution":"1","symbol":"X"}', live)  # type: ignore[arg-type]
    hub.add('quotes:{"symbol":"X"}', live)  # type: ignore[arg-type]
    sources = MetricsSources(
        connections=adapter,
        hub=hub,
        streams=FakeStreams(),
        feeds=[],
        is_ready=lambda: True,
        redis_healthy=lambda: False,
        version="9.9",
        routes=("bars", "quotes"),
    )
    registry = build_registry(sources)

    def scrape() -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {
            s.name + str(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    first = scrape()
    assert first["marketcast_ws_messages_sent_total[]"] == 107
    assert first["marketcast_ws_messages_dropped_total[('reason', 'conflated')]"] == 6
    assert first["marketcast_ws_outbox_messages[]"] == 3
    assert first["marketcast_ws_outbox_bytes[]"] == 300
    assert first["marketcast_ws_subscriptions[('route', 'bars')]"] == 1
    assert first["marketcast_ws_subscriptions[('route', 'quotes')]"] == 1
    assert first["marketcast_redis_up[]"] == 0
    assert first["marketcast_book_relay_asks_total[]"] == 4
    assert first["marketcast_book_relay_replays_total[]"] == 5
    assert first["marketcast_book_relay_gaps_total[]"] == 6
    assert first["marketcast_info[('version', '9.9')]"] == 1
    # Every bound has its series, crossed or not.
    for limit in ("queue", "lag", "waiting"):
        assert first[f"marketcast_ws_slow_consumers_total[('limit', '{limit}')]"] == 0
    stats.slow_consumer("lag")
    stats.turned_away(1013)
    again = scrape()
    assert again["marketcast_ws_slow_consumers_total[('limit', 'lag')]"] == 1
    assert again["marketcast_ws_connections_closed_total[('code', '1013')]"] == 1
    # The live connection left the live set but is not folded in yet: no dip.
    adapter.open_connections.clear()
    assert scrape()["marketcast_ws_messages_sent_total[]"] == 107
    stats.connection_closed(live)
    assert scrape()["marketcast_ws_messages_sent_total[]"] == 107
