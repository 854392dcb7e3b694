"""Server and document agree: a frame at the edge of the contract is accepted by a real server
exactly when ``docs/asyncapi.json`` says it is valid (issue 13, item 9).

The verdict is never written in the table: each frame is validated with ``jsonschema``
against the published document's schema for what a client may send on that connection —
``ClientMessage`` on ``/api/v1/ws``, the channel's ``publish`` messages on a raw stream. The
server's verdict is whether it answered with anything but an ``error``. Every frame is
followed by a sentinel ``ping``, so each answer is matched to its frame and a frame answered
twice (or not at all) fails too.

The frames use served symbols and resolutions, so that a refusal can only come from the shape
of the frame; the one bound the document states in prose only (a ``since`` later than the
bar after the newest one depends on the store, not on the frame) is checked separately.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema
import pytest
from websockets.asyncio.client import connect

from marketcast.channels.registry import default_registry
from marketcast.protocol import MAX_ID, MAX_ID_LENGTH, MAX_SNAPSHOT, MAX_TIME_MS
from marketcast.ws.raw_streams import channel_name
from tests.integration.harness import Client, Server, client, run_server

BARS_CHANNEL = channel_name(default_registry().get("bars"))

pytestmark = pytest.mark.integration

ROOT: Final = Path(__file__).resolve().parents[2]
PUBLISHED: Final = ROOT / "docs" / "asyncapi.json"
RAW_PATH: Final = "stream/bars/BTCUSDT/1"
#: Leaves a key out of a frame (``None`` would send ``null``).
OMIT: Final = object()
BARS: Final = {"symbol": "BTCUSDT", "params": {"resolution": "1"}}


@dataclass(frozen=True)
class Row:
    """One frame of the table; ``name`` says which edge it probes."""

    name: str
    frame: dict[str, Any]

    def param(self) -> Any:
        return pytest.param(self.frame, id=self.name)


def envelope(type_: Any, payload: Any = OMIT, request_id: Any = OMIT, **extra: Any) -> Any:
    frame = {"type": type_, **extra}
    if payload is not OMIT:
        frame["payload"] = payload
    if request_id is not OMIT:
        frame["id"] = request_id
    return frame


def bars(request_id: Any = 1, **payload: Any) -> Any:
    """A ``bars.subscribe`` of BTCUSDT at 1 with ``payload`` merged in (OMIT removes)."""
    merged = {key: value for key, value in {**BARS, **payload}.items() if value is not OMIT}
    return envelope("bars.subscribe", merged, request_id)


def resolution(value: Any) -> Any:
    return bars(params={"resolution": value})


MAIN_ROWS: Final = [
    # -- ping and its payload
    Row("ping", envelope("ping", {}, 1)),
    Row("ping-without-payload", envelope("ping", request_id=1)),
    Row("ping-without-payload-or-id", envelope("ping")),
    Row("ping-payload-null", envelope("ping", None, 1)),
    Row("ping-payload-array", envelope("ping", [], 1)),
    Row("ping-payload-unknown-field", envelope("ping", {"x": 1}, 1)),
    Row("ping-unknown-envelope-field", envelope("ping", {}, 1, extra=1)),
    Row("no-type", {"payload": {}, "id": 1}),
    Row("type-null", envelope(None, {}, 1)),
    Row("server-only-type", envelope("pong", {"time": 1}, 1)),
    Row("type-upper-case", envelope("PING", {}, 1)),
    Row("quotes-subscribe-without-payload", envelope("quotes.subscribe", request_id=1)),
    # -- id: type, null, integral numbers, bounds
    Row("id-absent", envelope("ping", {})),
    Row("id-null", envelope("ping", {}, None)),
    Row("id-integer", envelope("ping", {}, 3)),
    Row("id-integral-float", envelope("ping", {}, 3.0)),
    Row("id-fraction", envelope("ping", {}, 3.5)),
    Row("id-boolean", envelope("ping", {}, True)),
    Row("id-array", envelope("ping", {}, [1])),
    Row("id-object", envelope("ping", {}, {"a": 1})),
    Row("id-empty-string", envelope("ping", {}, "")),
    Row("id-max-length", envelope("ping", {}, "a" * MAX_ID_LENGTH)),
    Row("id-max-length+1", envelope("ping", {}, "a" * (MAX_ID_LENGTH + 1))),
    Row("id-max-length-astral", envelope("ping", {}, "\U0001f600" * MAX_ID_LENGTH)),
    Row("id-max-length+1-astral", envelope("ping", {}, "\U0001f600" * (MAX_ID_LENGTH + 1))),
    Row("id-max", envelope("ping", {}, MAX_ID)),
    Row("id-max+1", envelope("ping", {}, MAX_ID + 1)),
    Row("id-min", envelope("ping", {}, -MAX_ID)),
    Row("id-min-1", envelope("ping", {}, -MAX_ID - 1)),
    Row("id-max-as-float", envelope("ping", {}, float(MAX_ID))),
    Row("id-beyond-64-bits", envelope("ping", {}, 2**70)),
    Row("id-huge-float", envelope("ping", {}, 1e300)),
    # -- snapshot
    Row("snapshot-0", bars(snapshot=0)),
    Row("snapshot-max", bars(snapshot=MAX_SNAPSHOT)),
    Row("snapshot-max+1", bars(snapshot=MAX_SNAPSHOT + 1)),
    Row("snapshot-min-1", bars(snapshot=-1)),
    Row("snapshot-integral-float", bars(snapshot=2.0)),
    Row("snapshot-max-as-float", bars(snapshot=float(MAX_SNAPSHOT))),
    Row("snapshot-max+1-as-float", bars(snapshot=float(MAX_SNAPSHOT + 1))),
    Row("snapshot-fraction", bars(snapshot=2.5)),
    Row("snapshot-string", bars(snapshot="2")),
    Row("snapshot-boolean", bars(snapshot=True)),
    Row("snapshot-null", bars(snapshot=None)),
    # -- since (its upper bound depends on the store: test_since_bound_beyond_the_schema)
    Row("since-null", bars(since=None)),
    Row("since-0", bars(since=0)),
    Row("since-min-1", bars(since=-1)),
    Row("since-integral-float", bars(since=1e12)),
    Row("since-fraction", bars(since=1.5)),
    Row("since-string", bars(since="0")),
    Row("since-max+1", bars(since=MAX_TIME_MS + 1)),
    Row("since-beyond-64-bits", bars(since=2**70)),
    # -- resolutions, aliases included
    *(Row(f"resolution-{value}", resolution(value)) for value in ["1", "240", "D", "W", "M"]),
    *(Row(f"resolution-alias-{value}", resolution(value)) for value in ["1D", "1W", "1M"]),
    *(
        Row(f"resolution-unlisted-{value!r}", resolution(value))
        for value in ["7", "d", "1d", "", 1]
    ),
    # -- symbol, params and unknown fields
    Row("symbol-with-slash", bars(symbol="EUR/USD")),
    Row("symbol-lower-case", bars(symbol="btcusdt")),
    Row("symbol-too-long", bars(symbol="A" * 21)),
    Row("symbol-missing", bars(symbol=OMIT)),
    Row("params-missing", bars(params=OMIT)),
    Row("params-empty", bars(params={})),
    Row("params-unknown-field", bars(params={"resolution": "1", "depth": 5})),
    Row("payload-unknown-field", bars(depth=5)),
    Row("unsubscribe", envelope("bars.unsubscribe", BARS, 1)),
    Row("unsubscribe-with-snapshot", envelope("bars.unsubscribe", {**BARS, "snapshot": 1}, 1)),
    Row("quotes-params-omitted", envelope("quotes.subscribe", {"symbol": "ETHUSDT"}, 1)),
    Row(
        "quotes-params-empty", envelope("quotes.subscribe", {"symbol": "ETHUSDT", "params": {}}, 1)
    ),
    Row(
        "quotes-params-unknown-field",
        envelope("quotes.subscribe", {"symbol": "ETHUSDT", "params": {"depth": 5}}, 1),
    ),
]

RAW_ROWS: Final = [
    Row("raw-ping", envelope("ping", {}, "r")),
    Row("raw-ping-integral-float-id", envelope("ping", {}, 3.0)),
    Row("raw-ping-without-payload", envelope("ping", request_id="r")),
    Row("raw-ping-id-max-length+1", envelope("ping", {}, "a" * (MAX_ID_LENGTH + 1))),
    Row("raw-subscribe-another-topic", bars(request_id="r", symbol="ETHUSDT")),
    Row("raw-subscribe-its-own-topic", bars(request_id="r")),
    Row("raw-unsubscribe-its-own-topic", envelope("bars.unsubscribe", BARS, "r")),
    Row("raw-quotes-subscribe", envelope("quotes.subscribe", {"symbol": "ETHUSDT"}, "r")),
    Row("raw-unknown-type", envelope("bars.explode", {}, "r")),
]


# ---- the document's verdict ------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    published: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return published


def verdict(document: dict[str, Any], refs: list[str], frame: dict[str, Any]) -> bool:
    """Whether ``frame`` is one of ``refs``, resolved inside the document (AsyncAPI 2.6 schemas
    are draft 7, whose ``integer`` counts ``3.0`` as 3)."""
    schema = {"oneOf": [{"$ref": ref} for ref in refs], "components": document["components"]}
    return bool(jsonschema.Draft7Validator(schema).is_valid(frame))


def main_verdict(document: dict[str, Any], frame: dict[str, Any]) -> bool:
    return verdict(document, ["#/components/schemas/ClientMessage"], frame)


def raw_verdict(document: dict[str, Any], frame: dict[str, Any]) -> bool:
    """Valid for the raw bars channel: one of the messages its ``publish`` documents."""
    publish = document["channels"][BARS_CHANNEL].get("publish")
    messages = publish["message"]["oneOf"] if publish else []
    return verdict(document, [message["payload"]["$ref"] for message in messages], frame)


# ---- the server's verdict --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No rate limit: every frame of the table must be judged, none turned away for speed.
    with run_server(tmp_path_factory.mktemp("boundary"), rate_limit_per_second=0) as running:
        yield running


@asynccontextmanager
async def raw_stream(server: Server) -> AsyncIterator[Client]:
    async with connect(f"{server.ws}/{RAW_PATH}", open_timeout=10, close_timeout=2) as ws:
        yield Client(ws)


async def answer(c: Client, frame: dict[str, Any]) -> dict[str, Any]:
    """The one answer to ``frame`` (updates skipped), checked by a sentinel ping after it."""
    await c.send(json.dumps(frame, ensure_ascii=False))
    await c.send({"type": "ping", "payload": {}, "id": "sentinel"})
    answers = []
    while True:
        received = await c.recv()
        if received["type"].endswith(".update"):
            continue
        if received["type"] == "pong" and received.get("id") == "sentinel":
            break
        answers.append(received)
    assert len(answers) == 1, f"{frame!r} got {len(answers)} answers: {answers!r}"
    return answers[0]


def check(frame: dict[str, Any], valid: bool, reply: dict[str, Any]) -> None:
    accepted = reply["type"] != "error"
    verdict = "valid" if valid else "invalid"
    assert accepted == valid, f"document: {verdict}, server answered {reply!r} to {frame!r}"
    if accepted:
        # The id comes back as sent, by value: ``3.0`` is echoed as ``3``.
        assert reply.get("id") == frame.get("id"), (frame, reply)
        assert not isinstance(reply.get("id"), float), reply


@pytest.mark.parametrize("frame", [row.param() for row in MAIN_ROWS])
async def test_main_endpoint_accepts_what_the_document_allows(
    server: Server, document: dict[str, Any], frame: dict[str, Any]
) -> None:
    async with client(server) as c:
        check(frame, main_verdict(document, frame), await answer(c, frame))


@pytest.mark.parametrize("frame", [row.param() for row in RAW_ROWS])
async def test_raw_stream_accepts_what_its_channel_documents(
    server: Server, document: dict[str, Any], frame: dict[str, Any]
) -> None:
    async with raw_stream(server) as c:
        valid = raw_verdict(document, frame)
        reply = await answer(c, frame)
        check(frame, valid, reply)
        if not valid and main_verdict(document, frame):
            # A request the main endpoint takes, of a type this channel does not document.
            assert reply["payload"]["code"] == "unknown_type", reply
        # The stream goes on after any frame: an update of its own topic still arrives.
        update = await c.recv_until(lambda f: f["type"] == "bars.update", within=70)
        assert update["payload"]["topic"] == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


async def test_since_bound_beyond_the_schema(server: Server, document: dict[str, Any]) -> None:
    """``since`` at the schema's maximum passes the schema (the server's own check too) and is
    refused by the rule the document states in its description: no later than the open of
    the bar after the newest one."""
    frame = bars(since=MAX_TIME_MS)
    assert main_verdict(document, frame)
    description = document["components"]["schemas"]["BarsSubscribePayload"]["properties"]["since"][
        "description"
    ]
    assert "at most the open time of the bar after the newest one" in description
    async with client(server) as c:
        reply = await answer(c, frame)
    assert reply["type"] == "error", reply
    assert reply["payload"]["code"] == "validation_error"
    assert "after the open of the bar after the newest one" in reply["payload"]["message"]
    assert reply["id"] == 1


def test_the_table_probes_both_sides(document: dict[str, Any]) -> None:
    """A table every frame of which the document accepts (or refuses) would prove little."""
    main = [main_verdict(document, row.frame) for row in MAIN_ROWS]
    raw = [raw_verdict(document, row.frame) for row in RAW_ROWS]
    assert 20 <= sum(main) <= len(main) - 20, main
    assert 2 <= sum(raw) <= len(raw) - 2, raw
