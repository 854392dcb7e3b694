"""``create_app``: builds every part from settings and wires them together.

This is the only place that knows which implementation sits behind each seam (feed, store,
bus). Nothing imports this module except the CLI and tests, so the rest of the package can be
read and tested without the whole server.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastws import OperationRouter

from marketcast import __version__
from marketcast.channels.base import Family, Registry
from marketcast.channels.listing import LIST_CHANNEL
from marketcast.channels.registry import default_registry
from marketcast.delivery.hub import Hub
from marketcast.delivery.lag import SlowConsumerLimits
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.stats import FanoutStats
from marketcast.delivery.sweep import SlowConsumerSweep
from marketcast.delivery.transport import EntryFirstApp, WebSocketEntry, WebSocketHandler
from marketcast.demo_page import default_frontend_dir, mount_demo_page
from marketcast.feeds.base import Feed
from marketcast.feeds.factory import build_feeds
from marketcast.gcpolicy import GcFreezer
from marketcast.lifecycle import Lifecycle
from marketcast.metrics import MetricsSources, build_registry, mount_metrics
from marketcast.ratelimit import ClientBuckets
from marketcast.rest import build_rest_router, install_error_bodies
from marketcast.rest_docs import mount_rest_docs
from marketcast.rest_limit import RestRateLimit
from marketcast.services import open_services
from marketcast.settings import Settings
from marketcast.staleness import StalenessTracker
from marketcast.streams import StreamManager
from marketcast.subscriptions import Subscriptions
from marketcast.ws.adapter import FastWSAdapter
from marketcast.ws.docs_page import default_assets_dir, mount_asyncapi_docs
from marketcast.ws.examples import examples
from marketcast.ws.limits import ConnectionLimits
from marketcast.ws.limits import describe as describe_limits
from marketcast.ws.listing import build_listing_router
from marketcast.ws.raw_stream_docs import raw_stream_channels
from marketcast.ws.raw_streams import raw_stream_routes
from marketcast.ws.routes import message_specs
from marketcast.ws.security import TokenVerifier, TopicAuthorizer, build_gate, topic_guard
from marketcast.ws.spec import build_asyncapi
from marketcast.ws.system import build_system_router

log = logging.getLogger("marketcast")

WS_PATH = "/api/v1/ws"
ASYNCAPI_PATH = "/api/v1/ws/asyncapi"


def describe_api(channels: Registry) -> str:
    """The document's introduction, naming the families this app serves."""
    first = next(iter(channels))
    subscribes = ", ".join(f"`{f.route}.subscribe`" for f in channels)
    streams = ", ".join(
        f"`{WS_PATH}/stream/{f.route}/"
        + "/".join(f"{{{n}}}" for n in ("symbol", *f.param_names))
        + "`"
        for f in channels
    )
    example = first.topic(first.make_key("BTCUSDT", _example_params(first)))
    return (
        f"Real-time market data over one WebSocket. Send {subscribes} with a symbol (and the "
        "family's params) and receive `*.update` messages for the topic in the reply, e.g. "
        f"`{example}`. Every request may carry an `id`, echoed in its reply or error. Refused "
        "frames get an `error` message and the connection stays open. Quick consumers may "
        "instead open a raw stream, which pushes one topic's updates with no subscribe "
        f"message: {streams} (channels `stream/...` below).\n\n"
        "**Compression.** Unless `MARKETCAST_WS_PER_MESSAGE_DEFLATE` is off, the server "
        "accepts a permessage-deflate offer (RFC 7692) with `server_no_context_takeover` and "
        "`client_no_context_takeover`, and any `server_max_window_bits` from 9 to 15: each "
        "message is compressed on its own, once for every client that negotiated the same "
        "window, so compression costs the server one compression per update. Messages under "
        "64 bytes are sent uncompressed (RSV1 clear), as RFC 7692 allows. A client that does "
        "not offer it gets plain frames."
    )


def _example_params(family: Family) -> dict[str, Any]:
    """The params of the family's subscribe example (its declaration's)."""
    example = family.docs.examples.get(f"{family.route}.subscribe", {})
    params = example.get("payload", {}).get("params", {})
    return dict(params) if isinstance(params, dict) else {}


def channel_descriptions(channels: Registry) -> dict[str, str]:
    """Each family's channel description, its rule for slow clients included."""
    described = {f.route: f"{f.docs.channel} {f.docs.slow_client}" for f in channels}
    described[LIST_CHANNEL] = (
        "What this connection is subscribed to: `subscriptions.list` answers with every topic "
        "it receives, in the order it subscribed, each with its route, symbol and params "
        "(an entry per family, told apart by `route`)."
    )
    described["system"] = "Application-level ping/pong and errors."
    return described


#: The committed document's server: a variable, filled in only by a running server.
CONTRACT_SERVER = "{host}"
CONTRACT_SERVER_VARIABLES = {
    "host": {
        "description": "The server's `host:port` (`MARKETCAST_HOST`, `MARKETCAST_PORT`, or "
        "`MARKETCAST_PUBLIC_WS_URL` behind a proxy); the document a running server serves "
        "names its own.",
        "examples": ["127.0.0.1:8000"],
    }
}


def build_spec(
    adapter: FastWSAdapter, channels: Registry, settings: Settings | None = None
) -> dict[str, Any]:
    """The AsyncAPI document of ``adapter``'s routes.

    Without ``settings`` it is the contract committed as ``docs/asyncapi.json``: the server
    is a variable and the limits are named, not stated, so that neither a deployment's
    settings nor a changed default changes the contract and the types generated from it.
    With them, it is what this server serves: its URL and its limits filled in.
    """
    if settings is None:
        server, variables = CONTRACT_SERVER, CONTRACT_SERVER_VARIABLES
    else:
        server, variables = settings.public_ws_url or f"{settings.host}:{settings.port}", None
    return build_asyncapi(
        message_specs(adapter.operations(), examples(channels)),
        title="marketcast WebSocket API",
        version=__version__,
        description=describe_api(channels) + "\n\n" + describe_limits(settings),
        server_url=server,
        server_variables=variables,
        ws_path=WS_PATH,
        channel_descriptions=channel_descriptions(channels),
        extra_channels=raw_stream_channels(WS_PATH, channels),
    )


def load_router(family: Family) -> OperationRouter:
    """The family's generated router (``make generate-ws-routers``), freshly built."""
    module = family.router_module or f"marketcast.ws.generated.{family.route}"
    router: OperationRouter = importlib.import_module(module).build_router()
    return router


def create_app(
    settings: Settings | None = None,
    *,
    authorize_topic: TopicAuthorizer | None = None,
    token_verifier: TokenVerifier | None = None,
    channels: Registry | None = None,
    feeds: Sequence[Feed] | None = None,
) -> FastAPI:
    """Build the whole server; nothing is shared between two apps.

    ``authorize_topic(principal, route, topic)`` may refuse a subscription (default: allow
    all); ``token_verifier(token)`` replaces the configured ``MARKETCAST_AUTH_TOKENS``;
    ``channels`` the families served (default: every shipped one); ``feeds`` the sources
    (default: the ones the settings pick).
    """
    channels = channels or default_registry()
    settings = settings or Settings()
    gate = build_gate(settings.allowed_origins, settings.auth_tokens, token_verifier)
    lifecycle = Lifecycle()
    # Store, bus and upstream ownership by URL: memory (one worker) or Redis (a cluster).
    services = open_services(settings)
    store, bus = services.store, services.bus
    if feeds is None:
        feeds = build_feeds(settings)  # simulator, Binance, Twelve Data: by symbol (settings)
    # Full GC collections off the fan-out: freeze after start-up and after new histories.
    gc_freezer = GcFreezer(enabled=settings.gc_freeze)
    hub = Hub(on_new_topic=gc_freezer.soon)
    streams = StreamManager(
        feeds,
        store,
        bus,
        grace_period=settings.stream_grace_period,
        history_size=settings.store_capacity,
        ownership=services.ownership,
        staleness=StalenessTracker(
            intervals=settings.stale_after_intervals, max_seconds=settings.stale_max_seconds
        ),
        max_concurrent_history=settings.max_concurrent_history,
        channels=channels,
        recent=services.recent,
        hub=hub,
    )
    services.attach(streams, hub, history_size=settings.store_capacity)
    subscriptions = Subscriptions(
        streams,
        hub,
        max_per_connection=settings.max_subscriptions,
        guard=None if authorize_topic is None else topic_guard(authorize_topic),
    )
    stats = FanoutStats(settings.metrics_latency_sample_every)
    # Once a second: clients too far behind (kernel send queue included) are closed (4008).
    sweep = SlowConsumerSweep(
        SlowConsumerLimits(settings.slow_consumer_lag, settings.outbox_max_bytes), stats
    )
    adapter = FastWSAdapter(
        hub=hub,
        subscriptions=subscriptions,
        outbox_factory=lambda: Outbox(settings.outbox_max_messages, settings.outbox_max_bytes),
        max_message_bytes=settings.max_message_bytes,
        spec_builder=lambda a: build_spec(a, channels, settings),
        gate=gate,
        lifecycle=lifecycle,
        limits=ConnectionLimits.from_settings(settings),
        stats=stats,
        resets=streams.books.reset_frame,
        title="marketcast WebSocket API",
        version=__version__,
    )
    for family in channels:
        adapter.include_router(load_router(family))
    adapter.include_router(build_listing_router(channels))
    adapter.include_router(build_system_router())
    lifecycle.add_drainer(adapter.drain)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.start()
        await bus.start(hub.publish)
        await streams.start()
        gc_freezer.freeze_now()
        sweep.start()
        lifecycle.mark_ready()
        loop = type(asyncio.get_running_loop())
        log.info(
            "marketcast ready: %d symbols, event loop %s.%s",
            len(streams.symbols()),
            loop.__module__,
            loop.__qualname__,
        )
        try:
            yield
        finally:
            # Already done when ``marketcast serve`` drained on SIGTERM; otherwise (another
            # ASGI server) the server has usually closed the sockets itself by now.
            gc_freezer.cancel()
            await lifecycle.drain()
            sweep.stop()
            lifecycle.mark_stopped()
            await streams.close()
            await bus.close()
            await store.close()
            await services.close()

    # ``EntryFirstApp``: the WebSocket paths below reach their handler straight from the app's
    # ``__call__``, without FastAPI's outer middleware frames (``delivery.transport``).
    app = EntryFirstApp(
        title="marketcast",
        version=__version__,
        description="REST side of marketcast: history, symbols, health. "
        f"The WebSocket API is documented at {ASYNCAPI_PATH}.",
        lifespan=lifespan,
        # Served offline by mount_rest_docs instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    # Raw streams: one topic per connection, no subscribe message; same gate, limits, hub.
    raw_stream = raw_stream_routes(adapter, subscriptions, ws_path=WS_PATH, channels=channels)

    def websocket_route(path: str) -> WebSocketHandler | None:
        # ``serve_socket`` itself rather than ``endpoint``, which only calls it: one coroutine
        # frame less for every connection's lifetime.
        return adapter.serve_socket if path == WS_PATH else raw_stream(path)

    if settings.rest_rate_limit_per_second > 0:
        # Per client address, before routing: a refusal costs next to nothing. Added before
        # the WebSocket entry so that it wraps only HTTP: no frame of it per WebSocket.
        app.add_middleware(
            RestRateLimit,
            buckets=ClientBuckets(
                settings.rest_rate_limit_per_second, settings.rest_rate_limit_burst, time.monotonic
            ),
            prefix="/api/v1/market-data/",
        )
    # Keeps uvicorn's own ``send`` reachable (direct writes, aborting a peer that reads
    # nothing) and serves the WebSocket paths without the router's per-connection layers.
    app.add_middleware(WebSocketEntry, routes=websocket_route)
    install_error_bodies(app)
    app.include_router(
        build_rest_router(
            streams,
            is_ready=lambda: lifecycle.is_ready() and services.healthy(),
            connection_count=lambda: len(adapter.open_connections),
        )
    )
    mount_rest_docs(app, title="marketcast")
    mount_asyncapi_docs(
        app,
        spec_provider=adapter.asyncapi,
        base_path=ASYNCAPI_PATH,
        assets_dir=default_assets_dir(),
    )
    # The live chart at ``/``, built from frontend-types/demo by ``make setup``.
    mount_demo_page(app, frontend_dir=default_frontend_dir())
    if settings.metrics_enabled:
        uses_redis = any(u.startswith("redis") for u in (settings.store_url, settings.bus_url))
        sources = MetricsSources(
            connections=adapter,
            hub=hub,
            streams=streams,
            feeds=feeds,
            is_ready=lifecycle.is_ready,
            redis_healthy=services.healthy if uses_redis else None,
            bus=bus,
            version=__version__,
            routes=channels.routes,
        )
        mount_metrics(app, build_registry(sources))
    app.state.adapter = adapter
    app.state.streams = streams
    app.state.lifecycle = lifecycle
    return app
