"""The parts of the HTTP guard that need no server: the automatic connection cap, and the
rate-limited refusal log (first refusal at once, then one summed-up line per interval)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from marketcast.http_guard import FD_RESERVE, HttpGuard, default_max_tcp_connections
from marketcast.refusals import ACCEPT_OUT_OF_RESOURCES, RefusalLog, accept_failure_handler
from marketcast.settings import Settings


class Lines(logging.Handler):
    """Collects formatted records and signals each one, so tests wait for lines, not time."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.arrived.set()

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.lines) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def lines() -> Lines:
    return Lines()


def refusal_log(lines: Lines, interval: float) -> RefusalLog:
    logger = logging.getLogger(f"test.refusals.{id(lines)}")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    logger.addHandler(lines)
    return RefusalLog(interval=interval, logger=logger)


def test_automatic_cap_leaves_a_reserve_of_descriptors() -> None:
    assert default_max_tcp_connections(1024) == 1024 - FD_RESERVE
    assert default_max_tcp_connections(65_536) == 65_536 - FD_RESERVE
    # A small limit still leaves half of it to clients.
    assert default_max_tcp_connections(200) == 100
    assert default_max_tcp_connections(1) == 1
    assert default_max_tcp_connections(None) is None


def test_guard_from_settings() -> None:
    automatic = HttpGuard.from_settings(Settings(), soft_limit=4096)
    assert automatic.max_connections == 4096 - FD_RESERVE
    assert (automatic.header_timeout, automatic.body_timeout) == (10.0, 30.0)
    explicit = HttpGuard.from_settings(
        Settings(max_tcp_connections=50, http_header_timeout=2, http_body_timeout=3),
        soft_limit=4096,
    )
    assert explicit.max_connections == 50
    assert (explicit.header_timeout, explicit.body_timeout) == (2.0, 3.0)


async def test_first_refusal_is_logged_at_once_then_summed_up(lines: Lines) -> None:
    report = refusal_log(lines, interval=0.2)
    report.note("over the cap")
    assert len(lines.lines) == 1, "the first refusal is logged at once"
    assert lines.lines[0].startswith("turning connections away: 1 over the cap; ")
    for _ in range(3):
        report.note("over the cap")
    report.note("too slow")
    assert len(lines.lines) == 1, "later ones wait for the interval"
    await lines.wait_for(2)
    assert lines.lines[1] == "turned connections away in the last 0.2s: 3 over the cap, 1 too slow"
    assert report.totals == {"over the cap": 4, "too slow": 1}
    report.close()
    assert len(lines.lines) == 2, "nothing was pending"


async def test_close_writes_what_is_pending(lines: Lines) -> None:
    report = refusal_log(lines, interval=3600)
    report.note("over the cap")
    report.note("over the cap")
    report.note("over the cap")
    assert len(lines.lines) == 1
    report.close()
    assert lines.lines[1] == "turned connections away since the last report: 2 over the cap"


async def test_failed_accepts_are_counted_not_logged_each(lines: Lines) -> None:
    report = refusal_log(lines, interval=3600)
    passed_on: list[dict[str, Any]] = []

    def fallback(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        passed_on.append(context)

    handle = accept_failure_handler(report, fallback)
    loop = asyncio.get_running_loop()
    emfile = OSError(24, "Too many open files")
    for _ in range(500):
        handle(loop, {"message": ACCEPT_OUT_OF_RESOURCES, "exception": emfile})
    handle(loop, {"message": "something else"})
    assert passed_on == [{"message": "something else"}], "other errors keep their handler"
    assert len(lines.lines) == 1
    assert "1 accept() attempt(s) failed (too many open files: " in lines.lines[0]
    assert "MARKETCAST_MAX_TCP_CONNECTIONS" in lines.lines[0]
    report.close()
    assert lines.lines[1].endswith(
        ": 499 accept() attempt(s) failed (too many open files: "
        "raise the file-descriptor limit, or lower "
        "MARKETCAST_MAX_TCP_CONNECTIONS)"
    )
