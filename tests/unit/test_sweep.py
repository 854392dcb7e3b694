"""The slow-consumer sweep (``delivery.sweep``) over fake connections, and a real ``Connection``'s
byte counting and registration — driven by explicit times, no socket."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from marketcast.delivery.lag import Backlog, SlowConsumerLimits
from marketcast.delivery.stats import FanoutStats
from marketcast.delivery.sweep import SWEEP_STEP, SlowConsumerSweep
from marketcast.wire import Frame
from tests.unit.test_lazy_writer import connection

LIMITS = SlowConsumerLimits(max_lag=10.0, max_bytes=1_000_000)


@dataclass(eq=False)
class FakeConn:
    """A connection as the sweep sees it; ``unsent`` is what its socket still holds."""

    uid: str
    stats: FanoutStats
    unsent: int | None = 0
    outbox: list[Frame] = field(default_factory=list)
    stopped: bool = False
    written: int = 0
    measured: int = 0
    closed: list[tuple[int, str]] = field(default_factory=list)

    def write(self, nbytes: int) -> None:
        """What ``Connection._wrote`` does: count, and register with the first write."""
        if not self.written and self.stats.wrote is not None:
            self.stats.wrote.add(self)
        self.written += nbytes

    def take_written(self) -> int:
        nbytes, self.written = self.written, 0
        return nbytes

    def backlog(self) -> Backlog:
        self.measured += 1
        oldest = self.outbox[0].created if self.outbox else None
        queued = sum(len(f.text) for f in self.outbox)
        return Backlog(queued_bytes=queued, oldest_queued=oldest, unsent=self.unsent)

    def terminate(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))
        self.stopped = True


async def started(limits: SlowConsumerLimits = LIMITS) -> tuple[SlowConsumerSweep, FanoutStats]:
    stats = FanoutStats()
    sweep = SlowConsumerSweep(limits, stats, interval=3600.0)  # driven by hand below
    sweep.start()
    return sweep, stats


async def test_a_client_falling_behind_is_closed_once_beyond_the_lag_bound() -> None:
    sweep, stats = await started()
    slow = FakeConn("slow", stats)
    healthy = FakeConn("healthy", stats)
    for second in range(15):
        slow.write(2_000)
        healthy.write(2_000)
        slow.unsent = 2_000 * (second + 1) - 100 * second  # takes 100 bytes a second
        sweep.sweep(float(second))
        if slow.closed:
            break
    # Written at t=0, not all taken at t=11: at least 11 s behind.
    assert slow.closed == [(4008, "slow consumer: 11.0 s behind")]
    assert stats.slow_consumers == {"lag": 1}
    assert healthy.closed == []
    sweep.stop()


async def test_a_client_that_keeps_up_is_measured_rarely_and_then_forgotten() -> None:
    sweep, stats = await started()
    conn = FakeConn("a", stats)
    for second in range(10):
        conn.write(500)
        sweep.sweep(float(second))
    # Far from both bounds: measured at t=5 (half the lag bound), not every second.
    assert conn.measured == 1
    assert sweep.tracked == 1
    sweep.sweep(10.0)  # nothing new written; measured again at half the lag bound
    sweep.sweep(11.0)
    assert conn.measured == 2
    assert sweep.tracked == 0, "everything taken, nothing written: forgotten"
    # Its next write registers it again.
    conn.write(10)
    sweep.sweep(12.0)
    assert sweep.tracked == 1
    sweep.stop()


async def test_too_much_waiting_at_two_sweeps_in_a_row_closes() -> None:
    sweep, stats = await started()
    conn = FakeConn("big", stats)
    conn.write(3_000_000)
    conn.unsent = 1_500_000
    sweep.sweep(0.0)
    assert conn.closed == []
    sweep.sweep(1.0)
    assert conn.closed == [(4008, "slow consumer: 1.5 MB waiting")]
    assert stats.slow_consumers == {"waiting": 1}
    sweep.stop()


async def test_queued_frames_are_aged_even_when_the_socket_cannot_be_seen() -> None:
    sweep, stats = await started()
    conn = FakeConn("asgi", stats, unsent=None)
    conn.outbox.append(Frame("x", created=100.0))
    conn.write(0)  # the writer started
    sweep.sweep(105.0)
    assert conn.closed == []
    sweep.sweep(110.5)
    assert conn.closed == [(4008, "slow consumer: 10.5 s behind")]
    sweep.stop()


async def test_closed_connections_are_forgotten_without_being_measured() -> None:
    sweep, stats = await started()
    conn = FakeConn("gone", stats, unsent=10**9)
    conn.write(10**9)
    conn.stopped = True
    sweep.sweep(0.0)
    assert sweep.tracked == 0
    assert conn.measured == 0
    sweep.stop()


async def test_nothing_registers_while_no_sweep_runs() -> None:
    stats = FanoutStats()
    sweep = SlowConsumerSweep(LIMITS, stats)
    assert stats.wrote is None
    sweep.start()
    assert stats.wrote == set()
    sweep.stop()
    assert stats.wrote is None


async def test_the_timer_sweeps_by_itself() -> None:
    stats = FanoutStats()
    sweep = SlowConsumerSweep(
        SlowConsumerLimits(max_lag=0.001, max_bytes=10**9), stats, interval=0.001
    )
    conn = FakeConn("t", stats, unsent=100)
    closed = asyncio.Event()
    conn.terminate = lambda code, reason: closed.set()  # type: ignore[method-assign]
    sweep.start()
    conn.write(100)
    await asyncio.wait_for(closed.wait(), 10)
    sweep.stop()


async def test_a_connection_counts_the_bytes_it_writes_and_registers_once_a_period() -> None:
    conn, _, _ = connection()
    conn.stats.wrote = set()
    conn.deliver(Frame("a"))
    conn.deliver(Frame("bb"))
    assert conn.stats.wrote == {conn}
    assert conn.take_written() == len(Frame("a").wire()) + len(Frame("bb").wire())
    assert conn.take_written() == 0
    conn.stats.wrote = set()  # what the sweep does when it takes the set
    conn.deliver(Frame("c"))
    assert conn.stats.wrote == {conn}
    backlog = conn.backlog()
    assert (backlog.queued_bytes, backlog.oldest_queued, backlog.unsent) == (0, None, 0)


async def test_a_timed_pass_goes_in_steps_and_lets_other_callbacks_run_between_them() -> None:
    """Thousands of clients that wrote are swept a step at a time: what the loop has queued
    meanwhile (a frame's delivery) runs before the rest of the pass, which still completes."""
    sweep, stats = await started()
    conns = [FakeConn(f"c{i}", stats, unsent=0) for i in range(3 * SWEEP_STEP + 10)]
    for conn in conns:
        conn.write(1_000)
    progress: list[int] = []
    sweep._tick()  # what the timer calls: the first step runs now
    looked = sum(1 for c in conns if not c.written)
    assert 0 < looked < len(conns), "a whole pass ran at once"
    asyncio.get_running_loop().call_soon(
        lambda: progress.append(sum(1 for c in conns if not c.written))
    )
    for _ in range(10):
        await asyncio.sleep(0)
    assert progress, "nothing else ran during the pass"
    assert progress[0] < len(conns), "the other callback waited for the whole pass"
    assert all(not c.written for c in conns), "the pass did not finish"
    assert sweep.tracked == len(conns)
    sweep.stop()
