"""The capacity model: per-unit costs measured on a two-worker cluster, the CPU it predicts,
and what a deployment of a given size needs. Pure arithmetic — no I/O, no clock — so that
``tests/unit/test_capacity_model.py`` checks it with fixed numbers; ``cluster_check`` feeds it
what it measured.

**The cluster being modelled** (``docs/operations.md``): every worker subscribes to the one
pub/sub channel and so receives every published update; a key's owner (lease holder) runs it
upstream, stores and publishes each update (one script: store, then PUBLISH) and hands it to
its own clients; every other worker reads it from the channel and hands it to its clients.
So, per second, with ``u`` updates published on the channel and ``d`` frames a worker
delivers to its clients:

- a worker that owns no key:  ``idle + recv·u + delivery·d``
- the owner of every key:     ``idle + (own + recv)·u + delivery·d``
  (it reads its own echo from the channel too, and drops it after decoding the header)
- Redis:                      ``idle + (base + subscribers·fanout)·u``

``recv`` is what reading one message off the channel costs a worker (redis-py's parser,
``bus.redis.decode``, the closed-bar guard, the hub's lookup), ``own`` what ingesting one update
costs its owner beyond that (the feed, the frame, the store-and-publish round trip), ``base``
what the store-and-publish script costs Redis per update, ``fanout`` what writing one message
to one more subscriber costs it.

**Where the costs come from** (``derive``), each from a window in which the others are known:

- ``idle``: every worker and Redis with nothing subscribed;
- ``ingest``: one client on the owner subscribed to every key, none on the relay: the relay's
  CPU above idle is ``recv·u`` alone; the owner's gives ``own`` once its deliveries are taken
  off;
- ``fanout``: the same plus ``E`` extra subscribers that only read the channel: Redis's CPU
  above what it used in ``ingest`` per update is ``E·fanout·u``;
- ``calibrate``: clients on the relay: its CPU above ``idle + recv·u`` over its deliveries
  is ``delivery``; Redis's per update is ``update`` = ``base + 2·fanout`` (two subscribers,
  the workers). Redis does the same work per update in ``ingest``, but on this shared
  machine its cost per update came out 5-40 % higher once the workers were busy delivering
  (a process doing a few µs of work per wake-up is sensitive to what else the cores run), so
  it is taken from the window that looks like ``check``;
- ``flood`` (optional): nothing subscribed, the check itself publishes many messages a second
  on the channel (pipelined, a few per write): each worker's CPU over them is ``recv`` at that
  rate, Redis's is ``publish`` (a bare PUBLISH with two subscribers, no script);
- ``flood_fanout`` (optional): the same with ``E`` extra subscribers: ``fanout`` at that rate.

Why two figures for ``recv``: a worker wakes up for every read of its subscription, so at a
few thousand messages a second, arriving one by one, each pays a wake-up; at tens of thousands
several arrive per read and the cost per message falls (redis-py's pure-Python parser stays).
``UnitCosts.intake`` joins the two: linear through zero up to the ``ingest`` rate, then along
the line through both points. The check window runs at the ``ingest`` rate, so its prediction
uses the first figure; plans at tens of thousands of messages use the line. Redis batches the
same way — everything published to a subscriber within one turn of its event loop goes out in
one write — so ``fanout`` too is measured at both rates, and plans use the higher-rate figure.

The ``check`` window (clients on both workers, more on the relay than in ``calibrate``) is then
predicted from these costs alone and compared with what was measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Microseconds per second: costs are in µs per unit, rates per second, CPU in cores.
US = 1_000_000


@dataclass(frozen=True)
class Window:
    """What one measured window saw: CPU seconds used over ``seconds`` of wall time by the
    owner (the worker holding every key's lease), the relay (owns none) and Redis; updates
    published on the channel (Redis's PUBLISH count); frames each worker's clients received;
    subscribers on the channel besides the two workers."""

    name: str
    seconds: float
    owner_cpu_s: float
    relay_cpu_s: float
    redis_cpu_s: float
    published: int
    owner_deliveries: int
    relay_deliveries: int
    extra_subscribers: int = 0
    #: Of ``published``, the messages the check injected itself (not a worker's updates).
    injected: int = 0

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"window {self.name!r}: seconds must be > 0, got {self.seconds}")

    @property
    def updates(self) -> float:
        """Messages published on the channel per second (what every worker reads)."""
        return self.published / self.seconds

    @property
    def owned(self) -> float:
        """Updates the owner ingested (stored and published) per second."""
        return (self.published - self.injected) / self.seconds

    @property
    def owner(self) -> float:
        """The owner's CPU, in cores."""
        return self.owner_cpu_s / self.seconds

    @property
    def relay(self) -> float:
        return self.relay_cpu_s / self.seconds

    @property
    def redis(self) -> float:
        return self.redis_cpu_s / self.seconds

    @property
    def owner_rate(self) -> float:
        """Frames the owner delivered per second."""
        return self.owner_deliveries / self.seconds

    @property
    def relay_rate(self) -> float:
        return self.relay_deliveries / self.seconds


@dataclass(frozen=True)
class UnitCosts:
    """Per-unit costs: idle CPU in cores, everything else in µs of one core per unit."""

    owner_idle: float
    relay_idle: float
    redis_idle: float
    #: A worker, per message read off its bus subscription (every worker, every message),
    #: at ``recv_rate`` messages a second.
    recv_us: float
    #: The owner, per update it ingests, beyond ``recv_us``.
    own_us: float
    #: A worker, per frame delivered to a client.
    delivery_us: float
    #: Redis, per published update with ``subscribers`` subscribers on the channel.
    update_us: float
    #: Redis, per message per subscriber.
    fanout_us: float
    #: Subscribers when ``update_us`` was measured (the two workers).
    subscribers: int = 2
    #: A worker's resident memory per client connection, KiB.
    kib_per_conn: float = 0.0
    #: A worker's resident memory before any client, MiB.
    worker_base_mib: float = 0.0
    #: The bus rate at which ``recv_us`` was measured, messages/s.
    recv_rate: float = 0.0
    #: ``recv_us`` at a higher rate (``flood``), and that rate; 0: not measured.
    recv_fast_us: float = 0.0
    recv_fast_rate: float = 0.0
    #: Redis, per bare PUBLISH (pipelined) with two subscribers; 0: not measured.
    publish_us: float = 0.0
    #: ``fanout_us`` at ``recv_fast_rate`` (``flood_fanout``); 0: not measured.
    fanout_fast_us: float = 0.0

    @property
    def fanout_at_scale(self) -> float:
        """Redis per message per subscriber at tens of thousands of messages a second: the
        ``flood_fanout`` figure when measured, else the one at the ingest rate."""
        return self.fanout_fast_us if self.fanout_fast_us > 0 else self.fanout_us

    @property
    def ingest_us(self) -> float:
        """The owner's whole cost per update: ingest plus reading its own echo."""
        return self.own_us + self.recv_us

    @property
    def base_us(self) -> float:
        """Redis per update before any subscriber: the store-and-publish script."""
        return max(self.update_us - self.subscribers * self.fanout_us, 0.0)

    @property
    def worker_idle(self) -> float:
        return max(self.owner_idle, self.relay_idle)

    def intake(self, rate: float) -> float:
        """A worker's CPU (cores) for reading ``rate`` bus messages a second: ``recv_us``
        each up to ``recv_rate``; beyond it, the line through that point and the ``flood``
        point (when measured higher, and never below the cost of reading at ``recv_rate``)."""
        low = self.recv_rate
        if self.recv_fast_rate <= low or rate <= low:
            return rate * self.recv_us / US
        slope = (self.recv_fast_rate * self.recv_fast_us - low * self.recv_us) / (
            self.recv_fast_rate - low
        )
        return (low * self.recv_us + (rate - low) * max(slope, 0.0)) / US


def derive(
    idle: Window,
    ingest: Window,
    fanout: Window,
    calibrate: Window,
    flood: Window | None = None,
    flood_fanout: Window | None = None,
    *,
    delivery_us: float | None = None,
    kib_per_conn: float = 0.0,
    worker_base_mib: float = 0.0,
) -> UnitCosts:
    """The per-unit costs from the calibration windows (see the module docstring);
    ``delivery_us`` given: taken as an input instead of from ``calibrate``."""
    for window in (ingest, fanout):
        if window.published <= 0:
            raise ValueError(f"window {window.name!r} published nothing: no cost per update")
    owner_idle, relay_idle, redis_idle = idle.owner, idle.relay, idle.redis
    recv = (ingest.relay - relay_idle) * US / ingest.updates
    if delivery_us is None:
        if calibrate.relay_deliveries <= 0:
            raise ValueError(f"window {calibrate.name!r} delivered nothing on the relay")
        delivery_us = (
            (calibrate.relay - relay_idle) * US - recv * calibrate.updates
        ) / calibrate.relay_rate
    own = (
        (ingest.owner - owner_idle) * US - delivery_us * ingest.owner_rate
    ) / ingest.updates - recv
    quiet = (ingest.redis - redis_idle) * US / ingest.updates
    extra = fanout.extra_subscribers
    if extra <= 0:
        raise ValueError(f"window {fanout.name!r} had no extra subscribers: no fan-out cost")
    fan = ((fanout.redis - redis_idle) * US / fanout.updates - quiet) / extra
    if calibrate.published <= 0:
        raise ValueError(f"window {calibrate.name!r} published nothing: no cost per update")
    update = (calibrate.redis - redis_idle) * US / calibrate.updates
    fast_us = fast_rate = publish = fan_fast = 0.0
    if flood is not None:
        floods = [flood] if flood_fanout is None else [flood, flood_fanout]
        for window in floods:
            if window.published <= 0 or window.injected != window.published:
                raise ValueError(f"window {window.name!r} must publish injected messages only")
        # Both workers read every message and nothing else in these windows: 2 samples each.
        busy = sum((w.owner - owner_idle) + (w.relay - relay_idle) for w in floods)
        messages = sum(w.updates for w in floods)
        fast_us = busy / 2 * US / messages
        fast_rate = messages / len(floods)
        publish = (flood.redis - redis_idle) * US / flood.updates
        if flood_fanout is not None:
            if flood_fanout.extra_subscribers <= 0:
                raise ValueError(f"window {flood_fanout.name!r} had no extra subscribers")
            per_message = (flood_fanout.redis - redis_idle) * US / flood_fanout.updates
            fan_fast = (per_message - publish) / flood_fanout.extra_subscribers
    return UnitCosts(
        owner_idle=owner_idle,
        relay_idle=relay_idle,
        redis_idle=redis_idle,
        recv_us=recv,
        own_us=own,
        delivery_us=delivery_us,
        update_us=update,
        fanout_us=fan,
        subscribers=2,
        kib_per_conn=kib_per_conn,
        worker_base_mib=worker_base_mib,
        recv_rate=ingest.updates,
        recv_fast_us=fast_us,
        recv_fast_rate=fast_rate,
        publish_us=publish,
        fanout_fast_us=fan_fast,
    )


@dataclass(frozen=True)
class Prediction:
    """CPU in cores."""

    owner: float
    relay: float
    redis: float


def predict(costs: UnitCosts, window: Window) -> Prediction:
    """What the model says each process used in ``window``, from its rates alone."""
    intake = costs.intake(window.updates)
    owned = window.owned
    owner = (
        costs.owner_idle
        + intake
        + (costs.own_us * owned + costs.delivery_us * window.owner_rate) / US
    )
    relay = costs.relay_idle + intake + costs.delivery_us * window.relay_rate / US
    per_update = costs.update_us + window.extra_subscribers * costs.fanout_us
    injected = window.injected / window.seconds
    per_injected = costs.publish_us + window.extra_subscribers * costs.fanout_at_scale
    redis = costs.redis_idle + (per_update * owned + per_injected * injected) / US
    return Prediction(owner, relay, redis)


def compare(costs: UnitCosts, window: Window) -> list[tuple[str, float, float, float]]:
    """(process, predicted cores, measured cores, measured / predicted) for each process."""
    predicted = predict(costs, window)
    rows = []
    for name, guess, seen in (
        ("owner worker", predicted.owner, window.owner),
        ("relay worker", predicted.relay, window.relay),
        ("redis", predicted.redis, window.redis),
    ):
        rows.append((name, guess, seen, seen / guess if guess > 0 else math.nan))
    return rows


# -- sizing a deployment ------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """An assumed deployment load. Defaults: every symbol has 13 topics — bars at the 11
    resolutions (all aggregated from a 1-minute kline updated once a second), its quote and its
    trades — each published once a second on average; each connection watches 10 topics."""

    connections: int
    symbols: int
    topics_per_symbol: int = 13
    updates_per_topic_s: float = 1.0
    topics_per_connection: int = 10

    @property
    def topics(self) -> int:
        return self.symbols * self.topics_per_symbol

    @property
    def bus_rate(self) -> float:
        """Updates published per second, cluster-wide: what the one channel carries."""
        return self.topics * self.updates_per_topic_s

    @property
    def delivery_rate(self) -> float:
        """Frames delivered per second, cluster-wide."""
        return self.connections * self.topics_per_connection * self.updates_per_topic_s


@dataclass(frozen=True)
class Budget:
    """What a process may use at the planned load: headroom for reconnect storms (every client
    of a stopped worker resubscribes elsewhere, with snapshots), bursts and GC. A worker is one
    process on one core; Redis executes commands on one core."""

    worker_cpu: float = 0.6
    redis_cpu: float = 0.5
    #: Connections per worker at most, whatever the CPU says (open files, memory).
    conns_per_worker: int = 20_000


@dataclass(frozen=True)
class Plan:
    """A sized deployment. ``workers`` is None when one worker's bus intake alone exceeds its
    budget: no number of workers helps then."""

    load: Load
    shards: int
    affinity: bool
    workers: int | None
    #: Messages per second each worker reads off the bus.
    intake: float
    #: Each worker's CPU, cores (None when infeasible).
    worker_cpu: float | None
    #: Workers subscribed to each Redis node's channel.
    subscribers_per_node: int
    #: Each Redis node's CPU, cores.
    redis_cpu: float
    redis_ok: bool
    #: Each worker's resident memory, MiB.
    worker_mib: float | None

    @property
    def feasible(self) -> bool:
        return self.workers is not None and self.redis_ok

    @property
    def conns_per_worker(self) -> float | None:
        return None if self.workers is None else self.load.connections / self.workers


def plan(
    costs: UnitCosts,
    load: Load,
    budget: Budget | None = None,
    *,
    shards: int = 1,
    affinity: bool = False,
) -> Plan:
    """Workers and Redis nodes for ``load``.

    ``shards``: the channel (and the store with it) split by topic hash over that many Redis
    nodes. ``affinity=False``: clients land on any worker, so every worker has clients on
    (nearly) every topic and subscribes to every shard — it still reads every message, and each
    node fans out to every worker. ``affinity=True``: workers form one group per shard and a
    client connects to the group of its topics (routing by symbol), so a worker reads only its
    shard's messages and each node fans out only to its group.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    budget = budget or Budget()
    bus = load.bus_rate
    intake = bus / shards if affinity else bus
    spare = budget.worker_cpu - costs.worker_idle - costs.intake(intake)
    work = (costs.own_us * bus + costs.delivery_us * load.delivery_rate) / US
    workers: int | None = None
    worker_cpu: float | None = None
    worker_mib: float | None = None
    if spare > 0:
        workers = max(
            math.ceil(work / spare),
            math.ceil(load.connections / budget.conns_per_worker),
            shards if affinity else 1,
        )
        worker_cpu = costs.worker_idle + costs.intake(intake) + work / workers
        conns = load.connections / workers
        worker_mib = costs.worker_base_mib + conns * costs.kib_per_conn / 1024
    subscribers = 0
    if workers is not None:
        subscribers = math.ceil(workers / shards) if affinity else workers
    per_node = bus / shards
    per_message = costs.base_us + subscribers * costs.fanout_at_scale
    redis_cpu = costs.redis_idle + per_node * per_message / US
    return Plan(
        load=load,
        shards=shards,
        affinity=affinity,
        workers=workers,
        intake=intake,
        worker_cpu=worker_cpu,
        subscribers_per_node=subscribers,
        redis_cpu=redis_cpu,
        redis_ok=redis_cpu <= budget.redis_cpu,
        worker_mib=worker_mib,
    )


def smallest(
    costs: UnitCosts,
    load: Load,
    budget: Budget | None = None,
    *,
    affinity: bool,
    max_shards: int = 1024,
) -> Plan | None:
    """The feasible plan with the fewest Redis nodes (shards), or None up to ``max_shards``."""
    for shards in range(1, max_shards + 1):
        candidate = plan(costs, load, budget, shards=shards, affinity=affinity)
        if candidate.feasible:
            return candidate
    return None


def intake_ceiling(costs: UnitCosts, budget: Budget | None = None) -> float:
    """Bus messages per second at which reading the channel alone fills a worker's budget
    (``UnitCosts.intake`` solved for the rate, by bisection: it only grows)."""
    budget = budget or Budget()
    target = budget.worker_cpu - costs.worker_idle
    low, high = 0.0, 1.0
    while costs.intake(high) < target:
        high *= 2
        if high > 1e12:
            return math.inf
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if costs.intake(middle) < target else (low, middle)
    return low


def fanout_ceiling(costs: UnitCosts, budget: Budget | None = None) -> float:
    """Messages x subscribers per second one Redis core writes within its budget, with no
    script work: the upper bound of ``published/s x workers`` on one channel."""
    budget = budget or Budget()
    return (budget.redis_cpu - costs.redis_idle) * US / costs.fanout_at_scale


def channel_ceiling(costs: UnitCosts, bus_rate: float, budget: Budget | None = None) -> int:
    """Workers one channel on one Redis core can feed at ``bus_rate`` messages per second
    (each message stored once, then written to every worker)."""
    budget = budget or Budget()
    per_message = (budget.redis_cpu - costs.redis_idle) * US / bus_rate
    return max(math.floor((per_message - costs.base_us) / costs.fanout_at_scale), 0)


def channel_rate_ceiling(
    costs: UnitCosts,
    workers: int,
    budget: Budget | None = None,
    *,
    base_us: float | None = None,
) -> float:
    """Messages per second one channel on one Redis core carries within its budget when
    ``workers`` subscribe to it: each message costs ``base_us`` (default: the store-and-publish
    script, ``UnitCosts.base_us``) plus one write per worker (``fanout_at_scale``)."""
    budget = budget or Budget()
    base = costs.base_us if base_us is None else base_us
    return (budget.redis_cpu - costs.redis_idle) * US / (base + workers * costs.fanout_at_scale)


def coverage(subscriptions: float, topics: int) -> float:
    """The share of ``topics`` a worker has at least one client on, when its clients'
    ``subscriptions`` fall on topics uniformly at random: what a worker subscribing per topic,
    without routing clients by topic, would still read."""
    if topics < 1:
        raise ValueError(f"topics must be >= 1, got {topics}")
    missed: float = (1 - 1 / topics) ** subscriptions
    return 1 - missed
