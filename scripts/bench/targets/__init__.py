"""The servers under test: marketcast and the baselines it is compared with.

Each target serves WebSocket clients on a listening socket it is given, answers the same
``bars.subscribe`` request (``orderbook.subscribe`` in ``book_levels``), and publishes one
update to every subscriber of a topic when ``publish`` is called — marketcast through its
real publish path, each baseline the way its library documents fan-out. The baselines are
written here, from the libraries' public APIs, so that one benchmark run measures everything
on the same machine under the same noise.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from importlib.metadata import version
from typing import Protocol


class Target(Protocol):
    """A server under test, run inside the benchmark's server process."""

    #: Short name used in tables, flags and the JSON line.
    name: str
    #: What is being served, with versions (and for marketcast, where it was imported from).
    source: str

    async def serve(self, sock: socket.socket, on_ready: Callable[[], None]) -> None:
        """Serve clients on ``sock`` (already bound) until ``stop``; call ``on_ready`` once
        connections are being accepted."""
        ...

    def stop(self) -> None:
        """Ask ``serve`` to return soon."""
        ...

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        """Publish one update of topic ``index`` (bar open time, publish stamp in µs)."""
        ...


#: Target name -> a one-line description for tables and ``--help``.
DESCRIPTIONS = {
    "marketcast": "marketcast: create_app + uvicorn, StreamManager.on_candle -> hub -> outboxes",
    "fastws": "stock FastWS 0.1.7 broadcast() on FastAPI + uvicorn",
    "websockets": "bare websockets server, library broadcast() (deflate: per connection)",
    "naive": "FastAPI + uvicorn, naive `await send_text` loop per update",
    "raw": "bare websockets server, each frame encoded (deflate: compressed) once and written "
    "raw to every transport",
}


def versions(*packages: str) -> str:
    """``name version`` of each installed package, for the report."""
    return ", ".join(f"{p} {version(p)}" for p in packages)


#: The targets that can publish ``common.BookFrames`` (the deflate scenarios) and order-book
#: levels frames (``book_levels``, see ``books``); the others publish bars only.
BOOK_TARGETS = ("marketcast", "websockets", "raw")
#: What a target may be asked to publish: ``bar`` (every scenario), ``book`` (1-2 KB bars
#: frames, the deflate scenarios) or ``levels`` (order-book levels-20 frames).
FRAMES = ("bar", "book", "levels")


def build_target(name: str, topics: int, frame: str = "bar") -> Target:
    """The target called ``name``, serving ``topics`` benchmark symbols; ``frame`` is one of
    ``FRAMES``, other than ``bar`` for ``BOOK_TARGETS`` only."""
    if frame != "bar" and name not in BOOK_TARGETS:
        raise ValueError(f"target {name!r} publishes bars only, not {frame!r} frames")
    if name == "marketcast":
        from .marketcast import MarketcastTarget

        return MarketcastTarget(topics, frame)
    if name == "fastws":
        from .fastws_stock import FastWSTarget

        return FastWSTarget(topics)
    if name == "websockets":
        from .websockets_bare import WebsocketsTarget

        return WebsocketsTarget(topics, frame)
    if name == "naive":
        from .naive import NaiveTarget

        return NaiveTarget(topics)
    if name == "raw":
        from .websockets_raw import WebsocketsRawTarget

        return WebsocketsRawTarget(topics, frame)
    raise ValueError(f"unknown target {name!r}: expected one of {', '.join(DESCRIPTIONS)}")
