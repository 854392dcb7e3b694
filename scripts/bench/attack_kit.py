"""What every abuse attack shares: its bounds, its tally, topics, frames and connections.

Every attack is bounded twice: in time (``AttackContext.deadline``, after which it stops
sending and closes what it opened) and in count (a maximum number of requests, frames or
connections, whatever the server answers). Every connection goes to 127.0.0.1.

A tally is a ``Counter`` of labels, so refusals and closes can be reported as they came:
``http:429``, ``error:rate_limited``, ``close:1008``, ``dropped`` (TCP closed without a close
frame), ``connect_failed``, ``timeout``...
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import orjson

from .common import WS_PATH, now_us
from .rawws import WsClientProtocol

HOST: Final = "127.0.0.1"
#: The simulator's default symbols (``marketcast.settings.DEFAULT_SIM_SYMBOLS``).
SYMBOLS: Final[tuple[str, ...]] = ("BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL")
#: Extra simulator symbols that only the re-watch attack uses: 25 one-minute keys need more
#: symbols than the defaults, and keys nothing else touches stay idle for the whole run.
IDLE_SYMBOLS: Final[tuple[str, ...]] = tuple(f"IDLE{n:02d}" for n in range(1, 23))
RESOLUTIONS: Final[tuple[str, ...]] = ("1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M")
#: The bystander's bars key (``bystander.SUBSCRIPTIONS``), which no attack lets go idle.
BYSTANDER_BARS: Final[tuple[str, str]] = ("BTCUSDT", "1")
CONNECT_TIMEOUT_S: Final = 10.0

Tally = Counter[str]


@dataclass(frozen=True)
class AttackContext:
    """Where and how long to attack. ``deadline`` is on the running loop's clock."""

    port: int
    duration_s: float
    deadline: float
    quick: bool
    #: This process's open-files soft limit (the server inherited the same one).
    nofile: int
    #: Simulated seconds per real second (for what the re-watch attack should provoke).
    sim_speed: float

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


def bar_topics() -> list[tuple[str, str]]:
    """Every (symbol, resolution) the simulator serves, finest resolution first."""
    return [(s, r) for r in RESOLUTIONS for s in SYMBOLS]


def subscribe_frame(
    symbol: str, resolution: str, request_id: int, *, since: int | None = None
) -> bytes:
    payload: dict[str, object] = {"symbol": symbol, "params": {"resolution": resolution}}
    if since is not None:
        payload["since"] = since
    return orjson.dumps({"type": "bars.subscribe", "id": request_id, "payload": payload})


def unsubscribe_frame(symbol: str, resolution: str, request_id: int) -> bytes:
    payload = {"symbol": symbol, "params": {"resolution": resolution}}
    return orjson.dumps({"type": "bars.unsubscribe", "id": request_id, "payload": payload})


_CODE = re.compile(rb'"code":"([a-z_]{1,40})"')


def classify(payload: bytes) -> str:
    """The tally label of one server frame, from its first bytes only (replies to some
    attacks are 100 KB; nothing is decoded)."""
    head = payload[:600]
    if head.startswith(b'{"type":"error"'):
        found = _CODE.search(head)
        return "error:" + (found.group(1).decode() if found else "?")
    if head.startswith((b'{"type":"bars.update"', b'{"type":"quotes.update"')):
        return "update"
    if b'.response"' in head[:48]:
        return "reply"
    if head.startswith(b'{"type":"pong"'):
        return "pong"
    if head.startswith(b'{"type":"notice"'):
        return "notice"
    return "other"


def counting(tally: Tally) -> Callable[[bytes, int], None]:
    """A ``WsClientProtocol`` text callback that tallies every frame by ``classify``."""

    def on_text(payload: bytes, _arrival_us: int) -> None:
        tally[classify(payload)] += 1

    return on_text


async def open_ws(port: int, on_text: Callable[[bytes, int], None]) -> WsClientProtocol:
    """A WebSocket connection to the server's API endpoint (raises on failure, in time)."""
    loop = asyncio.get_running_loop()

    def factory() -> WsClientProtocol:
        return WsClientProtocol(HOST, port, WS_PATH, on_text, now_us)

    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        _, proto = await loop.create_connection(factory, HOST, port)
        try:
            await proto.opened
        except BaseException:
            proto.abort()
            raise
    return proto


async def open_many(
    port: int, count: int, on_text: Callable[[bytes, int], None], tally: Tally
) -> list[WsClientProtocol]:
    """``count`` connections opened together; failures are tallied, not raised."""
    results = await asyncio.gather(
        *(open_ws(port, on_text) for _ in range(count)), return_exceptions=True
    )
    opened = []
    for result in results:
        if isinstance(result, WsClientProtocol):
            opened.append(result)
        elif isinstance(result, BaseException):
            tally["connect_failed"] += 1
    return opened


def settle_ws(protos: Iterable[WsClientProtocol], tally: Tally) -> None:
    """Tally how each connection ended (the server's close code, or dropped) and close the
    ones still open: the attack is over."""
    for proto in protos:
        if proto.closed.done():
            tally[f"close:{proto.close_code}" if proto.close_code else "dropped"] += 1
        else:
            proto.close()
            proto.abort()


async def paced(
    rate: float, deadline: float, limit: int, action: Callable[[int], Awaitable[None] | None]
) -> int:
    """Call ``action(n)`` at ``rate`` per second from now until ``deadline`` (loop time), at
    most ``limit`` times; calls that fell behind run at once, so the rate holds on average.
    Returns the number of calls."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    done = 0
    while done < limit:
        due = start + done / rate
        if due >= deadline:
            break
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        outcome = action(done)
        if outcome is not None:
            await outcome
        done += 1
    return done
