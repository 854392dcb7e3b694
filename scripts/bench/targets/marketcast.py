"""marketcast as deployed: ``create_app(settings)`` served by uvicorn, published into through
``StreamManager.on_candle`` — the path every feed uses (store, then bus, hub, outboxes,
per-client writers).

The simulator feed is kept (it is what serves the benchmark symbols) but idled: one simulated
trade per minute (``sim_tick_interval=60``) at a thousandth of real speed, so no simulated bar
closes during a run; its open-bar updates are dropped by ``on_candle`` once the benchmark's
closed bars (dated 2100) exist, and clients ignore the few that come before.
Settings come from ``MARKETCAST_*`` variables on top of these, so a run can try other limits.

The WebSocket protocol class and the permessage-deflate switch are read from the server
``marketcast serve`` builds (``serving.build_server``), so the benchmark offers compression on
the same terms as production. The deflate scenarios publish ``common.BookFrames`` frames: no
marketcast family builds 1-2 KB updates, so they are handed to the hub as ``wire.Frame``
objects of the subscribed bars topic (``Hub.publish``, what the in-memory bus calls) and take
the same fan-out as every update from there: hub, connections, direct writes or outboxes.
Only ``on_candle``'s store write and frame building are left out, in both deflate scenarios.

``book_levels`` goes through marketcast's order-book path end to end: clients subscribe with
``orderbook.subscribe`` (levels, depth 20), and each publish hands the symbol's next change
(``books.LevelSource``: a ``Reset`` first, then ``Applied`` diffs) to
``StreamManager.on_book``, the call a book feed makes, so the book update, the levels
throttle (``book.served``), the frame building and the fan-out are all measured. The
simulator's own book changes (its first book when a topic starts, a step per tick) are
dropped on their way to ``on_book``: only the benchmark's changes move the served book, so
every server serves the same one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, cast

import marketcast
from marketcast.app import create_app
from marketcast.book.binance_sync import Applied, Reset
from marketcast.delivery.hub import Hub
from marketcast.market import BarKey, Candle
from marketcast.settings import Settings
from marketcast.streams import StreamManager
from marketcast.wire import Frame

from ..books import LevelSource
from ..common import PRICES, RESOLUTION, BookFrames, symbol
from . import FRAMES, versions
from .uvicorn_host import UvicornHost, UvicornServed

#: The benchmark's defaults; a MARKETCAST_* variable set by the caller wins.
BENCH_SETTINGS = {
    "sim_tick_interval": "60",
    "sim_speed": "0.001",
    "log_level": "warning",
}


def bench_settings(topics: int) -> Settings:
    for name, value in BENCH_SETTINGS.items():
        os.environ.setdefault(f"MARKETCAST_{name.upper()}", value)
    os.environ["MARKETCAST_SIM_SYMBOLS"] = ",".join(symbol(i) for i in range(topics))
    return Settings()


def deployed_ws(app: Any, settings: Settings) -> tuple[Any, bool]:
    """(uvicorn ``ws`` option, permessage-deflate on) as ``marketcast serve`` sets them; an
    older marketcast (``--marketcast-src``) without ``build_server`` gets uvicorn's protocol
    and its own setting."""
    deflate = bool(getattr(settings, "ws_per_message_deflate", False))
    try:
        from marketcast.serving import build_server
    except ImportError:
        return "websockets-sansio", deflate
    config = build_server(app, settings).config
    return config.ws, bool(config.ws_per_message_deflate)


class MarketcastTarget(UvicornServed):
    name = "marketcast"

    def __init__(self, topics: int, frame: str = "bar") -> None:
        self.settings = bench_settings(topics)
        where = os.path.dirname(os.path.dirname(os.path.abspath(marketcast.__file__)))
        self.source = f"marketcast {marketcast.__version__} from {where}, " + versions(
            "fastapi", "uvicorn"
        )
        app = self.app = create_app(self.settings)
        self.streams = cast(StreamManager, app.state.streams)
        self.keys = [BarKey(symbol(i), RESOLUTION) for i in range(topics)]
        self.hub = cast(Hub, app.state.adapter.hub)
        self.topics = [self.streams.topic(key) for key in self.keys]
        self.books = BookFrames(topics) if frame == "book" else None
        if frame not in FRAMES:
            raise ValueError(f"unknown frame kind {frame!r}")
        self.symbols = [symbol(i) for i in range(topics)]
        self.levels = LevelSource(topics) if frame == "levels" else None
        #: The real ``StreamManager.on_book``; the feeds' calls are dropped (module docstring).
        self.on_book: Callable[[str, Applied | Reset], Awaitable[None]] = self.streams.on_book
        self.feed_book_changes = 0
        if self.levels is not None:
            setattr(self.streams, "on_book", self._feed_book)  # noqa: B010 (shadows a method)
        ws, self.deflate = deployed_ws(app, self.settings)
        self.host = UvicornHost(
            app,
            lifespan="on",
            ws=ws,
            per_message_deflate=self.deflate,
            max_message_bytes=self.settings.max_message_bytes,
            # Newer settings carry the ping options; the same 20 s as everywhere otherwise.
            ping_interval=getattr(self.settings, "ws_ping_interval", 20.0),
            ping_timeout=getattr(self.settings, "ws_ping_timeout", 20.0),
        )

    async def _feed_book(self, symbol: str, change: Applied | Reset) -> None:
        """A feed's own book change: not served (see the module docstring)."""
        self.feed_book_changes += 1

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        levels = self.levels
        if levels is not None:
            update = levels.next(index, stamp_us, bar_time)
            if update.reset:
                change: Applied | Reset = Reset(update.seq, update.bids, update.asks)
            else:
                change = Applied(update.prev_seq, update.seq, update.bids, update.asks, bar_time)
            await self.on_book(self.symbols[index], change)
            return
        books = self.books
        if books is not None:
            text = books.frame(index, bar_time, stamp_us).decode()
            self.hub.publish(Frame(text, self.topics[index], bar_time, True))
            return
        open_, high, low, close = PRICES
        candle = Candle(bar_time, open_, high, low, close, float(stamp_us), closed=True)
        await self.streams.on_candle(self.keys[index], candle)
