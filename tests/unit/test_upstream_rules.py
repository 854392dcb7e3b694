"""The pure rules of the upstream clients: pacing, Binance's control protocol and REST gate,
quote assembly, staleness. No sockets, no clock: time is passed in."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.channels.registry import default_registry
from marketcast.feeds.binance_protocol import (
    BookTickerEvent,
    MiniTickerEvent,
    UpstreamFormatError,
    combined_url,
    key_of_stream,
    parse_frame,
    parse_server_time,
    streams_for,
)
from marketcast.feeds.binance_rules import ControlPlanner, QuoteAssembler, RestGate, UpstreamClock
from marketcast.feeds.pacing import Backoff, SlidingWindow
from marketcast.market import BarKey, Quote, QuoteKey
from marketcast.sim import binance_control
from marketcast.staleness import StalenessTracker

# -- SlidingWindow ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    limit=st.integers(1, 6),
    gaps=st.lists(st.floats(0, 0.7, allow_nan=False), min_size=1, max_size=60),
)
def test_sliding_window_never_lets_more_than_limit_into_any_window(
    limit: int, gaps: list[float]
) -> None:
    window = SlidingWindow(limit, 1.0)
    now, sent = 0.0, []
    for gap in gaps:  # a caller that tries at arbitrary times and waits as told
        now += gap
        now += window.wait_time(now)
        assert window.try_acquire(now)
        sent.append(now)
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[i:] if u < t + 1.0) <= limit


def test_sliding_window_block_until() -> None:
    window = SlidingWindow(3, 10.0)
    window.block_until(5.0)
    assert window.wait_time(1.0) == pytest.approx(4.0)
    assert window.wait_time(5.0) == 0.0


def test_sliding_window_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        SlidingWindow(0, 1.0)
    with pytest.raises(ValueError, match="window must be a positive"):
        SlidingWindow(1, 0.0)


# -- Backoff ------------------------------------------------------------------------------------


def test_full_jitter_backoff_doubles_its_ceiling_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30]
    backoff.reset()
    assert backoff.ceiling() == 1.0
    with pytest.raises(ValueError, match="cap must be >= base"):
        Backoff(2.0, 1.0)


def test_backoff_after_a_working_connection_starts_from_base_again() -> None:
    """The issue's slowing reconnects: a drop of a connection that delivered data costs at
    most ``base``, however many drops came before; failures escalate."""
    backoff = Backoff(1.0, 30.0, rng=random.Random(3))
    for _ in range(50):
        assert backoff.after_connection(delivered=True) <= 1.0
    ceilings = []
    for _ in range(6):  # refused attempts / connections that died before any data
        ceilings.append(backoff.ceiling())
        assert backoff.after_connection(delivered=False) <= ceilings[-1]
    assert ceilings == [2, 4, 8, 16, 30, 30]
    assert backoff.after_connection(delivered=True) <= 1.0
    assert backoff.ceiling() == 2.0  # one attempt counted since the working connection


def test_upstream_clock_keeps_the_newest_stated_time() -> None:
    clock = UpstreamClock()
    assert clock.now is None
    assert not clock.fresh(0.0, 5.0)
    clock.observe(1_000, 10.0)
    clock.observe(900, 11.0)  # an older statement (another stream, a late frame)
    assert (clock.now, clock.seen_at) == (1_000, 10.0)
    assert clock.fresh(12.0, 5.0)
    assert not clock.fresh(15.5, 5.0)
    assert parse_server_time({"serverTime": 1_499_827_319_559}) == 1_499_827_319_559
    with pytest.raises(UpstreamFormatError, match="serverTime"):
        parse_server_time({"time": 1})


# -- Binance control messages ---------------------------------------------------------------


def test_planner_batches_wanted_streams_into_one_subscribe() -> None:
    planner = ControlPlanner(max_params=3)
    for name in ("a@kline_1m", "b@kline_1m", "c@kline_1m", "d@kline_1m"):
        planner.want(name)
    planner.connected(["a@kline_1m"])  # the URL carried the first one
    first = planner.next_message()
    assert first == {
        "method": "SUBSCRIBE",
        "params": ["b@kline_1m", "c@kline_1m", "d@kline_1m"],
        "id": 1,
    }
    assert planner.next_message() is None
    planner.drop("a@kline_1m")
    planner.drop("c@kline_1m")
    assert planner.next_message() == {
        "method": "UNSUBSCRIBE",
        "params": ["a@kline_1m", "c@kline_1m"],
        "id": 2,
    }
    assert planner.on_reply(1) == ("SUBSCRIBE", ("b@kline_1m", "c@kline_1m", "d@kline_1m"))
    assert planner.next_message() is None


def test_planner_subscribe_then_drop_before_sending_sends_nothing() -> None:
    planner = ControlPlanner()
    planner.connected([])
    planner.want("x@bookTicker")
    planner.drop("x@bookTicker")
    assert planner.next_message() is None


def test_planner_does_not_retry_a_refused_stream_until_wanted_again() -> None:
    planner = ControlPlanner()
    planner.connected([])
    planner.want("zzz@kline_1m")
    message = planner.next_message()
    assert message is not None
    assert planner.on_failure(message["id"]) == ("SUBSCRIBE", ("zzz@kline_1m",))
    assert planner.next_message() is None
    planner.drop("zzz@kline_1m")
    planner.want("zzz@kline_1m")
    assert planner.next_message() == {"method": "SUBSCRIBE", "params": ["zzz@kline_1m"], "id": 2}


def test_planner_reconnect_resends_what_the_url_did_not_carry() -> None:
    planner = ControlPlanner()
    for name in ("a@miniTicker", "b@miniTicker"):
        planner.want(name)
    planner.connected(["a@miniTicker", "b@miniTicker"])
    assert planner.next_message() is None
    planner.connected(["a@miniTicker"])
    assert planner.next_message() == {"method": "SUBSCRIBE", "params": ["b@miniTicker"], "id": 1}


def test_stream_names_and_urls() -> None:
    assert streams_for(BarKey("BTCUSDT", "M")) == ("btcusdt@kline_1M",)
    assert streams_for(QuoteKey("ETHUSDT")) == ("ethusdt@bookTicker", "ethusdt@miniTicker")
    assert key_of_stream("btcusdt@kline_4h") == BarKey("BTCUSDT", "240")
    assert key_of_stream("btcusdt@kline_6h") is None
    assert combined_url("ws://h:1/", ["a@x", "b@y"]) == "ws://h:1/stream?streams=a@x/b@y"


def test_control_replies_and_errors_parse() -> None:
    ok = parse_frame('{"result":null,"id":312}')
    assert ok.__class__.__name__ == "ControlReply"
    failure = parse_frame('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":3}')
    assert (failure.code, failure.message, failure.id) == (2, "Invalid request: invalid stream", 3)  # type: ignore[union-attr]
    shutdown = parse_frame('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":5}}')
    assert shutdown.__class__.__name__ == "ServerShutdown"
    with pytest.raises(UpstreamFormatError, match="not JSON"):
        parse_frame('{"stream":')
    with pytest.raises(UpstreamFormatError, match="'x' must be a boolean"):
        parse_frame(
            '{"stream":"a@kline_1m","data":{"e":"kline","E":1,"k":{"t":0,"s":"A","i":"1m",'
            '"o":"1","h":"1","l":"1","c":"1","v":"1","x":"no"}}}'
        )


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("{oops", {"error": {"code": 3}, "id": None}),
        ('{"method":"SUBSCRIBE","params":["btcusdt@kline_7m"],"id":1}', {"error": {"code": 2}}),
        ('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":true}', {"error": {"code": 2}}),
        ('{"params":[],"id":1}', {"error": {"code": 2}}),
        ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":5}', {"error": {"code": 1}}),
        ('{"method":"GET_PROPERTY","params":["colour"],"id":5}', {"error": {"code": 0}}),
        ('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":"abc1"}', {"result": None}),
    ],
)
def test_fake_control_protocol_error_codes(message: str, reply: dict[str, object]) -> None:
    session = binance_control.Session(1024, lambda s: s == "BTCUSDT")
    answer = binance_control.handle(session, message)
    for key, value in reply.items():
        if isinstance(value, dict):
            assert {k: answer[key][k] for k in value} == value  # type: ignore[index]
        else:
            assert answer[key] == value


def test_fake_control_protocol_lists_and_limits_streams() -> None:
    session = binance_control.Session(2, lambda s: s in {"BTCUSDT", "ETHUSDT"})
    params = '["btcusdt@kline_1m","ethusdt@bookTicker"]'
    assert (
        binance_control.handle(session, f'{{"method":"SUBSCRIBE","params":{params},"id":1}}')[
            "result"
        ]
        is None
    )
    listing = binance_control.handle(session, '{"method":"LIST_SUBSCRIPTIONS","id":3}')
    assert listing == {"result": ["btcusdt@kline_1m", "ethusdt@bookTicker"], "id": 3}
    over = binance_control.handle(
        session, '{"method":"SUBSCRIBE","params":["btcusdt@miniTicker"],"id":4}'
    )
    assert over["error"]["code"] == 2


# -- REST gate ----------------------------------------------------------------------------------


def test_rest_gate_honours_retry_after_and_weight() -> None:
    gate = RestGate(weight_limit=100)
    gate.on_response(10.0, 30_000, 429, {"retry-after": "7"})
    assert gate.wait_time(10.0) == pytest.approx(7.0)
    gate = RestGate(weight_limit=100)
    gate.on_response(10.0, 45_000, 418, {})
    assert gate.wait_time(10.0) == pytest.approx(120.0)
    gate = RestGate(weight_limit=100)
    gate.on_response(10.0, 45_000, 200, {"x-mbx-used-weight-1m": "95"})
    assert gate.wait_time(10.0) == pytest.approx(15.0)  # until the next clock minute
    gate.on_response(10.0, 45_000, 200, {"x-mbx-used-weight-1m": "10"})
    assert gate.last_used_weight == 10


# -- quotes -----------------------------------------------------------------------------------


def test_quote_needs_both_streams_and_computes_the_change() -> None:
    assembler = QuoteAssembler()
    assert assembler.on_event(BookTickerEvent("BTCUSDT", 1, 99.0, 101.0), 5) is None
    quote = assembler.on_event(MiniTickerEvent("BTCUSDT", 4, 100.0, 80.0, 12.5), 6)
    assert quote == Quote(6, 99.0, 101.0, 100.0, 12.5, 20.0, 25.0)
    assert assembler.on_event(BookTickerEvent("BTCUSDT", 2, 99.5, 100.5), 7) == Quote(
        7, 99.5, 100.5, 100.0, 12.5, 20.0, 25.0
    )


# -- staleness ---------------------------------------------------------------------------------


def test_staleness_threshold_is_intervals_capped() -> None:
    channels = default_registry()
    tracker = StalenessTracker(
        intervals=3,
        max_seconds=300,
        interval_of=lambda key: channels.of_key(key).stale_after(key),
    )
    one, day, quote = BarKey("A", "1"), BarKey("A", "D"), QuoteKey("A")
    assert tracker.threshold(one) == 180
    assert tracker.threshold(day) == 300
    assert tracker.threshold(quote) == 300
    for key in (one, day, quote):
        tracker.watching(key, 0.0)
    assert tracker.check(179.0) == []
    tracker.touch(quote, 100.0)
    assert tracker.check(300.0) == [one, day]
    assert tracker.check(301.0) == []  # reported once
    assert tracker.is_stale(one)
    assert tracker.touch(one, 302.0) is True  # fresh again
    assert tracker.stale_keys() == [day]
    assert tracker.check(400.0) == [quote]
    tracker.forget(day)
    assert tracker.stale_keys() == [quote]
    assert tracker.touch(BarKey("B", "1"), 1.0) is False  # not watched: not tracked


def test_stale_repeat_is_a_notice_not_a_bar() -> None:
    import orjson

    from marketcast.channels.bars import BarsUpdatePayload, bar_update
    from marketcast.market import Candle

    key, candle = BarKey("BTCUSDT", "1"), Candle(60_000, 1, 2, 0.5, 1.5, 3, closed=True)
    frame = bar_update("t", key, candle, stale=True)
    assert (frame.order, frame.final) == (None, False)  # no guard or dedupe drops it
    payload = orjson.loads(frame.text)["payload"]
    assert payload["stale"] is True
    assert BarsUpdatePayload.model_validate(payload).closed is True
    assert "stale" not in orjson.loads(bar_update("t", key, candle).text)["payload"]


def test_staleness_follows_each_keys_last_data_through_recovery() -> None:
    """Deadlines move with the data: a key touched in time is never stale, one silent for
    its threshold turns stale once, a touch brings it back, and silence again makes it stale
    again; a forgotten key is never reported."""
    tracker = StalenessTracker(intervals=3, max_seconds=300, interval_of=lambda key: 60.0)
    busy, quiet, gone = BarKey("A", "1"), BarKey("B", "1"), BarKey("C", "1")
    for key in (busy, quiet, gone):
        tracker.watching(key, 0.0)
    tracker.forget(gone)
    for now in range(10, 600, 10):
        tracker.touch(busy, float(now))
        turned = tracker.check(float(now))
        if now == 180:
            assert turned == [quiet]
        elif now == 400:
            assert turned == []  # touched at 300: stale again only at 480
        elif now == 480:
            assert turned == [quiet]
        else:
            assert turned == [], now
        if now == 300:
            assert tracker.touch(quiet, 300.0)  # data again: fresh
            assert not tracker.is_stale(quiet)
    assert tracker.stale_keys() == [quiet]
    assert tracker.next_check_in() == 18.0


def test_touching_many_keys_at_once_is_touching_each() -> None:
    """``touch_many`` (an update's keys in one call) leaves two trackers fed the same data
    key by key and in one go in the same state: watched keys fresh, stale ones back, keys
    not watched ignored, and the same keys turning stale later."""
    keys = [BarKey("A", "1"), BarKey("B", "1"), BarKey("C", "1"), BarKey("D", "1")]
    one, many = (
        StalenessTracker(intervals=3, max_seconds=300, interval_of=lambda key: 60.0)
        for _ in range(2)
    )
    for tracker in (one, many):
        for key in keys[:3]:  # D is never watched
            tracker.watching(key, 0.0)
        assert tracker.check(200.0) == keys[:3]
    for key in keys[1:]:
        one.touch(key, 250.0)
    many.touch_many(keys[1:], 250.0)
    for tracker in (one, many):
        assert tracker.stale_keys() == [keys[0]]
        assert tracker.check(400.0) == []
        assert tracker.check(430.0) == keys[1:3]  # 180 s after their touch
