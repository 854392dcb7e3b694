"""``/metrics``: what the server is doing, in the Prometheus text format.

Why a custom collector instead of prometheus-client counters updated as things happen: the
publish path runs for every update to every client and must stay free of locks and label
lookups. Everything exported here is already counted as plain integers on the objects that do
the work — the hub (``published``), the stream manager (``repeats_dropped``), each connection
(``frames_sent``, its outbox's ``conflated`` and depth), the per-app ``FanoutStats`` (closed
connections' totals, frames by write path, the sampled latency histogram) — and is read only
when Prometheus scrapes. Feeds report their upstream through an optional ``status()``
(``feeds.status``).

Why a registry per app: ``create_app`` may build several apps in one process (tests do);
the global default registry would mix them and refuse the second one's names.

A counter made of live connections plus closed-connection totals can dip for an instant while
a closing connection is between the two (removed from the live set, not folded in yet);
``_Monotonic`` reports the highest value seen instead, which is the true count once the fold
lands. The endpoint is an ``async`` route so the collector runs on the event loop, the only
thread that touches these objects.

Metric names, labels and meanings are listed in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from marketcast.delivery.lag import LIMITS
from marketcast.delivery.stats import FanoutStats
from marketcast.feeds.status import feed_status

METRICS_PATH = "/metrics"


class MeteredOutbox(Protocol):
    @property
    def conflated(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def __len__(self) -> int: ...


class MeteredConnection(Protocol):
    @property
    def frames_sent(self) -> int: ...

    @property
    def outbox(self) -> MeteredOutbox: ...


class ConnectionsView(Protocol):
    """What the collector reads from the WebSocket adapter."""

    @property
    def open_connections(self) -> Mapping[str, MeteredConnection]: ...

    @property
    def stats(self) -> FanoutStats: ...


class TopicIndex(Protocol):
    """What the collector reads from the hub."""

    @property
    def published(self) -> int: ...

    def topics(self) -> list[str]: ...

    def subscriber_count(self, topic: str) -> int: ...


class RelayCounts(Protocol):
    """What the collector reads from the order-book relay (``cluster.book_relay``)."""

    @property
    def asks(self) -> int: ...

    @property
    def replays(self) -> int: ...

    @property
    def gaps(self) -> int: ...


class StreamsView(Protocol):
    """What the collector reads from the stream manager."""

    @property
    def repeats_dropped(self) -> int: ...

    @property
    def book_relay(self) -> RelayCounts: ...

    def active_keys(self) -> Sequence[object]: ...

    def stale_topics(self) -> Sequence[str]: ...


class NamedFeed(Protocol):
    @property
    def name(self) -> str: ...

    def symbols(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class MetricsSources:
    """Everything ``/metrics`` reports on; ``create_app`` fills it in."""

    connections: ConnectionsView
    hub: TopicIndex
    streams: StreamsView
    feeds: Sequence[NamedFeed]
    is_ready: Callable[[], bool]
    #: Whether every Redis answers; None when no Redis is configured.
    redis_healthy: Callable[[], bool] | None = None
    #: The bus, for an optional ``connected`` attribute (the Redis bus has one).
    bus: object | None = None
    version: str = ""
    #: Routes reported even when nobody subscribes to them, so their series always exist
    #: (the channel registry's).
    routes: Sequence[str] = ()


class _Monotonic:
    """The highest value seen per counter (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], float] = {}

    def __call__(self, value: float, *key: str) -> float:
        best = max(value, self._seen.get(key, 0.0))
        self._seen[key] = best
        return best


class MarketcastCollector(Collector):
    """Reads the server's own counters at scrape time."""

    def __init__(self, sources: MetricsSources) -> None:
        self._sources = sources
        self._monotonic = _Monotonic()

    def collect(self) -> Iterator[Metric]:
        yield from self._server()
        yield from self._connections()
        yield from self._topics()
        yield from self._updates()
        yield from self._upstreams()
        yield from self._services()

    # -- groups ---------------------------------------------------------------------------------

    def _server(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("marketcast_info", "Version of this server.", labels=["version"])
        info.add_metric([self._sources.version], 1)
        yield info
        yield _gauge(
            "marketcast_ready",
            "1 while the server accepts clients (started, not draining), else 0.",
            1 if self._sources.is_ready() else 0,
        )

    def _connections(self) -> Iterable[Metric]:
        view = self._sources.connections
        stats = view.stats
        conns = list(view.open_connections.values())
        depths = [len(c.outbox) for c in conns]
        yield _gauge("marketcast_ws_connections", "Open WebSocket connections.", len(conns))
        closed = CounterMetricFamily(
            "marketcast_ws_connections_closed",
            "WebSocket connections closed, by close code the server sent, its WebSocket "
            "layer's own included (1011: keepalive ping timeout) and 1013 refusals ('peer': "
            "the client or the network closed it; '4008': slow consumers).",
            labels=["code"],
        )
        for code, count in sorted(stats.closed.items()):
            closed.add_metric([code], count)
        yield closed
        slow = CounterMetricFamily(
            "marketcast_ws_slow_consumers",
            "Clients closed as slow consumers (4008), by the bound they crossed: 'queue' "
            "(their outbox overflowed), 'lag' (too far behind), 'waiting' (too many bytes "
            "waiting in total, socket buffers included).",
            labels=["limit"],
        )
        for limit in LIMITS:
            slow.add_metric([limit], stats.slow_consumers.get(limit, 0))
        yield slow
        yield CounterMetricFamily(
            "marketcast_ws_slow_consumer_resets",
            "Slow clients whose queued order-book diffs were replaced by one reset (the whole "
            "book at the newest seq) instead of closing them as slow consumers.",
            value=stats.resets,
        )
        sent = stats.sent + sum(c.frames_sent for c in conns)
        yield CounterMetricFamily(
            "marketcast_ws_messages_sent",
            "Frames written to WebSocket clients (updates, replies, errors, notices).",
            value=self._monotonic(sent, "sent"),
        )
        by_path = CounterMetricFamily(
            "marketcast_ws_messages_sent_by_path",
            "Frames written to WebSocket clients, by write path: 'direct' (to the socket's "
            "transport by the publisher), 'batched' (to the transport by the client's writer, "
            "several in one write), 'asgi' (through ASGI send: no transport reachable, or "
            "permessage-deflate). The startup log names the path expected.",
            labels=["path"],
        )
        by_path.add_metric(["direct"], stats.direct_frames)
        by_path.add_metric(["batched"], stats.batched_frames)
        by_path.add_metric(["asgi"], stats.asgi_frames)
        yield by_path
        dropped = CounterMetricFamily(
            "marketcast_ws_messages_dropped",
            "Frames a client did not get: 'conflated' (an open-bar update replaced by a newer "
            "one in its queue), 'slow_consumer' (queued when it was closed for reading too "
            "slowly), 'disconnected' (queued when it went away).",
            labels=["reason"],
        )
        conflated = stats.conflated + sum(c.outbox.conflated for c in conns)
        dropped.add_metric(["conflated"], self._monotonic(conflated, "conflated"))
        for reason in ("slow_consumer", "disconnected"):
            dropped.add_metric([reason], stats.unsent.get(reason, 0))
        yield dropped
        yield _gauge("marketcast_ws_outbox_messages", "Frames queued for all clients.", sum(depths))
        yield _gauge(
            "marketcast_ws_outbox_max_messages",
            "Frames queued for the most backed-up client.",
            max(depths, default=0),
        )
        yield _gauge(
            "marketcast_ws_outbox_bytes",
            "Bytes queued for all clients.",
            sum(c.outbox.nbytes for c in conns),
        )
        latency = stats.latency
        histogram = HistogramMetricFamily(
            "marketcast_fanout_latency_seconds",
            f"Time from an update's frame being built to it being written to a client's "
            f"socket; one frame in {stats.sample_every} per connection is timed.",
        )
        histogram.add_metric([], latency.buckets(), sum_value=latency.total)
        yield histogram

    def _topics(self) -> Iterable[Metric]:
        hub = self._sources.hub
        subscriptions = dict.fromkeys(self._sources.routes, 0)
        topics = dict.fromkeys(self._sources.routes, 0)
        for topic in hub.topics():
            route = topic.split(":", 1)[0]
            if route not in topics:
                continue  # an internal topic (a book relay's), no client's
            subscriptions[route] += hub.subscriber_count(topic)
            topics[route] += 1
        per_route = GaugeMetricFamily(
            "marketcast_ws_subscriptions",
            "Client subscriptions in this worker, by route (raw streams included).",
            labels=["route"],
        )
        distinct = GaugeMetricFamily(
            "marketcast_ws_topics",
            "Topics with at least one subscriber in this worker, by route.",
            labels=["route"],
        )
        for route in sorted(subscriptions):
            per_route.add_metric([route], subscriptions[route])
            distinct.add_metric([route], topics[route])
        yield per_route
        yield distinct

    def _updates(self) -> Iterable[Metric]:
        hub, streams = self._sources.hub, self._sources.streams
        yield CounterMetricFamily(
            "marketcast_updates_published",
            "Updates fanned out by this worker's hub (each serialized once).",
            value=hub.published,
        )
        yield CounterMetricFamily(
            "marketcast_updates_repeats_dropped",
            "Closed bars a feed repeated (gap-fill, takeover) and that were not published again.",
            value=streams.repeats_dropped,
        )
        yield _gauge(
            "marketcast_streams_active", "Upstream keys running.", len(streams.active_keys())
        )
        yield _gauge(
            "marketcast_streams_stale",
            "Running keys with no upstream data for several intervals.",
            len(streams.stale_topics()),
        )
        relay = streams.book_relay
        yield CounterMetricFamily(
            "marketcast_book_relay_gaps",
            "Relayed order-book diffs that did not continue the book this worker held (a bus "
            "message lost, a takeover): the book was asked for again.",
            value=relay.gaps,
        )
        yield CounterMetricFamily(
            "marketcast_book_relay_asks",
            "Whole order books this worker asked their owner for (a book it began serving, or "
            "one it lost track of).",
            value=relay.asks,
        )
        yield CounterMetricFamily(
            "marketcast_book_relay_replays",
            "Whole order books this worker, their owner, sent in answer to asks.",
            value=relay.replays,
        )

    def _upstreams(self) -> Iterable[Metric]:
        labels = ["feed"]
        symbols = GaugeMetricFamily(
            "marketcast_upstream_symbols", "Symbols served by each feed.", labels=labels
        )
        up = GaugeMetricFamily(
            "marketcast_upstream_up",
            "1 while a feed can deliver (its upstream connections are up), else 0.",
            labels=labels,
        )
        connections = GaugeMetricFamily(
            "marketcast_upstream_connections",
            "Open network connections to each feed's upstream.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "marketcast_upstream_last_message_age_seconds",
            "Seconds since each feed last received data.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "marketcast_upstream_lag_seconds",
            "Seconds by which each feed's newest data arrived late.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "marketcast_upstream_state",
            "1 for each feed's current state (running, connected, reconnecting...).",
            labels=["feed", "state"],
        )
        for feed in self._sources.feeds:
            symbols.add_metric([feed.name], len(feed.symbols()))
            status = feed_status(feed)
            if status is None:  # the feed does not report its upstream (yet)
                continue
            up.add_metric([feed.name], 1 if status.connected else 0)
            connections.add_metric([feed.name], status.connections)
            if status.last_message_age is not None:
                age.add_metric([feed.name], status.last_message_age)
            if status.lag is not None:
                lag.add_metric([feed.name], status.lag)
            if status.state:
                state.add_metric([feed.name, status.state], 1)
        yield from (symbols, up, connections, age, lag, state)

    def _services(self) -> Iterable[Metric]:
        healthy = self._sources.redis_healthy
        if healthy is not None:
            yield _gauge(
                "marketcast_redis_up", "1 while every Redis this worker uses answers.", healthy()
            )
        connected = getattr(self._sources.bus, "connected", None)
        if isinstance(connected, bool):
            yield _gauge(
                "marketcast_bus_connected",
                "1 while the cross-worker bus is subscribed and receiving.",
                connected,
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def build_registry(sources: MetricsSources) -> CollectorRegistry:
    """A registry of its own (never the global default) with marketcast's and process metrics."""
    registry = CollectorRegistry()
    registry.register(MarketcastCollector(sources))
    ProcessCollector(registry=registry)
    return registry


def mount_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """``GET /metrics``; not in the OpenAPI document (it is for Prometheus, not clients)."""

    async def metrics() -> Response:
        # An async route: the collector reads event-loop-owned objects on the loop's thread.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
