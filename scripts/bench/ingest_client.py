"""The ingest scenario's client process: connections subscribed to bars of any resolution.

Like ``scripts.bench.client`` (same JSON-line commands: ``connect``, ``window``, ``count``,
``report``, ``disconnect``, ``quit``) but each connection subscribes to ``[symbol,
resolution]`` pairs, and every ``bars.update`` counts, open or closed: the ingest scenario's
updates are mostly open bars, and their publish stamp travels in ``close``
(``ingest_feed``), not ``volume``. Nothing else of a frame is decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import orjson

from .common import emit, now_us, pin_to_cpu, raise_nofile, read_command, stdin_reader
from .rawws import WsClientProtocol
from .stats import Histogram

_UPDATE_PREFIX = b'{"type":"bars.update"'
_CLOSE_KEY = b'"close":'


def stamp_of(frame: bytes) -> int:
    """The publish stamp (µs) in a ``bars.update`` frame's ``close`` (``1234567.0``)."""
    start = frame.rindex(_CLOSE_KEY) + len(_CLOSE_KEY)
    end = frame.index(b",", start)
    return int(float(frame[start:end]))


def subscribe_text(sym: str, resolution: str, request_id: int) -> bytes:
    return orjson.dumps(
        {
            "type": "bars.subscribe",
            "id": request_id,
            "payload": {"symbol": sym, "params": {"resolution": resolution}},
        }
    )


class Window:
    def __init__(self, t0: int = 0, t1: int = 0) -> None:
        self.t0, self.t1 = t0, t1
        self.histogram = Histogram()
        self.out_of_window = 0
        self.other = 0


class Conn:
    __slots__ = ("count", "error", "proto", "replies", "topics", "window")

    def __init__(self, topics: list[tuple[str, str]], window: Window) -> None:
        self.topics = topics
        self.window = window
        self.count = 0
        self.replies = 0
        self.error: bytes | None = None
        self.proto: WsClientProtocol | None = None

    def on_text(self, payload: bytes, arrival_us: int) -> None:
        window = self.window
        if not payload.startswith(_UPDATE_PREFIX):
            if b'.response"' in payload:
                self.replies += 1
            elif payload.startswith(b'{"type":"error"'):
                self.replies += 1
                self.error = payload[:300]
            else:
                window.other += 1
            return
        stamp = stamp_of(payload)
        if window.t0 <= stamp < window.t1:
            self.count += 1
            window.histogram.record(arrival_us - stamp)
        else:
            window.out_of_window += 1


class IngestClients:
    def __init__(self) -> None:
        self.window = Window()
        self.conns: list[Conn] = []
        self.errors: list[str] = []

    async def connect(self, command: dict[str, Any]) -> None:
        host, port, path = str(command["host"]), int(command["port"]), str(command["path"])
        limit = asyncio.Semaphore(int(command.get("concurrency", 64)))
        timeout = float(command.get("timeout", 30.0))
        fresh = [
            Conn([(str(s), str(r)) for s, r in topics], self.window) for topics in command["conns"]
        ]
        ok = failed = 0

        async def open_one(conn: Conn) -> None:
            nonlocal ok, failed
            async with limit:
                try:
                    await asyncio.wait_for(self._open(conn, host, port, path), timeout)
                except Exception as exc:
                    failed += 1
                    if conn.proto is not None:
                        conn.proto.abort()
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                ok += 1
                self.conns.append(conn)

        await asyncio.gather(*(open_one(conn) for conn in fresh))
        emit("connected", ok=ok, failed=failed, errors=self.errors)

    async def _open(self, conn: Conn, host: str, port: int, path: str) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        _, proto = await loop.create_connection(
            lambda: WsClientProtocol(host, port, path, conn.on_text, now_us), sock=sock
        )
        conn.proto = proto
        await proto.opened
        for index, (sym, resolution) in enumerate(conn.topics):
            proto.send_text(subscribe_text(sym, resolution, index + 1))
        while conn.replies < len(conn.topics):
            if proto.closed.done():
                raise ConnectionError(f"closed while subscribing (code {proto.close_code})")
            await asyncio.sleep(0.005)
        if conn.error is not None:
            raise ConnectionError(f"subscribe refused: {conn.error.decode(errors='replace')}")

    def set_window(self, t0: int, t1: int) -> None:
        self.window.t0, self.window.t1 = t0, t1
        self.window.histogram = Histogram()
        self.window.out_of_window = 0
        for conn in self.conns:
            conn.count = 0

    def report(self) -> dict[str, Any]:
        closed: dict[str, int] = {}
        for conn in self.conns:
            proto = conn.proto
            if proto is not None and proto.closed.done():
                key = str(proto.close_code) if proto.close_code is not None else "dropped"
                closed[key] = closed.get(key, 0) + 1
        return {
            "conns": len(self.conns),
            "frames": sum(conn.count for conn in self.conns),
            "out_of_window": self.window.out_of_window,
            "other_frames": self.window.other,
            "closed": closed,
            "histogram": self.window.histogram.to_json(),
        }

    def close_all(self) -> None:
        for conn in self.conns:
            if conn.proto is not None:
                conn.proto.close()
        self.conns = []
        self.errors = []
        self.window = Window()


async def serve_commands(clients: IngestClients) -> None:
    reader = await stdin_reader()
    emit("hello")
    while True:
        command = await read_command(reader)
        if command is None or command["cmd"] == "quit":
            clients.close_all()
            await asyncio.sleep(0.05)
            emit("bye")
            return
        match command["cmd"]:
            case "connect":
                await clients.connect(command)
            case "window":
                clients.set_window(int(command["t0"]), int(command["t1"]))
                emit("window")
            case "count":
                emit("count", in_window=sum(conn.count for conn in clients.conns))
            case "report":
                emit("report", **clients.report())
            case "disconnect":
                clients.close_all()
                await asyncio.sleep(0.05)
                emit("disconnected")
            case other:
                raise ValueError(f"unknown ingest client command {other!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description="ingest benchmark client process")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    parser.add_argument("--nofile", type=int, default=20_000, help="open-files limit wanted")
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    raise_nofile(args.nofile)
    from .client import event_loop_factory

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve_commands(IngestClients()))


if __name__ == "__main__":
    main()
