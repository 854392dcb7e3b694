"""``create_app``: builds every part from settings and wires them together.

This is the only place that knows which implementation sits behind each seam (feed, store,
bus). Nothing imports this module except the CLI and tests, so the rest of the package can be
read and tested without the whole server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from marketcast import __version__
from marketcast.bus.memory import MemoryBus
from marketcast.errors import CloseCode
from marketcast.feeds.simulator import SimulatorFeed
from marketcast.rest import build_rest_router
from marketcast.settings import Settings
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.subscriptions import Subscriptions
from marketcast.ws.adapter import FastWSAdapter
from marketcast.ws.docs_page import default_assets_dir, mount_asyncapi_docs
from marketcast.ws.generated.bars import build_router as build_bars_router
from marketcast.ws.generated.quotes import build_router as build_quotes_router
from marketcast.ws.hub import Hub
from marketcast.ws.outbox import Outbox
from marketcast.ws.routes import message_specs
from marketcast.ws.spec import build_asyncapi
from marketcast.ws.system import build_system_router

log = logging.getLogger("marketcast")

WS_PATH = "/api/v1/ws"
ASYNCAPI_PATH = "/api/v1/ws/asyncapi"

DESCRIPTION = (
    "Real-time market data over one WebSocket. Send `bars.subscribe` or `quotes.subscribe` "
    "with a symbol (and a resolution for bars) and receive `*.update` messages for the topic "
    'in the reply, e.g. `bars:{"resolution":"1","symbol":"BTCUSDT"}`. Every request may '
    "carry an `id`, echoed in its reply or error. Refused frames get an `error` message and "
    "the connection stays open."
)

CHANNEL_DESCRIPTIONS = {
    "bars": "Candles per symbol and resolution; snapshots and recovery with `since`.",
    "quotes": "Quotes (bid, ask, last) per symbol.",
    "system": "Application-level ping/pong and errors.",
}


def build_spec(adapter: FastWSAdapter, settings: Settings) -> dict[str, Any]:
    """The AsyncAPI document of ``adapter``'s routes."""
    server = settings.public_ws_url or f"{settings.host}:{settings.port}"
    return build_asyncapi(
        message_specs(adapter.operations()),
        title="marketcast WebSocket API",
        version=__version__,
        description=DESCRIPTION,
        server_url=server,
        ws_path=WS_PATH,
        channel_descriptions=CHANNEL_DESCRIPTIONS,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the whole server; nothing is shared between two apps."""
    settings = settings or Settings()
    store = MemoryCandleStore(settings.store_capacity)
    bus = MemoryBus()
    feed = SimulatorFeed.from_settings(settings)
    streams = StreamManager(
        [feed],
        store,
        bus,
        grace_period=settings.stream_grace_period,
        history_size=settings.store_capacity,
    )
    hub = Hub()
    subscriptions = Subscriptions(streams, hub, max_per_connection=settings.max_subscriptions)
    adapter = FastWSAdapter(
        hub=hub,
        subscriptions=subscriptions,
        outbox_factory=lambda: Outbox(settings.outbox_max_messages, settings.outbox_max_bytes),
        max_message_bytes=settings.max_message_bytes,
        spec_builder=lambda a: build_spec(a, settings),
        title="marketcast WebSocket API",
        version=__version__,
    )
    adapter.include_router(build_bars_router())
    adapter.include_router(build_quotes_router())
    adapter.include_router(build_system_router())
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await bus.start(hub.publish)
        await streams.start()
        state["ready"] = True
        log.info("marketcast ready: %d symbols", len(streams.symbols()))
        try:
            yield
        finally:
            state["ready"] = False
            for conn in list(adapter.open_connections.values()):
                await conn.close(CloseCode.GOING_AWAY, "server shutting down")
            await streams.close()
            await bus.close()
            await store.close()

    app = FastAPI(
        title="marketcast",
        version=__version__,
        description="REST side of marketcast: history, symbols, health. "
        f"The WebSocket API is documented at {ASYNCAPI_PATH}.",
        lifespan=lifespan,
    )
    app.add_api_websocket_route(WS_PATH, adapter.endpoint)
    app.include_router(
        build_rest_router(
            streams,
            is_ready=lambda: state["ready"],
            connection_count=lambda: len(adapter.open_connections),
        )
    )
    mount_asyncapi_docs(
        app,
        spec_provider=adapter.asyncapi,
        base_path=ASYNCAPI_PATH,
        assets_dir=default_assets_dir(),
    )
    app.state.adapter = adapter
    app.state.streams = streams
    return app
