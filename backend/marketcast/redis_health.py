"""Whether a Redis server answers, shared by every part that talks to it.

Why one object for the store, the bus and the leases: they fail together when Redis goes away,
and each failure has the same consequences — ``/readyz`` turns not ready, the lease loop stops
ingesting (store writes fail, so live updates would be lost), and when Redis answers again the
keys are caught up and every worker resyncs its clients. The first part to see a connection
error flips the state at once; a probe brings it back within ``interval`` of Redis answering.

Only connection-level errors count: a ``ResponseError`` is a bug or a misconfiguration, not
an outage, and must not make the cluster drop and re-take every key.

Why a top-level module and not part of ``cluster``: the store and the bus report to it too,
and they sit below the cluster layer, which must stay free to import them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from marketcast.errors import ServiceUnavailable

log = logging.getLogger("marketcast.cluster")

#: Errors that mean "Redis is unreachable", as opposed to a refused command.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)


async def cancel_and_wait(task: asyncio.Task[None], *, attempts: int = 20) -> None:
    """Cancel ``task`` until it has ended (at most ``attempts`` half-second rounds).

    Why more than one ``cancel()``: on Python 3.11, ``asyncio.wait_for`` — which redis-py
    uses while connecting — returns the result instead of raising when a cancellation races
    with the awaited operation completing, so one cancellation of a task that loops over Redis
    calls can be lost and the loop goes on (checked here with redis-py 8.1; fixed in 3.12).
    """
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if not task.done():
        log.error("task %s did not stop after %d cancellations", task.get_name(), attempts)
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s had failed", task.get_name(), exc_info=task.exception())


#: Connections one client keeps to Redis at most; a command past them waits for one.
POOL_SIZE = 64


def connect(url: str, *, timeout: float, name: str, retries: int = 1) -> Redis:
    """A client for ``url`` that fails fast instead of retrying for seconds.

    One immediate retry (the default) absorbs a pooled connection that went stale when Redis
    restarted; more would only delay noticing an outage. The pub/sub reader passes
    ``retries=0``: a silent reconnect there would hide that messages were lost.

    Why a blocking pool: redis-py's default pool refuses the command after its 100th
    concurrent one with an error that reads like an unreachable Redis, and a burst of first
    subscribes (clients reconnecting after a deploy) made a worker give up its leases that way.
    Here a command past ``POOL_SIZE`` waits for a free connection, up to four times Redis's
    own timeout, so only a Redis that really stopped answering turns into an outage.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=timeout * 4,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries),
        client_name=name,
    )
    return Redis.from_pool(pool)


class RedisHealth:
    """Reachability of one Redis server: a flag, an outage counter, and change listeners."""

    def __init__(self, client: Redis, *, interval: float, timeout: float) -> None:
        self._client = client
        self._interval = interval
        self._timeout = timeout
        #: False until the first probe answers: a worker is not ready before it saw Redis.
        self.reachable = False
        #: Incremented each time Redis becomes unreachable. A part that caches anything that
        #: an outage may invalidate (leases held, writes assumed done) compares epochs.
        self.epoch = 0
        self._listeners: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(reachable)`` on every change; it must not block."""
        self._listeners.append(listener)

    def report_failure(self, exc: BaseException) -> None:
        """A connection-level error was seen somewhere: Redis counts as down until a probe."""
        if not self.reachable:
            return
        self.reachable = False
        self.epoch += 1
        log.warning("redis unreachable: %s: %s", type(exc).__name__, exc)
        self._notify()

    def _report_success(self) -> None:
        if self.reachable:
            return
        self.reachable = True
        log.info("redis reachable")
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener(self.reachable)
            except Exception:
                log.exception("redis health listener failed")

    async def probe(self) -> bool:
        """Ping once; update the state; return whether Redis answered."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.ping()
        except CONNECTION_ERRORS as exc:
            if self.reachable:
                self.report_failure(exc)
            return False
        self._report_success()
        return True

    async def start(self) -> None:
        """Probe now, then every ``interval`` seconds until ``close``."""
        if self._task is not None:
            raise RuntimeError("RedisHealth.start called twice")
        await self.probe()
        self._task = asyncio.create_task(self._run(), name="redis-health")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


async def store_answer(command: Awaitable[Any], health: RedisHealth | None) -> Any:
    """The answer of a shared-store command. A connection error is reported to ``health``
    (readiness, and the trigger for every recovery) and raised as ``ServiceUnavailable``:
    the cause (host, port) stays in the log; clients learn only that it will pass."""
    try:
        return await command
    except CONNECTION_ERRORS as exc:
        raise store_failure(exc, health) from exc


def store_failure(exc: BaseException, health: RedisHealth | None) -> BaseException:
    """What a shared-store command that failed with ``exc`` raises: a connection error is
    reported to ``health`` and becomes ``ServiceUnavailable``; anything else stays itself."""
    if not isinstance(exc, CONNECTION_ERRORS):
        return exc
    if health is not None:
        health.report_failure(exc)
    failure = ServiceUnavailable("the shared store did not answer; retry shortly")
    failure.__cause__ = exc
    return failure
