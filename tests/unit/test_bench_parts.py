"""The benchmark's own arithmetic, checked without running it: the baseline's raw framing,
the latency histogram, the publish stamp round trip, the goals it prints, and the load
client's permessage-deflate (offer, answer, inflating with and without context takeover)
against the ``websockets`` library's own compression."""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from dataclasses import replace
from typing import Any

import orjson
import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scripts.bench.cases import CaseResult, _figures
from scripts.bench.client import Conn, Window
from scripts.bench.common import (
    BAR_TIME_BASE,
    PRICES,
    UPDATE_SUFFIX,
    BookFrames,
    stamp_of,
    topic_of,
    update_frame,
)
from scripts.bench.rawws import (
    Deflate,
    DeflateOffer,
    WsClientProtocol,
    inflate,
    parse_deflate_answer,
)
from scripts.bench.report import book_floor, goals
from scripts.bench.scenarios import QUICK_DEFLATE_REF
from scripts.bench.stats import Histogram
from scripts.bench.targets.websockets_raw import deflated_text_frame, unmasked_text_frame


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_raw_baseline_frames_like_the_websockets_library(size: int) -> None:
    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert unmasked_text_frame(payload) == expected


def test_histogram_percentiles_are_within_a_bucket_and_never_flatter() -> None:
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(6, 1.5)) for _ in range(20_000)]
    first, second = Histogram(), Histogram()
    for n, micros in enumerate(samples):
        (first if n % 2 else second).record(micros)
    first.merge(second)
    ordered = sorted(samples)
    assert first.total == len(samples)
    assert first.max_us == ordered[-1]
    for fraction in (0.5, 0.9, 0.99, 0.999):
        exact = ordered[max(1, -int(-fraction * len(ordered) // 1)) - 1]
        reported = first.percentile(fraction)
        assert reported is not None
        assert exact <= reported <= max(exact * 1.016, exact + 1), (fraction, exact, reported)
    assert first.percentile(1.0) == ordered[-1]
    assert Histogram().percentile(0.5) is None
    assert Histogram.from_json(first.to_json()) == first


def test_publish_stamp_survives_the_frame() -> None:
    frame = update_frame('bars:{"resolution":"1","symbol":"SYM0"}', "SYM0", 60_000, 1_234_567)
    assert stamp_of(frame) == 1_234_567


def case(target: str, scenario: str, **figures: float) -> CaseResult:
    return CaseResult(target=target, scenario=scenario, figures=dict(figures))


def test_goals_compare_marketcast_with_the_baselines_of_the_same_run() -> None:
    by_scenario = {
        "saturation": {
            "marketcast": case("marketcast", "saturation", delivered_per_s=300.0),
            "websockets": case("websockets", "saturation", delivered_per_s=200.0),
            "fastws": case("fastws", "saturation", delivered_per_s=150.0),
        },
        "market": {
            "marketcast": case(
                "marketcast",
                "market",
                p99_ms=2.0,
                cpu_us_per_delivery=12.0,
                sys_us_per_delivery=9.0,
            ),
            "websockets": case("websockets", "market", p99_ms=1.6, cpu_us_per_delivery=15.0),
            "raw": case("raw", "market", cpu_us_per_delivery=11.0, sys_us_per_delivery=8.5),
        },
        "idle_1k": {"marketcast": case("marketcast", "idle_1k", kib_per_conn=24.5)},
    }
    checks = goals(by_scenario)
    assert checks["saturation_vs_websockets"] == {
        "value": 1.5,
        "goal": ">= 1",
        "met": True,
        "verdict": "PASS",
    }
    assert checks["saturation_vs_fastws"]["met"] is False  # 2.0x < 2.5x
    assert checks["saturation_vs_fastws"]["verdict"] == "FAIL"  # and no noise figure
    assert checks["market_p99_ms_vs_websockets_plus_0.5"] == {
        "value": 2.0,
        "goal": "<= 2.1",
        "met": True,
        "verdict": "PASS",
    }
    assert checks["market_cpu_us_per_delivery"]["met"] is False
    # raw's own 11 µs is above the 10 µs budget: the floor stops it, not marketcast.
    assert checks["market_cpu_us_per_delivery"]["verdict"] == "FLOOR"
    assert (
        "kernel 9.0 µs of it; raw 11.0 µs (kernel 8.5)"
        in checks["market_cpu_us_per_delivery"]["context"]
    )
    assert checks["idle_1k_kib_per_conn"]["met"] is False
    assert "slow_healthy_pct" not in checks  # no slow scenario in this run: no verdict


# -- permessage-deflate in the load client (rawws) ------------------------------------------


class FakeTransport:
    """What ``WsClientProtocol`` needs of a transport: writes are kept, aborts counted."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> None:
        return None


#: What the deflate scenarios' clients offer.
OFFER = DeflateOffer()


def opened_client(
    answer: str | None, offer: DeflateOffer | None = OFFER
) -> tuple[WsClientProtocol, list[bytes], FakeTransport]:
    """A client protocol past its handshake; the server answered ``answer`` (its
    Sec-WebSocket-Extensions header, None: none). Returns (protocol, texts, transport)."""
    texts: list[bytes] = []
    proto = WsClientProtocol(
        "127.0.0.1", 1, "/ws", lambda text, _: texts.append(text), lambda: 7, offer
    )
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    key = proto._request_key
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept.decode()}\r\n"
        + (f"Sec-WebSocket-Extensions: {answer}\r\n" if answer is not None else "")
        + "\r\n"
    )
    proto.data_received(head.encode())
    return proto, texts, transport


def server_frames(texts: list[bytes], *, takeover: bool, bits: int = 12) -> list[bytes]:
    """``texts`` as the ``websockets`` library's server sends them compressed (one
    compressor for the connection when ``takeover``, a fresh one per message otherwise)."""
    extension = PerMessageDeflate(True, not takeover, 15, bits)
    return [
        Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[extension]) for text in texts
    ]


async def test_deflate_offer_goes_in_the_request_only_when_asked() -> None:
    plain, _, plain_transport = opened_client(None, offer=None)
    assert b"Sec-WebSocket-Extensions" not in plain_transport.written[0]
    assert plain.deflate is None
    _, _, transport = opened_client(None, offer=DeflateOffer(10))
    assert (
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover; server_max_window_bits=10\r\n" in transport.written[0]
    )
    assert DeflateOffer().header() == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )


async def test_client_inflates_each_message_on_its_own_without_context_takeover() -> None:
    books = BookFrames(2)
    texts = [books.frame(n % 2, 60_000 * n, 10**12 + n) for n in range(4)] + [b"short"]
    proto, got, transport = opened_client(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12"
    )
    assert proto.deflate == Deflate(True, True, 12)
    frames = server_frames(texts, takeover=False)
    stream = b"".join(frames)
    # Across chunk boundaries: the first frame's head, then everything else in two pieces.
    for piece in (stream[:3], stream[3:900], stream[900:]):
        proto.data_received(piece)
    assert got == texts
    assert proto.inflated == 5
    assert proto.frame_bytes == len(frames[-1])
    assert not transport.aborted
    assert proto.error is None
    # 1-2 KB books, sent at about 0.4 of their size
    assert all(1000 < len(t) < 2000 for t in texts[:4])
    assert all(len(f) < 0.45 * len(t) for f, t in zip(frames[:4], texts[:4], strict=True))


async def test_client_keeps_one_decompressor_when_the_server_keeps_its_context() -> None:
    books = BookFrames(1)
    texts = [books.frame(0, 0, 10**12), books.frame(0, 0, 10**12 + 1)]
    frames = server_frames(texts, takeover=True, bits=15)
    payload = frames[1][4:]  # 2-byte head + 2-byte length: the second message's deflate data
    with pytest.raises(zlib.error):  # it refers to the first message: not decodable alone
        zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    proto, got, _ = opened_client("permessage-deflate; client_no_context_takeover")
    assert proto.deflate == Deflate(False, True, 15)
    for frame in frames:
        proto.data_received(frame)
    assert got == texts
    assert proto.inflated == 2


async def test_plain_frames_pass_through_a_deflate_connection() -> None:
    proto, got, _ = opened_client("permessage-deflate; server_no_context_takeover")
    text = update_frame("t", "S", 60_000, 1_234_567)
    proto.data_received(unmasked_text_frame(text))
    assert got == [text]
    assert proto.inflated == 0
    assert proto.frame_bytes == len(text) + 4  # 126 <= size: 2 + 2 bytes of header


async def test_a_compressed_frame_nobody_agreed_to_is_a_protocol_error() -> None:
    proto, got, transport = opened_client(None)
    assert proto.deflate is None  # offered, declined
    proto.data_received(server_frames([b"x" * 200], takeover=False)[0])
    assert got == []
    assert proto.error == "RSV1 set on a frame, and no permessage-deflate agreed"
    assert transport.aborted


async def test_a_frame_that_does_not_inflate_is_a_protocol_error() -> None:
    proto, got, transport = opened_client("permessage-deflate; server_no_context_takeover")
    proto.data_received(unmasked_text_frame(b"\xff" * 40, rsv1=True))
    assert got == []
    assert proto.error is not None
    assert "does not inflate" in proto.error
    assert transport.aborted


@pytest.mark.parametrize(
    ("answer", "offer", "expected"),
    [
        (None, DeflateOffer(), None),
        ("", DeflateOffer(), None),
        ("permessage-deflate", DeflateOffer(), Deflate(False, False, 15)),
        (
            "Permessage-Deflate ; server_no_context_takeover;client_no_context_takeover ; "
            'server_max_window_bits="9"',
            DeflateOffer(),
            Deflate(True, True, 9),
        ),
        # the server names no window: the one offered holds
        (
            "permessage-deflate; server_no_context_takeover",
            DeflateOffer(10),
            Deflate(True, False, 10),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            DeflateOffer(10),
            Deflate(False, False, 10),
        ),
    ],
)
def test_extension_answers_that_rfc_7692_allows(
    answer: str | None, offer: DeflateOffer, expected: Deflate | None
) -> None:
    assert parse_deflate_answer(answer, offer) == expected


@pytest.mark.parametrize(
    ("answer", "offer", "reason"),
    [
        ("x-webkit-deflate-frame", DeflateOffer(), "not offered"),
        ("permessage-deflate, permessage-deflate", DeflateOffer(), "several"),
        ("permessage-deflate; client_max_window_bits=10", DeflateOffer(), "not allowed"),
        ("permessage-deflate; foo", DeflateOffer(), "not allowed"),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            DeflateOffer(),
            "twice",
        ),
        ("permessage-deflate; server_no_context_takeover=1", DeflateOffer(), "takes no value"),
        ("permessage-deflate; server_max_window_bits=16", DeflateOffer(), "bad"),
        ("permessage-deflate; server_max_window_bits", DeflateOffer(), "bad"),
        ("permessage-deflate; server_max_window_bits=12", DeflateOffer(10), "larger than offered"),
    ],
)
def test_extension_answers_that_it_does_not(answer: str, offer: DeflateOffer, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_deflate_answer(answer, offer)


async def test_a_bad_answer_fails_the_handshake() -> None:
    proto, _, transport = opened_client("permessage-deflate; server_max_window_bits=99")
    assert proto.error is not None
    assert "server_max_window_bits" in proto.error
    assert transport.aborted
    with pytest.raises(ConnectionError):
        await proto.opened


def test_inflate_refuses_a_bomb() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = (compressor.compress(b"a" * 100_000) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    deflate = Deflate(True, True, 15)
    assert inflate(data, None, deflate, 200_000) == b"a" * 100_000
    with pytest.raises(ValueError, match="more than 1000 bytes"):
        inflate(data, None, deflate, 1000)


# -- the deflate scenarios' frames and the compress-once floor ------------------------------


def test_book_frames_are_1_to_2_kb_updates_whose_stamp_clients_find() -> None:
    books = BookFrames(3)
    frame = books.frame(2, BAR_TIME_BASE + 5 * 60_000, 1_234_567_890_123)
    message = orjson.loads(frame)
    payload = message["payload"]
    assert message["type"] == "bars.update"
    assert payload["topic"] == topic_of("BENCH002")
    assert payload["symbol"] == "BENCH002"
    assert len(payload["bids"]) == len(payload["asks"]) == 30
    assert payload["bids"][0][0] < PRICES[0] < payload["asks"][0][0]
    assert payload["volume"] == 1_234_567_890_123.0
    assert payload["closed"] is True
    assert frame.endswith(UPDATE_SUFFIX)
    assert stamp_of(frame) == 1_234_567_890_123
    assert 1000 < len(frame) < 2000
    # the same seed everywhere: every server sends the same bytes
    assert BookFrames(3).frame(2, BAR_TIME_BASE, 1) == books.frame(2, BAR_TIME_BASE, 1)
    assert book_floor() == pytest.approx(0.385, abs=0.01)


def test_raw_floor_compresses_once_as_the_library_decodes_it() -> None:
    text = BookFrames(1).frame(0, 0, 10**12)
    data = deflated_text_frame(text, 12)
    assert data[0] == 0xC1  # FIN, RSV1, text
    reader = StreamReader()
    reader.feed_data(data)
    client_side = PerMessageDeflate(False, True, 12, 15)
    parser = Frame.parse(reader.read_exact, mask=False, extensions=[client_side])
    decoded = next_value(parser)
    assert decoded.data == text
    assert not decoded.rsv1
    assert unmasked_text_frame(b"abc", rsv1=True) == b"\xc1\x03abc"


def next_value(generator: Any) -> Any:
    """The value a sans-I/O parser generator returns once its input is there."""
    try:
        next(generator)
    except StopIteration as done:
        return done.value
    raise AssertionError("the parser wants more data")


# -- bytes per delivery and the compressed share ---------------------------------------------


def test_clients_count_wire_bytes_of_in_window_updates_only() -> None:
    window = Window(t0=100, t1=200)
    conn = Conn(["S"], False, window)

    class Proto:
        frame_bytes = 0

    proto = Proto()
    conn.proto = proto  # type: ignore[assignment]
    for stamp, size in ((150, 530), (199, 520), (250, 900), (99, 700)):
        proto.frame_bytes = size
        conn.on_text(update_frame("t", "S", 60_000, stamp), 300)
    assert conn.count == 2
    assert window.out_of_window == 2
    assert window.wire_bytes == 1050


def test_figures_of_a_deflate_run() -> None:
    scenario = replace(QUICK_DEFLATE_REF, name="deflate", deflate=True, measure_s=2.0)
    histogram = Histogram()
    histogram.record(800)
    report = {
        "healthy_conns": 100,
        "healthy_frames": 10_000,
        "stalled_frames": 0,
        "healthy_min": 100,
        "closed": {},
        "histogram": histogram.to_json(),
        "wire_bytes": 5_212_000,
        "deflate_conns": 100,
        "inflated_frames": 12_000,
        "frames_since_window": 12_500,
    }
    published = {"in_window": 200, "errors": 0, "max_lag_us": 0, "cancelled": False}
    figures = _figures(scenario, published, [report, report], (0.15, 0.05), 0.2, 2.0)
    assert figures["wire_bytes_per_delivery"] == 521.2
    assert figures["compressed_pct"] == 96.0
    assert figures["deflate_conns"] == 200
    assert figures["cpu_us_per_delivery"] == 7.5
