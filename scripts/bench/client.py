"""A client load process: many WebSocket connections on one core, counting what arrives.

Run by the orchestrator as ``python -m scripts.bench.client --cpu 1`` and driven by JSON
command lines on stdin (see ``common``):

- ``connect``: open connections (bounded concurrency), subscribe each to its topics, wait for
  every reply; a connection marked ``stall`` then stops reading (and was opened with a small
  receive buffer, so the server feels it within seconds rather than megabytes later). With
  ``deflate`` (``{"server_max_window_bits": N or null}``) each offers permessage-deflate;
  with ``quickack`` each acknowledges every read at once (see ``rawws``).
- ``window``: count only updates whose publish stamp falls in [t0, t1) from now on.
- ``count`` / ``report``: in-window deliveries so far / everything measured.
- ``probe``: stalled connections read again; how did each end (open, close code, dropped)?
- ``disconnect``: close every connection (the process stays for the next run).
- ``quit``: close every connection and exit.

Every frame is looked at only as far as needed: is it a benchmark update (suffix), and when
was it published (the ``volume`` field). Nothing else is decoded (a compressed frame is
inflated first, by ``rawws``). In-window updates also add up their size on the wire
(WebSocket header + payload as received), for the bytes per delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import books
from .common import (
    UPDATE_SUFFIX,
    emit,
    now_us,
    pin_to_cpu,
    raise_nofile,
    read_command,
    stamp_of,
    stdin_reader,
    subscribe_text,
)
from .rawws import DeflateOffer, WsClientProtocol
from .stats import Histogram

#: A stalled client's receive buffer: small, so a server's backpressure starts early.
STALLED_RCVBUF = 4096


@dataclass
class Window:
    """The publish-time window being measured, shared by every connection of the process."""

    t0: int = 0
    t1: int = 0
    healthy: Histogram = field(default_factory=Histogram)
    out_of_window: int = 0
    other_frames: int = 0
    #: Wire bytes of the in-window updates of every connection.
    wire_bytes: int = 0


class Conn:
    """One connection and its counters."""

    __slots__ = (
        "count",
        "error_reply",
        "inflated_before",
        "proto",
        "replies",
        "stall",
        "symbols",
        "window",
    )

    def __init__(self, symbols: list[str], stall: bool, window: Window) -> None:
        self.symbols = symbols
        self.stall = stall
        self.window = window
        self.count = 0
        self.replies = 0
        self.error_reply: bytes | None = None
        self.proto: WsClientProtocol | None = None
        #: The protocol's compressed-frame count when the window was set.
        self.inflated_before = 0

    def subscribe_text(self, sym: str, request_id: int) -> bytes:
        return subscribe_text(sym, request_id)

    def on_other(self, payload: bytes) -> None:
        """A frame that is not a benchmark update: a reply, an error, anything else."""
        if b'.response"' in payload:
            self.replies += 1
        elif payload.startswith(b'{"type":"error"'):
            self.replies += 1
            self.error_reply = payload[:300]
        else:
            self.window.other_frames += 1

    def on_text(self, payload: bytes, arrival_us: int) -> None:
        """Count one frame; the hot path of the clients' core, so kept to a few operations
        (``BookConn`` repeats the counting rather than adding a call to it)."""
        if not payload.endswith(UPDATE_SUFFIX):
            self.on_other(payload)
            return
        stamp = stamp_of(payload)
        window = self.window
        if window.t0 <= stamp < window.t1:
            self.count += 1
            proto = self.proto
            if proto is not None:
                window.wire_bytes += proto.frame_bytes
            if not self.stall:
                window.healthy.record(arrival_us - stamp)
        else:
            window.out_of_window += 1


class BookConn(Conn):
    """A connection of ``book_levels``: subscribes to levels-20 order-book topics and reads
    the publish stamp from each levels frame's last ask (``books``)."""

    __slots__ = ()

    def subscribe_text(self, sym: str, request_id: int) -> bytes:
        return books.subscribe_text(sym, request_id)

    def on_text(self, payload: bytes, arrival_us: int) -> None:
        if not payload.startswith(books.UPDATE_PREFIX):
            self.on_other(payload)
            return
        stamp = books.stamp_of(payload)
        window = self.window
        if window.t0 <= stamp < window.t1:
            self.count += 1
            proto = self.proto
            if proto is not None:
                window.wire_bytes += proto.frame_bytes
            if not self.stall:
                window.healthy.record(arrival_us - stamp)
        else:
            window.out_of_window += 1


class LoadClient:
    """Every connection of this process."""

    def __init__(self) -> None:
        self.window = Window()
        self.conns: list[Conn] = []
        self.errors: list[str] = []
        self.failed = 0

    async def connect(self, command: dict[str, Any]) -> None:
        host, port, path = str(command["host"]), int(command["port"]), str(command["path"])
        specs: list[dict[str, Any]] = command["conns"]
        limit = asyncio.Semaphore(int(command.get("concurrency", 64)))
        timeout = float(command.get("timeout", 30.0))
        asked = command.get("deflate")
        offer = None if asked is None else DeflateOffer(asked.get("server_max_window_bits"))
        quickack = bool(command.get("quickack"))
        kind = BookConn if command.get("frame") == "levels" else Conn
        fresh = [
            kind(list(spec["symbols"]), bool(spec.get("stall")), self.window) for spec in specs
        ]

        async def open_one(conn: Conn) -> None:
            async with limit:
                try:
                    await asyncio.wait_for(
                        self._open(conn, host, port, path, offer, quickack), timeout
                    )
                except Exception as exc:
                    self.failed += 1
                    if conn.proto is not None:
                        conn.proto.abort()
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                self.conns.append(conn)

        before, failed_before = len(self.conns), self.failed
        await asyncio.gather(*(open_one(conn) for conn in fresh))
        emit(
            "connected",
            ok=len(self.conns) - before,
            failed=self.failed - failed_before,
            errors=self.errors,
        )

    async def _open(
        self,
        conn: Conn,
        host: str,
        port: int,
        path: str,
        offer: DeflateOffer | None,
        quickack: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if conn.stall:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
            sock.setblocking(False)
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        _, proto = await loop.create_connection(
            lambda: WsClientProtocol(host, port, path, conn.on_text, now_us, offer, quickack),
            sock=sock,
        )
        conn.proto = proto
        await proto.opened
        for index, sym in enumerate(conn.symbols):
            proto.send_text(conn.subscribe_text(sym, index + 1))
        while conn.replies < len(conn.symbols):
            if proto.closed.done():
                raise ConnectionError(f"closed while subscribing (code {proto.close_code})")
            await asyncio.sleep(0.005)
        if conn.error_reply is not None:
            raise ConnectionError(f"subscribe refused: {conn.error_reply.decode(errors='replace')}")
        if conn.stall and proto.transport is not None:
            proto.transport.pause_reading()

    def set_window(self, t0: int, t1: int) -> None:
        self.window.t0, self.window.t1 = t0, t1
        self.window.healthy = Histogram()
        self.window.out_of_window = 0
        self.window.other_frames = 0
        self.window.wire_bytes = 0
        for conn in self.conns:
            conn.count = 0
            conn.inflated_before = conn.proto.inflated if conn.proto is not None else 0

    def in_window(self) -> int:
        return sum(conn.count for conn in self.conns)

    def report(self) -> dict[str, Any]:
        healthy = [c.count for c in self.conns if not c.stall]
        stalled = [c.count for c in self.conns if c.stall]
        codes: dict[str, int] = {}
        for conn in self.conns:
            code = conn.proto.close_code if conn.proto is not None else None
            if conn.proto is not None and conn.proto.closed.done():
                key = str(code) if code is not None else "dropped"
                codes[key] = codes.get(key, 0) + 1
        protos = [c.proto for c in self.conns if c.proto is not None]
        return {
            "deflate_conns": sum(1 for proto in protos if proto.deflate is not None),
            # Text frames that came compressed since the window was set, and all text frames
            # since then (updates in and out of the window, and anything else).
            "inflated_frames": sum(
                c.proto.inflated - c.inflated_before for c in self.conns if c.proto is not None
            ),
            "frames_since_window": sum(healthy)
            + sum(stalled)
            + self.window.out_of_window
            + self.window.other_frames,
            "wire_bytes": self.window.wire_bytes,
            "healthy_conns": len(healthy),
            "stalled_conns": len(stalled),
            "healthy_frames": sum(healthy),
            "stalled_frames": sum(stalled),
            "healthy_min": min(healthy) if healthy else 0,
            "healthy_max": max(healthy) if healthy else 0,
            "out_of_window": self.window.out_of_window,
            "other_frames": self.window.other_frames,
            "closed": codes,
            "protocol_errors": sum(1 for c in self.conns if c.proto and c.proto.error),
            "histogram": self.window.healthy.to_json(),
        }

    async def probe_stalled(self, wait_s: float) -> dict[str, int]:
        """Let stalled connections read again and say how each one ended: still ``open``,
        closed by the server with a code, or ``dropped`` (reset without a close frame)."""
        for conn in self.conns:
            transport = conn.proto.transport if conn.proto is not None else None
            if conn.stall and transport is not None and not transport.is_closing():
                transport.resume_reading()
        await asyncio.sleep(wait_s)
        outcome: dict[str, int] = {}
        for conn in self.conns:
            if not conn.stall or conn.proto is None:
                continue
            proto = conn.proto
            if not proto.closed.done():
                key = "open"
            else:
                key = str(proto.close_code) if proto.close_code is not None else "dropped"
            outcome[key] = outcome.get(key, 0) + 1
        return outcome

    def close_all(self) -> None:
        """Close every connection and forget it: the process can serve the next run."""
        for conn in self.conns:
            if conn.proto is not None:
                conn.proto.close()
        self.conns = []
        self.errors = []
        self.failed = 0
        self.window = Window()


async def serve_commands(client: LoadClient) -> None:
    reader = await stdin_reader()
    emit("hello", loop=type(asyncio.get_running_loop()).__module__.split(".")[0])
    while True:
        command = await read_command(reader)
        if command is None or command["cmd"] == "quit":
            client.close_all()
            await asyncio.sleep(0.05)  # let the close frames reach the wire
            emit("bye")
            return
        match command["cmd"]:
            case "connect":
                await client.connect(command)
            case "window":
                client.set_window(int(command["t0"]), int(command["t1"]))
                emit("window")
            case "disconnect":
                client.close_all()
                await asyncio.sleep(0.05)
                emit("disconnected")
            case "count":
                emit("count", in_window=client.in_window())
            case "report":
                emit("report", **client.report())
            case "probe":
                emit("probe", stalled=await client.probe_stalled(float(command["wait_s"])))
            case other:
                raise ValueError(f"unknown client command {other!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark client load process")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    parser.add_argument("--nofile", type=int, default=20_000, help="open-files limit wanted")
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    raise_nofile(args.nofile)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve_commands(LoadClient()))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed: the clients' core must not be the bottleneck, and
    uvloop's C event loop spends far less per socket read than asyncio's."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


if __name__ == "__main__":
    main()
