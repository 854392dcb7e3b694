"""Abuse attacks over the WebSocket API, each within the documented limits or just at them.

Issue 19, "Measured" 2 (costly ``since`` frames), 3 (deep nesting), 5 (re-watching idle
simulator keys) and 6 (slow readers). Each function runs until ``ctx.deadline`` and returns
its tally; connections it opened are closed before it returns.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter
from typing import Final

from .attack_kit import (
    BYSTANDER_BARS,
    HOST,
    IDLE_SYMBOLS,
    SYMBOLS,
    AttackContext,
    Tally,
    bar_topics,
    classify,
    counting,
    open_many,
    open_ws,
    paced,
    settle_ws,
    subscribe_frame,
    unsubscribe_frame,
)
from .common import WS_PATH
from .rawws import WsClientProtocol, mask_frame

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
#: The documented rate limit: a burst of 250 frames, refilled at 50 per second.
BURST: Final = 250
RATE: Final = 50.0


# -- b: expensive frames inside the rate limit -----------------------------------------------


def _since_frames(count: int, first_id: int) -> list[bytes]:
    """``count`` subscribes with ``since: 0`` cycling over every (symbol, resolution). A topic
    already subscribed is answered ``already subscribed`` with a fresh recovery, the same
    work as the first time, so no unsubscribe is needed between rounds."""
    topics = bar_topics()
    return [subscribe_frame(*topics[n % len(topics)], first_id + n, since=0) for n in range(count)]


async def since_burst(ctx: AttackContext) -> Tally:
    """The whole burst (250 frames) at once on one connection, again once the bucket has
    refilled; on a new connection if the server closed the previous one, as an attacker
    would."""
    tally: Tally = Counter()
    protos: list[WsClientProtocol] = []
    bursts = 0
    while ctx.remaining() > 0 and bursts < 5:
        if not protos or protos[-1].closed.done():
            try:
                protos.append(await open_ws(ctx.port, counting(tally)))
            except (OSError, TimeoutError, ConnectionError):
                tally["connect_failed"] += 1
                break
        for frame in _since_frames(BURST, bursts * BURST):
            protos[-1].send_text(frame)
        tally["frames_sent"] += BURST
        bursts += 1
        await asyncio.sleep(min(BURST / RATE + 0.2, max(ctx.remaining(), 0.0)))
    tally["connections"] = len(protos)
    settle_ws(protos, tally)
    return tally


async def since_paced(ctx: AttackContext) -> Tally:
    """3 (quick) or 4 connections each sending 45 such frames per second: under the limit."""
    tally: Tally = Counter()
    protos = await open_many(ctx.port, 3 if ctx.quick else 4, counting(tally), tally)
    rate = 45.0
    limit = int(rate * ctx.duration_s) + 1

    async def one(index: int) -> None:
        frames = _since_frames(limit, 10_000 * (index + 1))
        await paced(rate, ctx.deadline, limit, lambda n: _send(protos[index], frames[n], tally))

    await asyncio.gather(*(one(i) for i in range(len(protos))))
    settle_ws(protos, tally)
    return tally


def _send(proto: WsClientProtocol, frame: bytes, tally: Tally) -> None:
    """Send on a connection the server has not closed; count what was really sent."""
    if not proto.closed.done():
        proto.send_text(frame)
        tally["frames_sent"] += 1


# -- d: deep nesting ---------------------------------------------------------------------------


def nested_frame(depth: int) -> bytes:
    """A ``bars.subscribe`` whose symbol is ``depth`` nested arrays (2 bytes per level)."""
    return b'{"type":"bars.subscribe","payload":{"symbol":' + b"[" * depth + b"]" * depth + b"}}"


async def deep_nesting(ctx: AttackContext) -> Tally:
    """20 connections at the rate limit, alternating 1,000 and 10,000 nested arrays."""
    tally: Tally = Counter()
    protos = await open_many(ctx.port, 20, counting(tally), tally)
    frames = (nested_frame(1_000), nested_frame(10_000))
    limit = int(RATE * ctx.duration_s) + 1

    async def one(index: int) -> None:
        proto = protos[index]
        await paced(RATE, ctx.deadline, limit, lambda n: _send(proto, frames[n % 2], tally))

    await asyncio.gather(*(one(i) for i in range(len(protos))))
    await asyncio.sleep(0.2)  # the last replies
    settle_ws(protos, tally)
    return tally


# -- f: slow readers ---------------------------------------------------------------------------


def slow_reader_topics() -> list[bytes]:
    """30 topics that update on every simulator tick: the 4 quotes and 26 bars."""
    frames = [
        b'{"type":"quotes.subscribe","id":%d,"payload":{"symbol":"%s"}}' % (n, s.encode())
        for n, s in enumerate(SYMBOLS)
    ]
    frames += [subscribe_frame(s, r, 100 + n) for n, (s, r) in enumerate(bar_topics()[:26])]
    return frames


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    if length > 1 << 24:
        raise ConnectionError(f"frame of {length} bytes")
    return head[0] & 0x0F, await reader.readexactly(length)


async def _slow_reader(ctx: AttackContext, tally: Tally) -> None:
    """Subscribe to 30 fast topics, then read one frame a second with default buffers.

    Its ``StreamReader`` stops reading the socket at 128 KiB, so the backlog builds up in
    the kernel and in the server, as it would for a slow real client. After the window it
    reads what is left (at most 2 s) to learn whether the server closed it, and how.
    """
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(HOST, ctx.port, limit=65_536)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {WS_PATH} HTTP/1.1\r\nHost: {HOST}:{ctx.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}"
            "\r\n\r\n".encode()
        )
        status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        tally["upgrade_refused"] += 1
        writer.transport.abort()
        return
    for frame in slow_reader_topics():
        writer.write(mask_frame(_TEXT, frame))
    outcome = "still_open"
    try:
        read, closed = await _read_phase(reader, writer, ctx.deadline, pause=1.0)
        tally["frames_read"] += read
        if closed is None:
            read, closed = await _read_phase(reader, writer, ctx.deadline + 2.0, pause=0.0)
            tally["frames_drained_after"] += read
        outcome = closed or outcome
    except (asyncio.IncompleteReadError, ConnectionError):
        outcome = "dropped"
    finally:
        tally[outcome] += 1
        writer.transport.abort()


async def _read_phase(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, until: float, pause: float
) -> tuple[int, str | None]:
    """Read frames until ``until`` (loop time), ``pause`` seconds apart; (frames read, the
    close code as a tally label if the server closed)."""
    loop = asyncio.get_running_loop()
    read = 0
    while read < 1_000_000:
        left = until - loop.time()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                opcode, payload = await _read_frame(reader)
        except TimeoutError:
            break
        read += 1
        if opcode == _CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            return read, f"close:{code}"
        if opcode == _PING:
            writer.write(mask_frame(_PONG, payload))
        if pause:
            await asyncio.sleep(min(pause, left))
    return read, None


async def slow_readers(ctx: AttackContext) -> Tally:
    """Three clients on 30 fast topics, each reading one frame a second."""
    tally: Tally = Counter()
    results = await asyncio.gather(
        *(_slow_reader(ctx, tally) for _ in range(3)), return_exceptions=True
    )
    tally["failed"] += sum(isinstance(r, BaseException) for r in results)
    return tally


# -- g: re-watching idle simulator keys --------------------------------------------------------

_RESOLUTION_S = {"1": 60, "3": 180, "5": 300, "15": 900, "30": 1800, "60": 3600}


def rewatch_keys() -> list[tuple[str, str]]:
    """25 one-minute keys (the most buckets per simulated hour), none the bystander's."""
    symbols = [s for s in SYMBOLS if s != BYSTANDER_BARS[0]] + list(IDLE_SYMBOLS)
    return [(s, "1") for s in symbols][:25]


def missed_buckets(idle_sim_s: float, keys: list[tuple[str, str]]) -> int:
    """Bars that keys idle for ``idle_sim_s`` simulated seconds missed, summed over keys."""
    return sum(int(max(idle_sim_s, 0.0) // _RESOLUTION_S[r]) for _, r in keys)


class Rewatch:
    """Watch 25 keys, let them go idle (``prepare``, at the start of the run), and come back
    to them much later in simulated time (``run``).

    Why the preparation comes first: a key only misses buckets while nobody watches it, and
    only the whole run is long enough in simulated time to make that hurt (at 600x, a
    minute of run is 600 missed one-minute bars per key); no other attack touches these keys.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.idle_since: float | None = None

    async def prepare(self, port: int) -> None:
        keys = rewatch_keys()
        replies = 0
        expected = len(keys)
        enough = asyncio.Event()

        def on_text(payload: bytes, _arrival_us: int) -> None:
            nonlocal replies
            if classify(payload) == "reply":
                replies += 1
                if replies >= expected:
                    enough.set()

        proto = await open_ws(port, on_text)
        try:
            for n, key in enumerate(keys):
                proto.send_text(subscribe_frame(*key, n))
            await asyncio.wait_for(enough.wait(), 15)
            enough.clear()
            expected = 2 * len(keys)
            for n, key in enumerate(keys):
                proto.send_text(unsubscribe_frame(*key, 100 + n))
            await asyncio.wait_for(enough.wait(), 15)
        except TimeoutError:
            raise RuntimeError(f"re-watch preparation: {replies} replies of {expected}") from None
        finally:
            proto.close()
        self.idle_since = asyncio.get_running_loop().time()

    async def run(self, ctx: AttackContext) -> Tally:
        """One connection subscribes to the 25 idle keys and reads what comes."""
        tally: Tally = Counter()
        keys = rewatch_keys()
        if self.idle_since is not None:
            idle_real = asyncio.get_running_loop().time() - self.idle_since - self.grace_s
            tally["idle_sim_s"] = int(idle_real * ctx.sim_speed)
            tally["missed_buckets"] = missed_buckets(idle_real * ctx.sim_speed, keys)
        try:
            proto = await open_ws(ctx.port, counting(tally))
        except (OSError, TimeoutError, ConnectionError):
            tally["connect_failed"] += 1
            return tally
        for n, key in enumerate(keys):
            proto.send_text(subscribe_frame(*key, n))
        await asyncio.sleep(max(ctx.remaining(), 0.0))
        settle_ws([proto], tally)
        return tally
