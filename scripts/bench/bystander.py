"""The abuse benchmark's bystander: one well-behaved client whose experience is the figure.

Run by ``abuse`` as ``python -m scripts.bench.bystander --cpu N`` and driven over stdin (see
``common``): ``start`` (connect, subscribe to a bars and a quotes topic, start pinging and
probing), ``report`` (the figures of a window [t0, t1], from everything recorded so far),
``quit``.

Why a process of its own and not a task of the attacker: the attacks spend real CPU on the
client side (thousands of sockets, masking megabytes of frames, parsing floods of replies).
On the attacker's event loop the bystander's pongs and updates would wait for that work, and
the attacker's own load would be blamed on the server. In its own process, pinned to a core
the server does not use and with the attacker niced below it (``abuse``), it wakes when a
frame arrives.

What it records, all stamped with ``common.now_us`` (one clock for every process):
- a ``ping`` every ``PING_EVERY_S`` and the round trip of its ``pong`` (matched by ``id``);
- the arrival of every ``bars.update`` / ``quotes.update`` (for the longest gap);
- a ``GET /readyz`` on a fresh connection every ``PROBE_EVERY_S``, one at a time.
If the server closes the connection (it should not), the close is recorded and the bystander
reconnects, at most ``MAX_RECONNECTS`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from . import rawhttp
from .abuse_stats import Ping, Probe, longest_gap_us, ping_figures, probe_figures
from .common import WS_PATH, emit, now_us, pin_to_cpu, read_command, stdin_reader

HOST = "127.0.0.1"
PING_EVERY_S = 0.05
#: Pings awaiting their pong, at most (one second's worth). Why a cap: a server frozen for
#: seconds would otherwise find hundreds of pings queued when it wakes, more than its rate
#: limit allows, and close the bystander (1008) for the attacker's doing. The pings still
#: in flight carry the freeze into the figures.
MAX_IN_FLIGHT = 20
PROBE_EVERY_S = 0.2
#: A probe longer than this is recorded as failed (status 0) at this latency.
PROBE_TIMEOUT_S = 30.0
MAX_RECONNECTS = 20
#: The bystander's subscriptions: one bars and one quotes topic, on different symbols.
SUBSCRIPTIONS = (
    {"type": "bars.subscribe", "payload": {"symbol": "BTCUSDT", "params": {"resolution": "1"}}},
    {"type": "quotes.subscribe", "payload": {"symbol": "ETHUSDT", "params": {}}},
)
UPDATE_TYPES = frozenset({"bars.update", "quotes.update"})


class Recorder:
    """Everything observed so far; windows are cut out of it when reported."""

    def __init__(self) -> None:
        self.pings: list[Ping] = []
        self.pending: dict[int, int] = {}  # ping id -> index in ``pings``
        self.arrivals: list[int] = []
        self.probes: list[Probe] = []
        self.probe_started: int | None = None
        self.closes: list[dict[str, Any]] = []
        self.next_id = 1_000
        #: Pings not sent because ``MAX_IN_FLIGHT`` were unanswered (a stalled server).
        self.held_back: list[int] = []
        self.connected = False

    def health(self) -> dict[str, Any]:
        """Is the bystander connected, and how long since its last update?"""
        last = self.arrivals[-1] if self.arrivals else None
        age = None if last is None else round((now_us() - last) / 1000, 1)
        return {"connected": self.connected, "update_age_ms": age}

    def report(self, t0: int, t1: int) -> dict[str, Any]:
        now = now_us()
        pings = ping_figures(self.pings, t0, t1, now)
        probes = list(self.probes)
        if self.probe_started is not None:
            probes.append(Probe(self.probe_started, None, 0))
        gap = longest_gap_us(self.arrivals, t0, t1)
        updates = sum(1 for a in self.arrivals if t0 <= a <= t1)
        return {
            "ping": pings,
            "updates": updates,
            "longest_gap_ms": round(gap / 1000, 1),
            "readyz": probe_figures(probes, t0, t1, now),
            "closes": [c for c in self.closes if t0 <= c["at_us"] <= t1],
            "pings_held_back": sum(1 for h in self.held_back if t0 <= h <= t1),
        }


async def subscribe(ws: ClientConnection, recorder: Recorder) -> None:
    """Send the subscriptions and wait for their replies (updates may arrive meanwhile)."""
    ids = set()
    for request in SUBSCRIPTIONS:
        recorder.next_id += 1
        ids.add(recorder.next_id)
        await ws.send(json.dumps({**request, "id": recorder.next_id}))
    async with asyncio.timeout(15):
        while ids:
            message = json.loads(await ws.recv())
            if message.get("id") in ids:
                if message["type"] == "error":
                    raise RuntimeError(f"the bystander's subscription was refused: {message}")
                ids.discard(message["id"])


async def pinger(ws: ClientConnection, recorder: Recorder) -> None:
    """A ``ping`` every ``PING_EVERY_S`` on a fixed schedule; a late one does not shift the
    next (the schedule skips ahead instead of sending a burst)."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        if len(recorder.pending) < MAX_IN_FLIGHT:
            recorder.next_id += 1
            recorder.pending[recorder.next_id] = len(recorder.pings)
            recorder.pings.append(Ping(now_us(), None))
            await ws.send(f'{{"type":"ping","id":{recorder.next_id},"payload":{{}}}}')
        else:
            recorder.held_back.append(now_us())
        next_at += PING_EVERY_S
        if next_at < loop.time():
            next_at = loop.time() + PING_EVERY_S
        await asyncio.sleep(next_at - loop.time())


async def receiver(ws: ClientConnection, recorder: Recorder) -> None:
    async for raw in ws:
        arrival = now_us()
        message = json.loads(raw)
        kind = message.get("type")
        if kind in UPDATE_TYPES:
            recorder.arrivals.append(arrival)
        elif kind == "pong":
            index = recorder.pending.pop(message.get("id"), None)
            if index is not None:
                sent = recorder.pings[index].sent_us
                recorder.pings[index] = Ping(sent, arrival - sent)


async def session(port: int, recorder: Recorder, started: asyncio.Future[None]) -> None:
    """Stay connected and subscribed, pinging, until cancelled (bounded reconnects)."""
    uri = f"ws://{HOST}:{port}{WS_PATH}"
    for attempt in range(MAX_RECONNECTS + 1):
        try:
            async with connect(
                uri, ping_interval=None, max_size=1 << 22, compression=None, open_timeout=15
            ) as ws:
                recorder.pending.clear()  # a closed connection's pings stay unanswered
                await subscribe(ws, recorder)
                recorder.connected = True
                if not started.done():
                    started.set_result(None)
                pinging = asyncio.create_task(pinger(ws, recorder))
                try:
                    await receiver(ws, recorder)
                finally:
                    pinging.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await pinging
                close = ws.close_code
                recorder.connected = False
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            recorder.connected = False
            close = getattr(getattr(exc, "rcvd", None), "code", None)
            if not started.done() and attempt == MAX_RECONNECTS:
                started.set_exception(exc)
                return
        recorder.closes.append({"at_us": now_us(), "code": close, "attempt": attempt})
        await asyncio.sleep(0.5)


async def prober(port: int, recorder: Recorder) -> None:
    """``GET /readyz`` on a fresh connection every ``PROBE_EVERY_S``, one at a time."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        recorder.probe_started = start = now_us()
        try:
            status, _ = await rawhttp.get(HOST, port, "/readyz", PROBE_TIMEOUT_S)
        except (OSError, TimeoutError, rawhttp.HttpError, asyncio.IncompleteReadError):
            status = 0
        recorder.probes.append(Probe(start, now_us() - start, status))
        recorder.probe_started = None
        await asyncio.sleep(max(PROBE_EVERY_S - (loop.time() - began), 0.0))


async def run() -> None:
    reader = await stdin_reader()
    recorder = Recorder()
    tasks: list[asyncio.Task[None]] = []
    try:
        while True:
            command = await read_command(reader)
            if command is None or command["cmd"] == "quit":
                break
            if command["cmd"] == "start":
                port = int(command["port"])
                started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                tasks.append(asyncio.create_task(session(port, recorder, started)))
                await asyncio.wait_for(started, 60)
                tasks.append(asyncio.create_task(prober(port, recorder)))
                emit("started")
            elif command["cmd"] == "health":
                emit("health", **recorder.health())
            elif command["cmd"] == "report":
                emit("report", **recorder.report(int(command["t0"]), int(command["t1"])))
            else:
                raise ValueError(f"unknown bystander command {command['cmd']!r}")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    emit("bye")


def main() -> None:
    parser = argparse.ArgumentParser(description="abuse benchmark bystander process")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    asyncio.run(run())


if __name__ == "__main__":
    main()
