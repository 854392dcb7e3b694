"""What every benchmark process agrees on: symbols, frames, the clock, and the control lines.

The processes (orchestrator, one server under test, N client processes) talk over their
stdin/stdout pipes in JSON lines: one command in, one event out. Pipes need no port, cannot
reach another developer's process, and die with their owner.

Why the publish time travels in ``volume``: clients compute publish -> receipt latency from the
frame alone, without a side channel. ``time.monotonic_ns`` reads CLOCK_MONOTONIC, one clock for
the whole machine on Linux, so a stamp taken in the server process is comparable with the
clients' reading.

Why every benchmark update is a *closed* bar with a new open time: marketcast conflates
updates of the same open bar in a slow client's queue and drops closed bars at or before the
newest closed one; a closed bar with a later time than any before is never conflated nor
dropped, so every publish must reach every subscriber and the counts can be checked exactly.
Frames end in ``"closed":true}}``, which is how clients tell them from anything the simulator
sends (open bars).

Why ``BookFrames``: the deflate scenarios need frames of 1-2 KB, the size of order-book
levels or snapshots, where compression pays. marketcast has no order-book family, so a book
frame is the same closed-bar ``bars.update`` of the subscribed topic with 30 order-book levels
a side added before the bar's fields: every server routes it like any update, clients find
its stamp the same way, and its bytes compress like a real book in marketcast's style (float
prices on a 0.01 tick, mostly adjacent near the top; sizes a mix of round lots and amounts
with up to five decimals). The levels are drawn once from a fixed seed (64 variants), so every
server sends the same bytes and publishing costs no random draws.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
import zlib
from typing import Any, Final

import orjson

RESOLUTION: Final = "1"
WS_PATH = "/api/v1/ws"
#: Bar open times of benchmark updates start here (2100-01-01) and grow by a minute per
#: publish and topic: far after anything the simulator produces, so nothing is dropped.
BAR_TIME_BASE = 4_102_444_800_000
BAR_STEP_MS = 60_000
#: Constant prices: realistic magnitudes, so frames are as long as real ones (~190 bytes).
PRICES = (60_123.45, 60_200.5, 60_001.25, 60_150.75)
UPDATE_SUFFIX = b"true}}"
_VOLUME_KEY = b'"volume":'


def symbol(index: int) -> str:
    """The benchmark's ``index``-th symbol (served by the simulator feed of marketcast)."""
    return f"BENCH{index:03d}"


def topic_of(sym: str) -> str:
    """The bars topic of ``sym`` as marketcast spells it (``topic_params``, keys sorted)."""
    return 'bars:{"resolution":"' + RESOLUTION + '","symbol":"' + sym + '"}'


def subscribe_text(sym: str, request_id: int) -> bytes:
    return orjson.dumps(
        {
            "type": "bars.subscribe",
            "id": request_id,
            "payload": {"symbol": sym, "params": {"resolution": RESOLUTION}},
        }
    )


def update_payload(topic: str, sym: str, bar_time: int, stamp_us: int) -> dict[str, Any]:
    """The ``bars.update`` payload, field for field as marketcast writes it."""
    open_, high, low, close = PRICES
    return {
        "topic": topic,
        "symbol": sym,
        "resolution": RESOLUTION,
        "time": bar_time,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": float(stamp_us),
        "closed": True,
    }


def update_frame(topic: str, sym: str, bar_time: int, stamp_us: int) -> bytes:
    """One encoded ``bars.update`` frame — the baselines' serialize-once step."""
    payload = update_payload(topic, sym, bar_time, stamp_us)
    return orjson.dumps({"type": "bars.update", "payload": payload})


def stamp_of(frame: bytes) -> int:
    """The publish time (µs) carried in a benchmark update's ``volume`` (written as a float
    with a zero fraction, ``1234567.0``; only the integer digits are read)."""
    start = frame.rindex(_VOLUME_KEY, -64) + len(_VOLUME_KEY)
    return int(frame[start : frame.index(b".", start)])


#: Order-book levels a side in a ``BookFrames`` frame: ~1.3 KB frames.
BOOK_LEVELS = 30
#: Distinct books drawn at start-up; frame ``n`` of a topic carries one of them.
BOOK_VARIANTS = 64
#: Round lots that make up a share of a real book's sizes.
_LOTS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_BOOK_BAR = (
    f',"open":{PRICES[0]},"high":{PRICES[1]},"low":{PRICES[2]},"close":{PRICES[3]},"volume":'
).encode()
_BOOK_END = b'.0,"closed":true}}'


def book_side(rng: random.Random, sign: int, levels: int) -> list[list[float]]:
    """``levels`` [price, size] pairs moving away from the mid price (``sign`` -1: bids)."""
    price, side = PRICES[0], []
    for _ in range(levels):
        draw = rng.random()
        if draw < 0.7:
            step = 0.01
        elif draw < 0.9:
            step = rng.choice((0.02, 0.03, 0.05))
        else:
            step = rng.choice((0.1, 0.25, 0.5))
        price = round(price + sign * step, 2)
        if rng.random() < 0.4:
            size = rng.choice(_LOTS)
        else:
            size = round(rng.lognormvariate(-2, 1.5), 5) or 0.00001
        side.append([price, size])
    return side


class BookFrames:
    """The deflate scenarios' 1-2 KB frames (see the module's docstring)."""

    def __init__(
        self, topics: int, *, levels: int = BOOK_LEVELS, variants: int = BOOK_VARIANTS
    ) -> None:
        rng = random.Random(16)
        self._heads = [
            b'{"type":"bars.update","payload":{"topic":'
            + orjson.dumps(topic_of(symbol(i)))
            + f',"symbol":"{symbol(i)}","resolution":"{RESOLUTION}","time":'.encode()
            for i in range(topics)
        ]
        self._books = [
            b',"bids":'
            + orjson.dumps(book_side(rng, -1, levels))
            + b',"asks":'
            + orjson.dumps(book_side(rng, 1, levels))
            + _BOOK_BAR
            for _ in range(variants)
        ]

    def frame(self, index: int, bar_time: int, stamp_us: int) -> bytes:
        """Topic ``index``'s book frame for this bar, stamped ``stamp_us``."""
        books = self._books
        book = books[(bar_time // BAR_STEP_MS + index) % len(books)]
        return b"%s%d%s%d%s" % (self._heads[index], bar_time, book, stamp_us, _BOOK_END)


def deflate_ratio(frames: list[bytes], *, window_bits: int = 15, level: int = 9) -> float:
    """Compressed / plain size of ``frames``, each deflated on its own (permessage-deflate
    without context takeover: raw deflate, sync flush, the 4-byte tail removed), payloads
    only. At level 9 and a 15-bit window it is the floor for any server that compresses
    each message on its own, which a shared compressed frame must."""
    plain = packed = 0
    for data in frames:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -window_bits, 9)
        packed += len(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4
        plain += len(data)
    return packed / plain if plain else 1.0


def now_us() -> int:
    return time.monotonic_ns() // 1000


# -- process set-up ------------------------------------------------------------------------


def pin_to_cpu(cpu: int) -> None:
    """Run this process (and threads it starts later) on ``cpu`` only."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise SystemExit(f"cannot pin this process to CPU {cpu}: {exc}") from None


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise the open-files limit towards ``wanted`` (capped by the hard limit).

    Returns (soft, hard) after the change, so callers can report a shortfall.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft, hard


# -- control lines -------------------------------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    """Write one event line to stdout (the orchestrator reads it)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def stdin_reader() -> asyncio.StreamReader:
    """An asyncio reader of this process's stdin, for command lines."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def read_command(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next command, or None at end of input (the orchestrator went away)."""
    line = await reader.readline()
    if not line:
        return None
    command = json.loads(line)
    if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
        raise ValueError(f"a command must be a JSON object with a string 'cmd', got {line!r}")
    return command
