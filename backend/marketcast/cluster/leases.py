"""``RedisOwnership``: one upstream owner per key across the cluster, by leases in Redis.

Three structures, all under the deployment's prefix:

- ``lease:<key>`` — a string holding the owner's worker id, expiring after two thirds of
  ``lease_ttl``. Taken with a SET-if-absent (or re-taken by the same worker), renewed with
  compare-and-extend every third of ``lease_ttl``, released with compare-and-delete — all Lua,
  so a worker can never extend or delete a lease another worker holds. Why two thirds: a dead
  owner's lease is gone within 2/3 of ``lease_ttl`` and every other worker looks within the
  next third, so ``lease_ttl`` is the longest a key stays without an owner, as documented.
- ``demand`` — a sorted set of ``<key>#<worker>`` scored by expiry (Redis server time, so
  worker clocks do not matter). Every worker refreshes its members for the keys its clients
  want; a dead worker's members expire within ``lease_ttl``.
- the bus channel, for the resync request a new owner sends (``bus.redis``).

Two tasks in each worker, neither waiting for the other nor for any upstream:

- the **renewal** task, every third of the TTL: extends every lease this worker holds (a
  script call per ``RENEW_CHUNK`` of them, one after the other). Each
  confirmed renewal sets the key's local deadline — when the renewal was *sent* plus the
  lease's lifetime, minus a fifth of it as margin — and a timer at that deadline
  (``cluster.deadlines``) stops ingesting the key if no later renewal moved it.
  The lease cannot lapse in Redis before that deadline, so the old owner has stopped before
  any other worker can take the key: "upstream on" periods never overlap, even when Redis is
  slow or this worker's renewals stall;
- the **loop**, every third of the TTL (and at once when Redis comes back): refresh demand;
  give up keys nobody wants any more; start a takeover of every wanted key nobody holds.

A takeover is a task of its own per key: take the lease, catch the key up in the store from
the feed (the gap since the newest stored bar; all of history when the store lost it), ask
every worker to resync the topic from the store, confirm the lease with one more renewal, and
only if the key stayed held all along, open its ingest gate (``ingests``) and watch it
upstream. The catch-up is upstream I/O that may take longer than a lease lives (a slow REST
answer): it holds no lock, and the renewal task keeps the lease alive meanwhile; a takeover
whose lease lapsed anyway gives up before ingesting anything. Keys never wait for each other.

Why the gate is local and synchronous: stopping a key at its feed is asynchronous, and the
feed's last events may still arrive; the stream manager asks ``ingests`` before storing or
publishing each of them, and the gate closes in the same instant as the lease is given up
or expires.

Why drop every key when Redis was unreachable, even briefly: the owner's store writes failed
meanwhile (those bars are lost unless caught up again), and a lease may have expired and
moved to another worker. Stopping upstream and re-taking — usually the same lease, reclaimed
at once — runs the same catch-up and resync as a takeover, so the rule is one, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from marketcast.cluster.deadlines import Deadlines
from marketcast.cluster.lease_scripts import (
    ACQUIRE,
    DEMAND_CHUNK,
    MEMBERS,
    REFRESH,
    RELEASE,
    RELEASE_MANY,
    RENEW,
    RENEW_CHUNK,
    joined,
    steps,
)
from marketcast.cluster.ownership import Upstream
from marketcast.market import StreamKey
from marketcast.redis_health import CONNECTION_ERRORS, RedisHealth, cancel_and_wait
from marketcast.types import Topic

log = logging.getLogger("marketcast.cluster")


def _renew_flags(answers: list[bytes | str], expected: int) -> bytes:
    """``RENEW`` answers (one per call, in order) as one bytes string, a flag (``1`` renewed,
    ``0`` not) per lease asked for; RuntimeError if they do not hold ``expected`` of them."""
    flags = b"".join(a.encode() if isinstance(a, str) else a for a in answers)
    if len(flags) != expected:
        raise RuntimeError(f"lease renewal answered for {len(flags)} of {expected} keys")
    return flags


@dataclass
class _Takeover:
    """A key being taken: the task, and whether its lease was taken (set once asked)."""

    task: asyncio.Task[None]
    leased: asyncio.Future[bool]


class RedisOwnership:
    """``Ownership`` by Redis leases; see the module docstring for the protocol."""

    ingests_all = False

    def __init__(
        self,
        client: Redis,
        health: RedisHealth,
        *,
        worker_id: str,
        lease_ttl: float,
        prefix: str,
        request_resync: Callable[[Topic], Awaitable[None]],
    ) -> None:
        self._client = client
        self._health = health
        self.worker_id = worker_id
        #: How long demand entries live: a dead worker's demand is gone within ``lease_ttl``.
        self._ttl_ms = max(round(lease_ttl * 1000), 3)
        #: How long a lease lives unrenewed: see the module docstring for why 2/3.
        self._lease_ms = self._ttl_ms * 2 // 3
        #: Ingest stops this long before the lease could lapse in Redis: room for a timer
        #: that fires late and for Redis's own expiry, so two owners never overlap.
        self._margin = self._lease_ms / 5000
        #: Loop and renewal period; one late renewal is tolerated before the lease expires.
        self._interval = lease_ttl / 3
        self._prefix = prefix
        self._demand = f"{prefix}:demand"
        #: Sent after a catch-up, so every worker resyncs the topic from the store.
        self._request_resync = request_resync
        self._acquire_script = client.register_script(ACQUIRE)
        self._renew_script = client.register_script(RENEW)
        self._refresh_script = client.register_script(REFRESH)
        self._members_script = client.register_script(MEMBERS)
        self._release_script = client.register_script(RELEASE)
        self._release_many_script = client.register_script(RELEASE_MANY)
        self._upstream: Upstream | None = None
        #: Keys this worker's clients want (its demand members).
        self._wanted: set[StreamKey] = set()
        #: Keys whose lease this worker holds, each until when it surely does; ``_expire``
        #: at that deadline unless a renewal moved it.
        self._held = Deadlines(self._expire, tick=self._margin / 10)
        #: Each key's id, computed once: a renewal round names every held key.
        self._ids: dict[StreamKey, str] = {}
        #: Each key's lease name and demand member, made once for the same reason: a
        #: worker holding 22,000 keys named each of them anew every round.
        self._lease_names: dict[StreamKey, str] = {}
        self._member_names: dict[StreamKey, str] = {}
        #: Each key named by ``_key_id``, by its id: a demand member naming it resolves to
        #: this very object, so set operations between wanted and owned keys compare by
        #: identity instead of calling the key's ``__eq__`` (22,000 times a round).
        self._keys_by_id: dict[str, StreamKey] = {}
        #: What each demand member names: the key, or None (unknown here, or not served).
        self._members: dict[bytes, StreamKey | None] = {}
        #: The last demand read (``MEMBERS``' answer) and the keys it named: most rounds
        #: read the same members, and parsing 22,000 of them again cost more than the call.
        self._demand_read: tuple[bytes, set[StreamKey]] = (b"", set())
        #: The wanted keys whose members ``_demand_chunks`` joins: rebuilt when they change.
        self._demand_keys: set[StreamKey] = set()
        self._demand_chunks: list[str] = []
        #: The held keys, in order, whose lease names ``_renewal_chunks`` joins.
        self._renewal_keys: list[StreamKey] = []
        self._renewal_chunks: list[str] = []
        #: Keys that run upstream here: the ingest gate. Always a subset of ``_held``.
        self._owned: set[StreamKey] = set()
        #: Takeovers under way (lease asked for or held, catch-up running).
        self._taking: dict[StreamKey, _Takeover] = {}
        #: Keys being stopped at their feed; a new takeover of the key waits for it.
        self._stopping: dict[StreamKey, asyncio.Task[None]] = {}
        #: Set to run the loop now instead of at the next period.
        self._wake = asyncio.Event()
        #: Every Redis this worker's ingest depends on (the store's too, when it is another
        #: server): an outage of any of them drops and re-takes the owned keys.
        self._healths = [health]
        #: Their outage counts when the loop last looked; a change means an outage.
        self._epoch = self._epochs()
        #: The loop and the renewal task.
        self._tasks: list[asyncio.Task[None]] = []
        #: Keys taken (including re-taken after a blip), for tests and logs.
        self.takeovers = 0
        health.subscribe(lambda _reachable: self._wake.set())

    def watch(self, health: RedisHealth) -> None:
        """Also drop and re-take keys when ``health`` (e.g. the store's Redis) had an outage."""
        self._healths.append(health)
        self._epoch = self._epochs()
        health.subscribe(lambda _reachable: self._wake.set())

    def _epochs(self) -> tuple[int, ...]:
        return tuple(health.epoch for health in self._healths)

    def _reachable(self) -> bool:
        return all(health.reachable for health in self._healths)

    def lease_key(self, key: StreamKey) -> str:
        name = self._lease_names.get(key)
        if name is None:
            name = self._lease_names[key] = f"{self._prefix}:lease:{self._key_id(key)}"
        return name

    # -- Ownership ----------------------------------------------------------------------------

    def bind(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("RedisOwnership.start called twice")
        self._tasks = [
            asyncio.create_task(self._run(), name="lease-loop"),
            asyncio.create_task(self._renew_loop(), name="lease-renewal"),
        ]

    async def want(self, key: StreamKey) -> None:
        """Register demand and try to take the lease at once, so the first subscriber of an
        idle key does not wait for the loop; when this worker takes it, return once the key
        is caught up and watched, so that subscriber's snapshot holds the catch-up. Never
        raises for a Redis outage: the loop registers the demand once Redis is back."""
        self._wanted.add(key)
        if not self._reachable():
            self._wake.set()
            return
        takeover = self._taking.get(key)
        if takeover is None and key not in self._owned:
            takeover = self._begin_takeover(key)
        try:
            if takeover is not None:
                # Lease before demand: no other worker can see the demand and take the key
                # first, so the worker whose client asked first usually owns it.
                await asyncio.shield(takeover.leased)
            now = await self._server_ms()
            await self._client.zadd(self._demand, {self._member(key): now + self._ttl_ms})
        except CONNECTION_ERRORS as exc:
            self._health.report_failure(exc)
        if takeover is not None:
            await asyncio.wait([takeover.task])  # its outcome is logged; never raised here

    async def unwant(self, key: StreamKey) -> None:
        """Withdraw demand; stop the key upstream if this worker owns it and no other
        worker wants it (otherwise keep owning it for them)."""
        self._wanted.discard(key)
        try:
            await self._client.zrem(self._demand, self._member(key))
            if key in self._owned:
                demand = await self._cluster_demand()
                if key in self._owned and key not in self._wanted and key not in demand:
                    self._give_up(key, release=True, why="released")
        except CONNECTION_ERRORS as exc:
            self._health.report_failure(exc)

    def owned(self) -> list[StreamKey]:
        return sorted(self._owned, key=self._key_id)

    def ingests(self, key: StreamKey) -> bool:
        return key in self._owned

    async def close(self) -> None:
        """Stop the tasks, stop every owned key upstream and release every lease, withdraw
        demand: the other workers take over at their next loop instead of after the TTL."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel_and_wait(task)
        for takeover in list(self._taking.values()):
            await cancel_and_wait(takeover.task)
        # Every lease given back in a few calls, not a call (and a task) per key: a worker
        # owning 22,000 keys ran its connection pool dry that way and took itself for cut
        # off from Redis while closing. The gates close first; the feeds stop meanwhile.
        leased = sorted(self._owned | set(self._held), key=self._key_id)
        for key in list(self._owned):
            self._give_up(key, release=False, why="released")
        for key in list(self._held):  # takeovers cut short
            self._forget(key)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self._release_many(leased)
        if self._stopping:
            await asyncio.wait(list(self._stopping.values()))
        with contextlib.suppress(*CONNECTION_ERRORS):
            members = [self._member(key) for key in self._wanted]
            if members:
                await self._client.zrem(self._demand, *members)
        self._held.close()

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease loop iteration failed")

    async def _tick(self) -> None:
        if self._epochs() != self._epoch:
            self._epoch = self._epochs()
            if self._owned:
                log.warning("redis was unreachable: stopping %d keys upstream", len(self._owned))
            for key in list(self._owned):
                self._give_up(key, release=False, why="redis was unreachable")
            for key in list(self._taking):  # their catch-up may have missed writes: redo it
                self._forget(key)
        if not self._reachable():
            return
        try:
            wanted = await self._refresh_demand()
            # One set difference (keys compared by identity, ``_keys_by_id``), not a loop.
            unwanted = self._owned - wanted
            for key in sorted(unwanted, key=self._key_id):
                if key not in self._wanted:
                    self._give_up(key, release=True, why="released")
            await self._take_free(wanted)
        except CONNECTION_ERRORS as exc:
            self._health.report_failure(exc)

    async def _refresh_demand(self) -> set[StreamKey]:
        """Refresh this worker's demand, drop expired members; every key wanted anywhere."""
        now = await self._server_ms()
        if self._wanted != self._demand_keys:  # else the members joined last round
            self._demand_keys = set(self._wanted)
            wanted = list(self._demand_keys)
            members = [self._member(k) async for part in steps(len(wanted)) for k in wanted[part]]
            self._demand_chunks = joined(members, DEMAND_CHUNK)
        await self._in_chunks(
            self._refresh_script, self._demand_chunks, [now + self._ttl_ms], keys=[self._demand]
        )
        await self._client.zremrangebyscore(self._demand, "-inf", now)
        return await self._cluster_demand()

    async def _cluster_demand(self) -> set[StreamKey]:
        joined = await self._members_script(keys=[self._demand])
        if isinstance(joined, str):  # a client that decodes answers
            joined = joined.encode()
        # Bytes: this client does not decode replies (``redis_health.connect``).
        joined = cast(bytes, joined or b"")
        if joined == self._demand_read[0]:
            return self._demand_read[1]
        members = joined.split(b"\n") if joined else []
        known = self._members
        wanted: set[StreamKey] = set()
        async for part in steps(len(members)):
            for member in members[part]:
                if member in known:
                    key = known[member]
                else:
                    key = known[member] = self._parse_member(member)
                if key is not None:
                    wanted.add(key)
        if len(known) > 2 * len(members) + 1_000:  # members of workers long gone
            self._members = {member: known[member] for member in members}
        self._demand_read = (joined, wanted)
        return wanted

    def _parse_member(self, member: bytes) -> StreamKey | None:
        """The key a demand member names, if this worker serves it: parsed once per member
        (a worker wanting 22,000 keys reads as many members every loop)."""
        key_id = member.decode().rsplit("#", 1)[0]
        key = self._keys_by_id.get(key_id) or self._bound().parse_key_id(key_id)
        return key if key is not None and self._serves(key) else None

    async def _take_free(self, wanted: set[StreamKey]) -> None:
        """Start a takeover of every wanted key without a lease (or with this worker's)."""
        free = (wanted - self._owned).difference(self._taking)  # by identity, as in ``_tick``
        candidates = sorted(free, key=lambda k: (k not in self._wanted, self._key_id(k)))
        if not candidates:
            return
        holders = await self._client.mget([self.lease_key(k) for k in candidates])
        for key, holder in zip(candidates, holders, strict=True):
            busy = key in self._owned or key in self._taking
            if not busy and (holder is None or holder == self.worker_id.encode()):
                self._begin_takeover(key)

    # -- renewals -----------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Renew on a fixed schedule, whatever else this worker is doing."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self._interval, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                await self._renew_held()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease renewal failed")

    async def _renew_held(self) -> None:
        keys = list(self._held)
        if not keys or not self._reachable():
            return
        sent = asyncio.get_running_loop().time()
        deadline = self._deadline(sent)
        try:
            # Bounded by the period, so a slow Redis does not delay the next renewal; the
            # deadlines stop ingest if none of them gets through.
            async with asyncio.timeout(self._interval):
                chunks = await self._held_chunks(keys)
                for number, chunk in enumerate(chunks):
                    # Each chunk's keys are judged as its answer comes: a turn of the loop
                    # per ``RENEW_CHUNK`` keys, not one for the whole round.
                    answer = await self._renew_script(
                        keys=[], args=[self.worker_id, self._lease_ms, chunk]
                    )
                    first = number * RENEW_CHUNK
                    self._renewed(keys[first : first + RENEW_CHUNK], answer, deadline)
        except TimeoutError:
            log.debug("lease renewal of %d keys took longer than %.2fs", len(keys), self._interval)
        except CONNECTION_ERRORS as exc:
            self._health.report_failure(exc)

    def _renewed(self, keys: list[StreamKey], answer: bytes | str, deadline: float) -> None:
        """A renewal call answered for ``keys`` (one flag each): hold each renewed one that
        is still held until ``deadline``; stop the others. Usually every lease was renewed
        and none was dropped meanwhile: that case is one check, not a step per key."""
        held = self._held
        flags = _renew_flags([answer], len(keys))
        if flags == b"1" * len(keys) and held.holds_all(keys):
            held.hold_many(keys, deadline)
            return
        confirmed: list[StreamKey] = []
        for key, ok in zip(keys, flags, strict=True):
            if key not in held:  # given up or expired meanwhile
                continue
            if ok == ord("1"):
                confirmed.append(key)
            elif key in self._owned:
                self._give_up(key, release=False, why="lease lost")
            else:
                log.warning("lease lost during the takeover of %s", self._key_id(key))
                self._forget(key)
        held.hold_many(confirmed, deadline)

    def _hold(self, key: StreamKey, sent: float) -> None:
        """The lease of ``key`` was set or extended by a command sent at ``sent``: in Redis it
        lives at least until ``sent`` plus its lifetime, so ingest may go on until then, less
        the margin."""
        self._held.hold(key, self._deadline(sent))

    def _deadline(self, sent: float) -> float:
        """Until when a lease set or extended by a command sent at ``sent`` surely lives
        here: its lifetime after ``sent``, less the margin."""
        return sent + self._lease_ms / 1000 - self._margin

    def _forget(self, key: StreamKey) -> None:
        self._held.forget(key)

    def _expire(self, key: StreamKey) -> None:
        """No renewal confirmed the lease in time: it may lapse in Redis within the margin
        and another worker take the key, so stop ingesting now. The loop re-takes the key
        (with a catch-up) if it is still free."""
        if key in self._owned:
            self._give_up(key, release=False, why="lease expiring")

    # -- transitions --------------------------------------------------------------------------

    def _begin_takeover(self, key: StreamKey) -> _Takeover:
        leased: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._take(key, leased), name=f"take-{self._key_id(key)}")
        takeover = self._taking[key] = _Takeover(task, leased)
        return takeover

    async def _take(self, key: StreamKey, leased: asyncio.Future[bool]) -> None:
        """Lease, catch up, resync everywhere, confirm the lease, open the gate, watch. On
        failure, release and retry at the next loop (the demand is still there)."""
        upstream = self._bound()
        loop = asyncio.get_running_loop()
        try:
            stopping = self._stopping.get(key)
            if stopping is not None:  # this worker's feed must stop the key before rewatching
                await asyncio.wait([stopping])
            sent = loop.time()
            taken = await self._acquire(key)
            leased.set_result(taken)
            if not taken:
                return
            self._hold(key, sent)
            if await upstream.catch_up(key):
                await self._request_resync(upstream.topic(key))
            # The catch-up may have outlived the lease (a stalled worker, a slow Redis):
            # ingest only if the key stayed held throughout and is confirmed held now.
            sent = loop.time()
            if key not in self._held or not (await self._renew([key]))[0] or key not in self._held:
                log.warning(
                    "lease of %s lost during its catch-up: not taking it", self._key_id(key)
                )
                self._forget(key)
                return
            self._hold(key, sent)
            self._owned.add(key)
            self.takeovers += 1
            log.info("upstream on: %s (lease held by %s)", self._key_id(key), self.worker_id)
            await upstream.start_upstream(key)
        except Exception as exc:
            log.warning("could not take %s: %r", self._key_id(key), exc)
            if isinstance(exc, CONNECTION_ERRORS):
                self._health.report_failure(exc)
            if key in self._owned:
                self._give_up(key, release=True, why="could not start")
            elif key in self._held:
                self._forget(key)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await self._release(key)
        finally:
            if not leased.done():
                leased.set_result(False)
            current = self._taking.get(key)
            if current is not None and current.task is asyncio.current_task():
                del self._taking[key]

    def _give_up(self, key: StreamKey, *, release: bool, why: str) -> None:
        """Stop ingesting ``key`` now — the gate closes before the feed's next event — then,
        in the background, release its lease if asked and stop it at its feed."""
        self._owned.discard(key)
        self._forget(key)
        log.info("upstream off: %s (%s)", self._key_id(key), why)
        previous = self._stopping.get(key)
        task = asyncio.create_task(
            self._stop(key, release, previous), name=f"stop-{self._key_id(key)}"
        )
        self._stopping[key] = task
        task.add_done_callback(lambda done: self._stopped(key, done))

    async def _stop(
        self, key: StreamKey, release: bool, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        if release:  # first: another worker may take the key while the feed winds down
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._release(key)
        try:
            await self._bound().stop_upstream(key)
        except Exception:
            log.exception("stopping %s upstream failed", self._key_id(key))

    def _stopped(self, key: StreamKey, task: asyncio.Task[None]) -> None:
        if self._stopping.get(key) is task:
            del self._stopping[key]

    # -- Redis --------------------------------------------------------------------------------

    async def _acquire(self, key: StreamKey) -> bool:
        result = await self._acquire_script(
            keys=[self.lease_key(key)], args=[self.worker_id, self._lease_ms]
        )
        return bool(result)

    async def _renew(self, keys: list[StreamKey]) -> list[bool]:
        """Extend the leases of ``keys`` still held by this worker: one script call per
        ``RENEW_CHUNK`` keys (``_in_chunks``), so Redis serves other commands (the store's
        writes) between them rather than waiting behind one call for every key."""
        chunks = await self._lease_chunks(keys)
        results = await self._in_chunks(
            self._renew_script, chunks, [self.worker_id, self._lease_ms]
        )
        return [flag == ord("1") for flag in _renew_flags(results, len(keys))]

    async def _lease_chunks(self, keys: list[StreamKey]) -> list[str]:
        """The lease names of ``keys`` joined a ``RENEW_CHUNK`` at a time."""
        names = [self.lease_key(key) async for part in steps(len(keys)) for key in keys[part]]
        return joined(names, RENEW_CHUNK)

    async def _held_chunks(self, keys: list[StreamKey]) -> list[str]:
        """``_lease_chunks`` of a renewal round's ``keys`` (every held key). They are usually
        the same from one round to the next: the chunks are kept and joined anew only when
        the keys changed (a list comparison, by identity)."""
        if keys != self._renewal_keys:
            self._renewal_chunks = await self._lease_chunks(keys)
            self._renewal_keys = keys
        return self._renewal_chunks

    async def _release(self, key: StreamKey) -> None:
        await self._release_script(keys=[self.lease_key(key)], args=[self.worker_id])

    async def _release_many(self, keys: list[StreamKey]) -> int:
        """Delete the leases of ``keys`` this worker holds: one script call per
        ``RENEW_CHUNK`` keys (``_in_chunks``); how many were deleted."""
        names = [self.lease_key(key) for key in keys]
        results = await self._in_chunks(
            self._release_many_script, joined(names, RENEW_CHUNK), [self.worker_id]
        )
        return sum(int(result) for result in results)

    async def _in_chunks(
        self,
        script: AsyncScript,
        chunks: list[str],
        args: list[str | int],
        *,
        keys: list[str] | None = None,
    ) -> list[Any]:
        """``script``'s answers for ``chunks`` (names joined by ``lease_scripts.joined``), each
        the last argument after ``args``: one call per chunk, each sent once the one before it was
        answered. Why not pipelined: Redis runs the commands that arrived together on one
        connection back to back, so 22 pipelined chunks of a 22,000-key round held every other
        client (the store's writes, so every update) for tens of milliseconds; one at a time,
        the others' commands run between chunks."""
        return [await script(keys=keys or [], args=[*args, chunk]) for chunk in chunks]

    async def _server_ms(self) -> int:
        """Redis's clock, so demand expiry does not depend on each worker's clock."""
        seconds, micros = await self._client.time()
        return seconds * 1000 + micros // 1000

    def _member(self, key: StreamKey) -> str:
        name = self._member_names.get(key)
        if name is None:
            name = self._member_names[key] = f"{self._key_id(key)}#{self.worker_id}"
        return name

    def _serves(self, key: StreamKey) -> bool:
        return self._bound().serves(key)

    def _key_id(self, key: StreamKey) -> str:
        name = self._ids.get(key)
        if name is None:
            name = self._ids[key] = self._bound().key_id(key)
            self._keys_by_id.setdefault(name, key)
        return name

    def _bound(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError("RedisOwnership used before StreamManager bound it")
        return self._upstream
