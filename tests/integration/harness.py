"""A real marketcast server in a subprocess on 127.0.0.1, and a JSON WebSocket client.

Every frame a test receives passes through ``Client.recv``, so checks that apply to all
frames (they are JSON objects with a known ``type``) live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from scripts.soak import serve
from scripts.soak.serve import Endpoint, ServeProcess, free_port
from tests.consumer import validate_server_frame

ROOT = Path(__file__).resolve().parents[2]


def server_types(document: dict[str, Any]) -> frozenset[str]:
    """Every message type a server sends, read from an AsyncAPI document's ``ServerMessage``
    union (so a new channel family needs no edit here)."""
    schemas = document["components"]["schemas"]
    found = set()
    for member in schemas["ServerMessage"]["oneOf"]:
        envelope = schemas[member["$ref"].rsplit("/", 1)[1]]
        found.add(envelope["properties"]["type"]["const"])
    return frozenset(found)


SERVER_TYPES = server_types(orjson.loads((ROOT / "docs" / "asyncapi.json").read_bytes()))


@dataclass
class Server(ServeProcess):
    """A ``marketcast serve`` subprocess, as the tests see it."""

    def rss_kib(self) -> int:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    async def wait_for_log(self, ready: Callable[[str], bool], within: float = 10.0) -> str:
        """The log, once ``ready(log)`` holds (the server writes lines asynchronously), or as
        it is after ``within`` seconds, for the caller's assertions to report."""
        deadline = time.monotonic() + within
        while True:
            log = self.log()
            if ready(log) or time.monotonic() > deadline:
                return log
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def run_server(tmp_dir: Path, *, port: int | None = None, **settings: object) -> Iterator[Server]:
    """Start ``marketcast serve`` with ``MARKETCAST_*`` settings; stop it afterwards
    (``scripts.soak.serve``, which the soaks share).

    ``port``: a fixed port, e.g. to restart a server where its clients will reconnect.
    """
    started = serve.start(tmp_dir, free_port() if port is None else port, settings)
    try:
        serve.wait_ready(started)
        yield Server(started.port, started.process, started.log_path)
    finally:
        serve.stop(started)


class Client:
    """A WebSocket client speaking marketcast's JSON envelopes."""

    def __init__(
        self,
        connection: ClientConnection,
        *,
        check: Callable[[str | bytes], None] = validate_server_frame,
        types: frozenset[str] = SERVER_TYPES,
    ) -> None:
        self.connection = connection
        self.next_id = 0
        #: How each received frame is checked against the contract (default: the consumer
        #: models generated from docs/asyncapi.json), and the types it may have.
        self._check = check
        self._types = types

    async def send(self, message: Any) -> None:
        await self.connection.send(
            message if isinstance(message, str | bytes) else orjson.dumps(message).decode()
        )

    async def request(self, type_: str, payload: dict[str, Any] | None = None, **extra: Any) -> Any:
        """Send a request with a fresh id and return the frame that answers it."""
        self.next_id += 1
        request_id = self.next_id
        await self.send({"type": type_, "payload": payload or {}, "id": request_id, **extra})
        while True:
            frame = await self.recv()
            if frame.get("id") == request_id:
                return frame

    async def recv(self, within: float = 10.0) -> dict[str, Any]:
        """The next frame, which must arrive ``within`` seconds.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a
        cancellation that lands while a frame has just arrived (it returns the frame), so a
        test cancelling its reader tasks could leave one reading forever on a busy topic."""
        async with asyncio.timeout(within):
            raw = await self.connection.recv()
        # Checked from the consumer's side: models generated from docs/asyncapi.json.
        self._check(raw)
        frame = orjson.loads(raw)
        assert isinstance(frame, dict), frame
        assert frame["type"] in self._types, frame
        assert isinstance(frame["payload"], dict), frame
        return frame

    async def recv_until(self, predicate: Any, within: float = 10.0) -> dict[str, Any]:
        """The first frame matching ``predicate`` within ``within`` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(within=max(remaining, 0.01))
            if predicate(frame):
                return frame

    async def subscribe_bars(self, symbol: str, resolution: str, **extra: Any) -> Any:
        payload = {"symbol": symbol, "params": {"resolution": resolution}, **extra}
        return await self.request("bars.subscribe", payload)


@contextlib.asynccontextmanager
async def client(server: Server, **options: Any) -> AsyncIterator[Client]:
    """A connected client; on exit its close is bounded: a close handshake that has not
    finished after 5 s (seen once under load, with both sockets left open) aborts the TCP
    connection instead of holding the test."""
    connection = await connect(server.ws, open_timeout=10, close_timeout=2, **options)
    try:
        yield Client(connection)
    finally:
        try:
            async with asyncio.timeout(5):
                await connection.close()
        except TimeoutError:
            connection.transport.abort()


@contextlib.asynccontextmanager
async def served(tmp_dir: Path, **settings: object) -> AsyncIterator[Server]:
    """``run_server`` entered and left in a thread, so that fakes serving on the test's own
    event loop (fake Binance, fake Twelve Data) keep answering while the server starts."""
    manager = run_server(tmp_dir, **settings)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def until(
    predicate: Callable[[], bool], within: float = 15.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def in_process_server(
    settings: dict[str, object] | None = None, **app_options: Any
) -> AsyncIterator[Endpoint]:
    """``create_app(settings, **app_options)`` (hooks, channels, feeds) served on 127.0.0.1
    inside this process, with marketcast's own uvicorn configuration (``build_server``)."""
    from marketcast.app import create_app
    from marketcast.serving import build_server
    from marketcast.settings import Settings

    port = free_port()
    config = Settings(  # type: ignore[call-arg]
        _env_file=None, port=port, host="127.0.0.1", **(settings or {})
    )
    server = build_server(create_app(config, **app_options), config)
    task = asyncio.create_task(server.serve())
    try:
        # Polled for the event, bounded only to name a hang (a loaded machine starts slowly).
        for _ in range(1200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "in-process server did not start"
        yield Endpoint(port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
