"""RedisOwnership against a real redis-server: one owner per key, demand shared by workers,
takeover after a release or a death, and re-taking after Redis was unreachable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from marketcast.channels.registry import default_registry
from marketcast.cluster.lease_scripts import RENEW_CHUNK, STEP
from marketcast.cluster.leases import RedisOwnership
from marketcast.market import BarKey, QuoteKey, StreamKey, SymbolInfo
from marketcast.redis_health import RedisHealth, cancel_and_wait
from marketcast.types import Symbol, Topic

KEY = BarKey("BTCUSDT", "1")
TTL = 1.2  # renewals every 0.4 s: slack for a loaded machine, still quick
CHANNELS = default_registry()
key_id, parse_key_id = CHANNELS.key_id, CHANNELS.parse_key_id


class FakeUpstream:
    """Records what an ownership asks of the stream manager."""

    def __init__(self) -> None:
        self.events: list[tuple[str, StreamKey]] = []
        self.running: set[StreamKey] = set()
        #: Seconds a catch-up takes (a real feed's history request).
        self.catch_up_delay = 0.0

    def symbol_info(self, symbol: Symbol) -> SymbolInfo | None:
        if symbol != "BTCUSDT":
            return None
        return SymbolInfo(symbol, "crypto", "fake", ("1", "3", "5", "15", "30"))

    def topic(self, key: StreamKey) -> Topic:
        return f"topic:{key_id(key)}"

    async def start_upstream(self, key: StreamKey) -> None:
        self.events.append(("start", key))
        self.running.add(key)

    async def stop_upstream(self, key: StreamKey) -> None:
        self.events.append(("stop", key))
        self.running.discard(key)

    def serves(self, key: StreamKey) -> bool:
        info = self.symbol_info(key.symbol)
        return info is not None and (
            not isinstance(key, BarKey) or key.resolution in info.resolutions
        )

    def key_id(self, key: StreamKey) -> str:
        return key_id(key)

    def parse_key_id(self, text: str) -> StreamKey | None:
        return parse_key_id(text)

    async def catch_up(self, key: StreamKey) -> bool:
        if not isinstance(key, BarKey):
            return False
        self.events.append(("catch_up", key))
        await asyncio.sleep(self.catch_up_delay)
        return True


class Worker:
    def __init__(self, ownership: RedisOwnership, upstream: FakeUpstream, health: RedisHealth):
        self.ownership = ownership
        self.upstream = upstream
        self.health = health
        self.resyncs: list[Topic] = []


MakeWorker = Callable[[str], Awaitable[Worker]]


@pytest.fixture
async def make_worker(redis_client: Redis) -> AsyncIterator[MakeWorker]:
    made: list[Worker] = []

    async def make(name: str) -> Worker:
        health = RedisHealth(redis_client, interval=0.05, timeout=1.0)
        await health.start()
        upstream = FakeUpstream()
        worker: Worker

        async def resync(topic: Topic) -> None:
            worker.resyncs.append(topic)

        ownership = RedisOwnership(
            redis_client,
            health,
            worker_id=name,
            lease_ttl=TTL,
            prefix="t",
            request_resync=resync,
        )
        ownership.bind(upstream)
        await ownership.start()
        worker = Worker(ownership, upstream, health)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.ownership.close()
        await worker.health.close()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Wait until ``check()`` holds; return the seconds it took; fail after ``within``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        if loop.time() - start > within:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def holder(client: Redis, key: StreamKey) -> str | None:
    value = await client.get(f"t:lease:{key_id(key)}")
    return None if value is None else value.decode()


def test_key_ids_round_trip() -> None:
    for key in (BarKey("EUR/USD", "D"), QuoteKey("AAPL"), BarKey("BTCUSDT", "1")):
        assert parse_key_id(key_id(key)) == key
    assert parse_key_id("bars|X|7") is None
    assert parse_key_id("candles|X") is None


async def test_one_owner_per_key(make_worker: MakeWorker, redis_client: Redis) -> None:
    a, b = await make_worker("a"), await make_worker("b")
    await asyncio.gather(a.ownership.want(KEY), b.ownership.want(KEY))
    await asyncio.sleep(TTL)  # several loop periods: nobody else may take it meanwhile
    owners = [w for w in (a, b) if KEY in w.upstream.running]
    assert len(owners) == 1
    assert await holder(redis_client, KEY) == owners[0].ownership.worker_id
    assert owners[0].upstream.events == [("catch_up", KEY), ("start", KEY)]
    assert owners[0].resyncs == [f"topic:{key_id(KEY)}"]


async def test_owner_keeps_a_key_another_worker_wants(make_worker: MakeWorker) -> None:
    a = await make_worker("a")
    await a.ownership.want(KEY)
    b = await make_worker("b")
    await b.ownership.want(KEY)
    assert a.ownership.owned() == [KEY]
    await a.ownership.unwant(KEY)  # a's clients left, b's remain
    await asyncio.sleep(TTL)
    assert a.ownership.owned() == [KEY]
    assert not b.ownership.owned()
    await b.ownership.unwant(KEY)  # nobody wants it: a stops it at its next loop
    await eventually(lambda: not a.upstream.running, within=2 * TTL)
    assert a.upstream.events[-1] == ("stop", KEY)


async def test_a_closing_owner_hands_over_at_once(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    a, b = await make_worker("a"), await make_worker("b")
    await a.ownership.want(KEY)
    await b.ownership.want(KEY)
    await a.ownership.close()
    assert await holder(redis_client, KEY) is None  # released, not left to expire
    await eventually(lambda: KEY in b.upstream.running, within=TTL)
    assert b.upstream.events == [("catch_up", KEY), ("start", KEY)]


async def test_a_dead_owner_is_replaced_within_the_ttl(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    a, b = await make_worker("a"), await make_worker("b")
    await a.ownership.want(KEY)
    await b.ownership.want(KEY)
    # Death: a's loop and renewals stop; nothing is released.
    tasks, a.ownership._tasks = a.ownership._tasks, []
    for task in tasks:
        await cancel_and_wait(task)
    took = await eventually(lambda: KEY in b.upstream.running, within=3 * TTL)
    assert took <= TTL + 0.2  # lease_ttl bounds the takeover (plus scheduling slack)
    assert await holder(redis_client, KEY) == "b"


async def test_a_redis_outage_stops_ingest_and_retakes_with_catch_up(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    a = await make_worker("a")
    await a.ownership.want(KEY)
    a.health.report_failure(ConnectionError("simulated"))  # e.g. a store write failed
    await eventually(lambda: not a.upstream.running, within=1.0)
    # The probe finds Redis answering; the same worker re-takes its own lease.
    await eventually(lambda: KEY in a.upstream.running, within=2.0)
    assert a.upstream.events == [
        ("catch_up", KEY),
        ("start", KEY),
        ("stop", KEY),
        ("catch_up", KEY),
        ("start", KEY),
    ]
    assert await holder(redis_client, KEY) == "a"
    assert a.ownership.takeovers == 2


async def test_keys_no_feed_serves_are_never_taken(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    a = await make_worker("a")
    await redis_client.zadd("t:demand", {"bars|NOPE|1#other": 1e15, "bars|BTCUSDT|7#x": 1e15})
    await asyncio.sleep(TTL)
    assert a.upstream.events == []


async def test_a_long_series_of_takeovers_keeps_the_first_leases(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """Taking many keys at once (after a Redis restart) with slow catch-ups renews the leases
    already taken in between, so none of them lapses before the pass ends."""
    keys = [BarKey("BTCUSDT", r) for r in ("1", "3", "5", "15", "30")]
    await redis_client.zadd("t:demand", {f"{key_id(k)}#elsewhere": 1e15 for k in keys})
    a = await make_worker("a")
    a.upstream.catch_up_delay = 0.35  # five of them: twice the lease's 0.8 s lifetime
    await eventually(lambda: a.upstream.running == set(keys), within=10.0)
    await asyncio.sleep(TTL)
    assert [event for event, _ in a.upstream.events].count("stop") == 0
    assert [await holder(redis_client, k) for k in keys] == ["a"] * 5


async def test_a_catch_up_three_times_the_ttl_keeps_the_lease(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """Issue 18: renewals never wait behind a catch-up, so a slow upstream does not cost the
    lease, and the other worker that wants the key never takes it meanwhile."""
    a, b = await make_worker("a"), await make_worker("b")
    a.upstream.catch_up_delay = 3 * TTL
    want = asyncio.create_task(a.ownership.want(KEY))
    await eventually(lambda: a.upstream.events == [("catch_up", KEY)])
    await b.ownership.want(KEY)
    await want  # returns once a caught up and watches the key
    assert a.upstream.events == [("catch_up", KEY), ("start", KEY)]
    assert a.ownership.ingests(KEY)
    await asyncio.sleep(TTL)
    assert b.upstream.events == []
    assert not b.ownership.ingests(KEY)
    assert await holder(redis_client, KEY) == "a"
    assert a.ownership.takeovers == 1


async def test_a_lease_lost_during_the_catch_up_is_not_ingested(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """Another worker holds the lease when the catch-up ends (here: it was overwritten, as
    after an expiry and a takeover): the late worker gives up without watching the key."""
    a = await make_worker("a")
    a.upstream.catch_up_delay = TTL
    want = asyncio.create_task(a.ownership.want(KEY))
    await eventually(lambda: a.upstream.events == [("catch_up", KEY)])
    await redis_client.set(f"t:lease:{key_id(KEY)}", "b", px=60_000)
    await want
    assert a.upstream.events == [("catch_up", KEY)]
    assert not a.ownership.ingests(KEY)
    assert a.ownership.owned() == []
    assert await holder(redis_client, KEY) == "b"  # never released: it is not a's


async def test_ingest_stops_by_itself_when_renewals_stop(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """With renewals stalled (Redis slow, a worker busy elsewhere) the gate closes on the
    worker's own deadline, before the lease lapses in Redis: no other worker can take the
    key while this one still ingests it."""
    a = await make_worker("a")
    await a.ownership.want(KEY)
    assert a.ownership.ingests(KEY)
    _loop, renewal = a.ownership._tasks
    await cancel_and_wait(renewal)  # the loop goes on, renewals do not
    await eventually(lambda: not a.ownership.ingests(KEY), within=2 * TTL)
    await eventually(lambda: ("stop", KEY) in a.upstream.events, within=TTL)
    assert a.upstream.events[:2] == [("catch_up", KEY), ("start", KEY)]


async def test_renewals_of_thousands_of_keys_go_in_chunks_and_say_which_held(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """A worker owning 22,000 keys renews them every third of the TTL: one script call per
    ``RENEW_CHUNK`` keys, one after the other, answers for every key in order, lost leases
    included."""
    a = await make_worker("a")
    keys = await leases_held_by_a(redis_client)
    lost, taken = keys[RENEW_CHUNK + 7], keys[-1]
    await redis_client.delete(f"t:lease:{key_id(lost)}")
    await redis_client.set(f"t:lease:{key_id(taken)}", "b", px=60_000)
    renewed = await a.ownership._renew(keys)
    assert len(renewed) == len(keys)
    assert [k for k, ok in zip(keys, renewed, strict=True) if not ok] == [lost, taken]
    assert 0 < await redis_client.pttl(f"t:lease:{key_id(keys[0])}") <= round(TTL * 1000)


async def test_a_renewal_round_over_thousands_of_keys_lets_the_loop_turn_between_steps(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """A round over every held key goes a ``STEP`` at a time: other tasks run between the
    steps (a worker holding 22,000 keys held its loop for tens of milliseconds a round), and
    every lease still held ends the round with the new deadline; a lost one is given up."""
    a = await make_worker("a")
    keys = await leases_held_by_a(redis_client)
    for task in a.ownership._tasks:  # only the round below runs
        await cancel_and_wait(task)
    loop = asyncio.get_running_loop()
    for key in keys:  # held as after their takeovers, owned
        a.ownership._held.hold(key, loop.time() + 60)
    a.ownership._owned.update(keys)
    lost = keys[STEP + 3]
    await redis_client.delete(f"t:lease:{key_id(lost)}")
    held = a.ownership._held
    before = loop.time()
    progress: list[int] = []  # keys given this round's deadline, seen at each loop turn
    stop = asyncio.Event()

    def confirmed() -> int:
        return sum(len(ks) for d, (_, ks) in held._rounds.items() if d < before + 30)

    async def watch() -> None:
        while not stop.is_set():
            progress.append(confirmed())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    await a.ownership._renew_held()
    stop.set()
    await watcher
    progress.append(confirmed())
    assert progress[-1] == len(keys) - 1
    steps = [b - a_ for a_, b in itertools.pairwise(progress) if b > a_]
    assert max(steps) <= STEP  # never the whole round in one go
    assert len(steps) >= 3
    deadlines = held._deadline
    assert lost not in deadlines
    assert not a.ownership.ingests(lost)
    assert all(before < deadlines[key] < before + TTL for key in keys if key != lost)


async def test_a_worker_closing_with_thousands_of_leases_gives_them_back_in_a_few_calls(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """Closing releases every lease this worker holds in one script call per ``RENEW_CHUNK``
    keys (a call per key ran a 22,000-key worker's pool dry: "redis unreachable" at
    shutdown); a lease another worker holds now is left alone."""
    a = await make_worker("a")
    keys = await leases_held_by_a(redis_client)
    taken = keys[-1]
    await redis_client.set(f"t:lease:{key_id(taken)}", "b", px=60_000)
    loop = asyncio.get_running_loop()
    for key in keys:  # held as after their takeovers
        a.ownership._held.hold(key, loop.time() + 60)
    a.ownership._owned.update(keys[:RENEW_CHUNK])
    for task in a.ownership._tasks:  # no renewal round may run into the count
        await cancel_and_wait(task)
    epoch = a.health.epoch
    before = await script_calls(redis_client)
    await a.ownership.close()
    assert await script_calls(redis_client) - before == 3  # 1,000 + 1,000 + 500 keys
    assert await redis_client.keys("t:lease:*") == [f"t:lease:{key_id(taken)}".encode()]
    assert a.health.epoch == epoch
    assert a.health.reachable
    assert len([e for e in a.upstream.events if e[0] == "stop"]) == RENEW_CHUNK


async def test_demand_members_resolve_to_the_keys_this_worker_wants_and_are_read_once(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """A demand member naming a key this worker named already resolves to that very key
    object (so wanted and owned keys compare by identity, not by ``__eq__`` 22,000 times a
    round); a demand read equal to the last one is not parsed again; a changed one is."""
    a = await make_worker("a")
    for task in a.ownership._tasks:  # only the rounds below run
        await cancel_and_wait(task)
    mine = BarKey("BTCUSDT", "5")
    await a.ownership.want(mine)
    first = await a.ownership._refresh_demand()
    assert first == {mine}
    assert next(iter(first)) is mine
    assert await a.ownership._refresh_demand() is first  # the same members: not parsed again
    await redis_client.zadd("t:demand", {f"{key_id(KEY)}#b": 2**50})  # another worker's
    second = await a.ownership._refresh_demand()
    assert second == {mine, KEY}
    assert second is not first


async def test_renewal_rounds_name_the_held_keys_once_until_they_change(
    make_worker: MakeWorker, redis_client: Redis
) -> None:
    """Consecutive renewal rounds over the same held keys send the same joined names
    without naming each key again; a key given up changes the next round's names, and
    every round still renews every lease it names."""
    a = await make_worker("a")
    keys = await leases_held_by_a(redis_client)
    for task in a.ownership._tasks:  # only the rounds below run
        await cancel_and_wait(task)
    loop = asyncio.get_running_loop()
    for key in keys:
        a.ownership._held.hold(key, loop.time() + 60)
    a.ownership._owned.update(keys)
    await a.ownership._renew_held()
    chunks = a.ownership._renewal_chunks
    assert len(chunks) == 3
    assert chunks[0].count("\n") == RENEW_CHUNK - 1
    await a.ownership._renew_held()
    assert a.ownership._renewal_chunks is chunks  # the same keys: the same strings
    dropped = keys[5]
    a.ownership._give_up(dropped, release=True, why="test")
    await redis_client.delete(f"t:lease:{key_id(keys[6])}")  # lapsed
    await redis_client.set(f"t:lease:{key_id(keys[-1])}", "b", px=60_000)  # taken
    await eventually(lambda: len(a.upstream.events) == 1)  # the give-up stopped upstream
    before = loop.time()
    await a.ownership._renew_held()
    assert a.ownership._renewal_chunks is not chunks
    assert f"t:lease:{key_id(dropped)}" not in a.ownership._renewal_chunks[0]
    assert not any(a.ownership.ingests(k) for k in (dropped, keys[6], keys[-1]))
    assert a.ownership._held._deadline.keys() >= set(keys) - {dropped, keys[6], keys[-1]}
    assert all(
        before < a.ownership._held._deadline[k]
        for k in keys
        if k not in {dropped, keys[6], keys[-1]}
    )


async def script_calls(client: Redis) -> int:
    """Script calls the server ran so far (EVAL and EVALSHA)."""
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def leases_held_by_a(client: Redis) -> list[StreamKey]:
    """Two and a half ``RENEW_CHUNK``s of keys, each with a lease worker "a" holds."""
    keys: list[StreamKey] = [BarKey(f"S{n:05d}", "1") for n in range(2 * RENEW_CHUNK + 500)]
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.set(f"t:lease:{key_id(key)}", "a", px=60_000)
        await pipe.execute()
    return keys
