"""permessage-deflate on a real server (``MARKETCAST_WS_PER_MESSAGE_DEFLATE``), as clients meet it.

- Clients with and without deflate on the same topic receive the same frames, intact: the
  compressed ones decode to exactly the text the plain client reads.
- What goes over the wire is checked byte by byte with a raw client: the server answers the
  offer with ``server_no_context_takeover``, frames over ``wire.MIN_DEFLATE_BYTES`` carry RSV1
  and inflate on their own (a fresh decompressor per message, as no context is kept), with
  the window the client asked for (``server_max_window_bits=10``, and 9).
- The ``websockets`` client's own deflate, with its default offer and with a small window,
  reads every frame.

Each collection is bounded by a frame count and a timeout, never by a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from typing import Any, Final

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from marketcast.wire import MIN_DEFLATE_BYTES
from tests.integration.harness import Endpoint, in_process_server

pytestmark = pytest.mark.integration

SETTINGS: Final = {"ws_per_message_deflate": True, "sim_tick_interval": 0.02, "sim_speed": 60}
SUBSCRIBE: Final = {
    "type": "bars.subscribe",
    "id": 1,
    "payload": {"symbol": "BTCUSDT", "params": {"resolution": "1"}, "snapshot": 20},
}
TOPIC: Final = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
STEP: Final = 30.0


class RawClient:
    """Just enough RFC 6455 to see the server's frames as they are on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Endpoint, extensions: str) -> tuple[RawClient, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"
            ).encode()
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)).decode()
        assert head.startswith("HTTP/1.1 101"), head
        answer = next(
            (
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")[1:]
                if line.lower().startswith("sec-websocket-extensions:")
            ),
            "",
        )
        return cls(reader, writer), answer

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next server frame."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), STEP)
        assert not second & 0x80, "server frames are unmasked"
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return first, await asyncio.wait_for(self.reader.readexactly(size), STEP)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def inflate(payload: bytes, window_bits: int) -> bytes:
    """One message inflated on its own (RFC 7692 7.2.2: the tail the sender removed is put
    back); a fresh decompressor, as ``server_no_context_takeover`` promises is enough."""
    decompressor = zlib.decompressobj(-window_bits)
    return decompressor.decompress(payload + b"\x00\x00\xff\xff") + decompressor.flush()


async def wire_frames(server: Endpoint, window_bits: int, count: int) -> dict[str, Any]:
    offer = f"permessage-deflate; server_max_window_bits={window_bits}"
    client, answer = await RawClient.open(server, offer)
    try:
        assert "permessage-deflate" in answer
        assert "server_no_context_takeover" in answer
        assert f"server_max_window_bits={window_bits}" in answer
        client.send_text(orjson.dumps(SUBSCRIBE).decode())
        compressed = plain = 0
        texts: list[dict[str, Any]] = []
        while len(texts) < count:
            first, payload = await client.frame()
            assert first & 0x0F == 0x1, f"a text frame, got opcode {first & 0x0F}"
            assert first & 0x80, "unfragmented"
            if first & 0x40:  # RSV1: compressed
                compressed += 1
                text = inflate(payload, window_bits)
            else:
                plain += 1
                assert len(payload) < MIN_DEFLATE_BYTES, "a long frame went out uncompressed"
                text = payload
            texts.append(orjson.loads(text))
        return {"frames": texts, "compressed": compressed, "plain": plain}
    finally:
        await client.close()


async def test_frames_on_the_wire_are_compressed_once_with_the_window_asked_for() -> None:
    async with in_process_server(SETTINGS) as server:
        for bits in (10, 9):
            seen = await wire_frames(server, bits, 30)
            frames = seen["frames"]
            assert frames[0]["type"] == "bars.subscribe.response"
            assert len(frames[0]["payload"]["bars"]) == 20
            assert seen["compressed"] >= 29, seen  # every frame is over 64 bytes
            updates = [f for f in frames if f["type"] == "bars.update"]
            assert updates
            assert all(f["payload"]["topic"] == TOPIC for f in updates)


async def collect(url: str, count: int, **options: Any) -> tuple[list[str], list[Any]]:
    """The raw texts of ``count`` bars updates after the reply, and the extensions agreed."""
    async with connect(url, open_timeout=STEP, close_timeout=2, **options) as ws:
        await ws.send(
            orjson.dumps({**SUBSCRIBE, "payload": {**SUBSCRIBE["payload"], "snapshot": 0}}).decode()
        )
        texts: list[str] = []
        async with asyncio.timeout(STEP):
            while len(texts) < count:
                raw = await ws.recv()
                assert isinstance(raw, str)
                if '"bars.update"' in raw:
                    texts.append(raw)
        return texts, list(ws.protocol.extensions)


async def test_clients_with_and_without_deflate_get_the_same_frames() -> None:
    async with in_process_server(SETTINGS) as server:
        small_window = ClientPerMessageDeflateFactory(server_max_window_bits=9)
        results = await asyncio.gather(
            collect(server.ws, 40, compression=None),
            collect(server.ws, 40, compression="deflate"),
            collect(server.ws, 40, extensions=[small_window], compression=None),
        )
        (plain, none), (deflated, ext_default), (windowed, ext_small) = results
        assert none == []
        assert [e.name for e in ext_default] == ["permessage-deflate"]
        assert ext_small[0].local_max_window_bits == 15  # the client's own sending window
        assert ext_small[0].remote_max_window_bits == 9  # what the server compresses with
        # The three started within moments of each other: their common stretch of updates
        # must be the same texts, byte for byte, in the same order.
        for other in (deflated, windowed):
            common = [t for t in plain if t in set(other)]
            assert len(common) >= 20, (len(common), plain[:2], other[:2])
            assert common == [t for t in other if t in set(plain)]
