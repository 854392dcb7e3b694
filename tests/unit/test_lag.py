"""How far behind a client is, from marks of bytes written (``delivery.lag``) — no socket, no clock."""

from __future__ import annotations

import pytest

from marketcast.delivery.lag import (
    MAX_MARKS,
    Backlog,
    LagTracker,
    SlowConsumerLimits,
    Verdict,
    format_size,
)

LIMITS = SlowConsumerLimits(max_lag=10.0, max_bytes=1_000_000)


def socket_backlog(unsent: int | None, *, queued: int = 0, oldest: float | None = None) -> Backlog:
    return Backlog(queued_bytes=queued, oldest_queued=oldest, unsent=unsent)


def test_lag_is_the_age_of_the_first_mark_past_what_the_client_took() -> None:
    tracker = LagTracker()
    tracker.wrote(1000, now=1.0)  # bytes 1..1000 were out by t=1
    tracker.wrote(1000, now=2.0)  # bytes 1001..2000 by t=2
    # 1500 still wait: the client took 500, so byte 501 (out by t=1) is the oldest waiting.
    assert tracker.measure(socket_backlog(1500), 5.0, LIMITS) is None
    assert tracker.taken == 500
    assert tracker.lag(5.0) == 4.0
    # It took 600 more: everything written by t=1 is gone, byte 1101 was out by t=2.
    assert tracker.measure(socket_backlog(900), 6.0, LIMITS) is None
    assert tracker.lag(6.0) == 4.0
    assert not tracker.settled
    assert tracker.measure(socket_backlog(0), 6.5, LIMITS) is None
    assert tracker.settled
    assert tracker.lag(7.0) == 0.0


def test_beyond_the_lag_bound_the_verdict_says_how_far_behind() -> None:
    tracker = LagTracker()
    tracker.wrote(300, now=0.0)
    assert tracker.measure(socket_backlog(300), 10.0, LIMITS) is None  # exactly at the bound
    verdict = tracker.measure(socket_backlog(300), 12.34, LIMITS)
    assert verdict == Verdict("lag", "slow consumer: 12.3 s behind")


def test_the_oldest_queued_frame_counts_too() -> None:
    tracker = LagTracker()
    backlog = socket_backlog(0, queued=500, oldest=3.0)
    assert tracker.lag(8.0, backlog.oldest_queued) == 5.0
    assert tracker.measure(backlog, 14.0, LIMITS) == Verdict("lag", "slow consumer: 11.0 s behind")


def test_the_lag_bound_can_be_off() -> None:
    tracker = LagTracker()
    tracker.wrote(100, now=0.0)
    off = SlowConsumerLimits(max_lag=0.0, max_bytes=1_000_000)
    assert tracker.measure(socket_backlog(100), 3600.0, off) is None
    assert tracker.lag(3600.0) == 3600.0


def test_too_much_waiting_closes_only_at_two_measurements_in_a_row() -> None:
    tracker = LagTracker()
    tracker.wrote(3_000_000, now=0.0)
    # Over the bound once (a burst), then drained below it: no verdict.
    assert tracker.measure(socket_backlog(1_200_000), 0.5, LIMITS) is None
    assert tracker.measure(socket_backlog(400_000), 1.5, LIMITS) is None
    assert tracker.measure(socket_backlog(1_100_000, queued=0), 2.5, LIMITS) is None
    # The outbox and the socket together, over the bound a second time in a row.
    verdict = tracker.measure(socket_backlog(900_000, queued=700_000), 3.5, LIMITS)
    assert verdict == Verdict("waiting", "slow consumer: 1.6 MB waiting")


def test_without_a_visible_socket_only_the_outbox_counts() -> None:
    tracker = LagTracker()
    tracker.wrote(5000, now=0.0)
    assert tracker.measure(socket_backlog(None), 60.0, LIMITS) is None
    assert tracker.settled
    assert tracker.lag(60.0) == 0.0


def test_taken_never_goes_back_nor_past_what_was_written() -> None:
    tracker = LagTracker()
    tracker.wrote(1000, now=0.0)
    tracker.measure(socket_backlog(200), 1.0, LIMITS)
    assert tracker.taken == 800
    # More unsent than ever written since: the server's own frames (a ping) share the socket.
    tracker.measure(socket_backlog(1300), 2.0, LIMITS)
    assert tracker.taken == 800
    tracker.measure(socket_backlog(-5), 3.0, LIMITS)
    assert tracker.taken == 1000


def test_marks_are_thinned_but_the_oldest_is_kept() -> None:
    tracker = LagTracker()
    for second in range(10 * MAX_MARKS):
        tracker.wrote(10, now=float(second))
    assert len(tracker._marks) <= MAX_MARKS
    assert tracker._marks[0] == (10, 0.0)
    assert tracker._marks[-1] == (10 * 10 * MAX_MARKS, float(10 * MAX_MARKS - 1))
    # Still a lower bound of how long the oldest waiting byte waited.
    tracker.measure(socket_backlog(10 * 10 * MAX_MARKS - 5), 1000.0, SlowConsumerLimits(0, 10**9))
    assert tracker.lag(1000.0) == 1000.0


def test_nothing_written_adds_no_mark() -> None:
    tracker = LagTracker()
    tracker.wrote(0, now=1.0)
    assert tracker.settled
    assert tracker._marks == []


@pytest.mark.parametrize(
    ("unconfirmed", "oldest", "now", "queued", "due"),
    [
        (0, None, 100.0, False, False),  # everything taken: nothing to look at
        (0, None, 100.0, True, True),  # frames queued: always
        (600_000, 0.0, 0.0, False, True),  # over half the byte bound, even if fresh
        (400_000, 0.0, 4.9, False, False),  # far from both bounds
        (400_000, 0.0, 5.0, False, True),  # half the lag bound old
    ],
)
def test_due_skips_connections_far_from_both_bounds(
    unconfirmed: int, oldest: float | None, now: float, queued: bool, due: bool
) -> None:
    tracker = LagTracker()
    if unconfirmed:
        assert oldest is not None
        tracker.wrote(unconfirmed, now=oldest)
    assert tracker.due(now, LIMITS, queued=queued) is due


def test_recheck_period_without_a_lag_bound() -> None:
    assert LIMITS.recheck == 5.0
    assert SlowConsumerLimits(max_lag=0, max_bytes=1).recheck == 5.0
    assert SlowConsumerLimits(max_lag=2, max_bytes=1).recheck == 1.0


def test_sizes_read_like_a_person_would_write_them() -> None:
    assert format_size(900) == "900 B"
    assert format_size(420_300) == "420 KB"
    assert format_size(1_600_000) == "1.6 MB"
