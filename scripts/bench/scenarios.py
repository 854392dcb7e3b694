"""The scenarios, in a full and a quick (CI-sized) preset.

Load shapes (full preset):

- ``saturation``: 1,000 clients on one topic, the publisher as fast as the server goes.
- ``market``: 1,000 clients, 200 topics, 10 topics per client (50 subscribers per topic),
  600 updates/s = 30,000 deliveries/s offered — a busy market-data server.
- ``slow_ref`` / ``slow``: 200 clients on one topic at 150 updates/s (30,000 deliveries/s);
  in ``slow`` 2 of them stop reading. ``slow_ref`` is the same run without them, so the
  healthy clients' p99 can be compared with and without stalled peers.
- ``idle_1k`` / ``idle_10k``: connections that subscribe and then receive nothing; the
  server's resident memory growth per connection.
- ``idle_19k`` / ``market_19k``: as many connections as this machine's open-file cap (20,000,
  ``ulimit -Hn``) leaves room for. ``idle_19k`` as above; ``market_19k`` is 19,000 clients on
  190 topics, one each (100 subscribers per topic), at ``market``'s 30,000 deliveries/s
  (300 updates/s): the fan-out's cost and latency with 19 times the connections open.
  marketcast and the ``websockets``/``raw`` baselines only (the other two cannot keep up
  with ``market`` at 1,000 clients already).
- ``deflate_ref`` / ``deflate``: 1,000 clients, 100 topics, 10 per client (100 subscribers
  per topic), 250 updates/s = 25,000 deliveries/s of ~1.3 KB frames (``common.BookFrames``:
  order-book levels); in ``deflate`` every client offers permessage-deflate
  (``server_no_context_takeover``), in ``deflate_ref`` none does; in both the clients ACK
  every read at once (``quickack``). Run by marketcast, ``websockets`` (its own
  per-connection deflate) and ``raw`` (compressed once per frame) only: the other baselines
  have no deflate worth measuring.
- ``book_levels``: order-book levels through marketcast's real order-book path (``books``):
  1,000 clients, 100 symbols, each updating 10 times a second (1,000 updates/s), every
  client on the levels-20 ``orderbook`` topics of 5 symbols (50 subscribers per topic):
  50,000 deliveries/s of ~920-byte frames. marketcast gets each update through
  ``StreamManager.on_book`` and sends what ``book.served`` makes of it (the book updated,
  at most one frame per topic per 100 ms, built and fanned out); ``websockets`` and ``raw``
  apply the same change to the same book and send the same frame (same bytes) once per
  update. p50/p99 are publish -> receipt of the frame carrying that update's stamp, so
  marketcast's include the levels throttle's wait; ``ok%pub`` under 100 counts updates it
  merged into one frame. Why 5 per client rather than 10: 10 would be 100,000 deliveries/s,
  which here takes ~75-80 % of the clients' core (37-40 % measured at 50,000/s) and 60-95 %
  of the server's for the baselines (6-9.5 µs a delivery), so it would compare saturation,
  not latency; 5 is what a screen with a few ladders open watches. Clients ACK at once
  (``quickack``): without it, at ~50 such frames a second per connection, delayed ACKs
  stalled ``websockets`` and ``raw`` too (p99 38-40 ms on this loopback). Run by
  marketcast, ``websockets`` and ``raw`` only.
- ``ingest`` (kind ``ingest``, run by ``ingest.py`` rather than per target): 2,000 symbols
  (``topics`` counts symbols here) updating their 1-minute klines, every resolution
  aggregated (22,000 keys), 5,000 clients on 5 topics each; marketcast with the memory and
  with the Redis store and bus, then Redis's own ceiling (``redis-benchmark``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Kernel send buffer of the server's connections in the slow-consumer runs.
SLOW_SNDBUF = 16_384


@dataclass(frozen=True)
class Scenario:
    name: str
    #: "load" (publish and measure deliveries) or "idle" (memory per connection).
    kind: str
    clients: int
    topics: int = 1
    topics_per_client: int = 1
    stalled: int = 0
    #: "saturate" or "rate" (see ``publisher``).
    mode: str = "saturate"
    #: Deliveries per second offered in ``rate`` mode (publishes/s x subscribers per topic).
    offered_per_s: float = 0.0
    warmup_s: float = 2.0
    measure_s: float = 8.0
    #: SO_SNDBUF of the server's connections, 0 = the kernel's autotuning. On loopback the
    #: kernel lets a connection's send buffer grow to ~4 MB, so a stalled reader would take
    #: over a minute to push back at 150 updates/s; 16 KiB (32 KiB once the kernel doubles
    #: it) makes it push back within about two seconds. A healthy client reads each 250-byte
    #: frame as it comes, so it never needs more than a few KiB of it.
    #: Set for every target alike, and for the reference run too, so the two slow runs
    #: differ only in the stalled clients.
    server_sndbuf: int = 0
    #: Idle runs: seconds to let the server settle before each memory reading.
    settle_s: float = 1.5
    #: What is published: ``bar`` (~250-byte bar updates), ``book`` (~1.3 KB frames) or
    #: ``levels`` (order-book levels-20 frames through marketcast's order-book path).
    frame: str = "bar"
    #: Whether every client offers permessage-deflate, and the server window it asks for
    #: (None: the server's choice).
    deflate: bool = False
    deflate_window_bits: int | None = None
    #: Clients acknowledge every read at once (``rawws``: without it, 500-700-byte frames
    #: such as compressed books stall 30-40 ms on delayed ACKs on loopback, for any server).
    quickack: bool = False
    #: The targets that run this scenario (None: all); the others are listed as skipped.
    targets: tuple[str, ...] | None = None

    def runs(self, target: str) -> bool:
        return self.targets is None or target in self.targets

    @property
    def subscribers_per_topic(self) -> float:
        return self.clients * self.topics_per_client / self.topics

    @property
    def publish_rate(self) -> float:
        """Updates per second the publisher is asked for in ``rate`` mode."""
        return self.offered_per_s / self.subscribers_per_topic

    def describe(self) -> str:
        if self.kind == "idle":
            return f"{self.clients} idle connections, 1 subscription each"
        load = (
            "saturating publisher"
            if self.mode == "saturate"
            else f"{self.publish_rate:g} updates/s = {self.offered_per_s:g} deliveries/s offered"
        )
        stalled = f", {self.stalled} stop reading" if self.stalled else ""
        if self.server_sndbuf:
            stalled += f" (server SO_SNDBUF {self.server_sndbuf // 1024} KiB)"
        if self.frame == "book":
            stalled += ", ~1.3 KB book frames"
        elif self.frame == "levels":
            stalled += ", ~1 KB order-book levels-20 frames"
        if self.deflate:
            bits = self.deflate_window_bits
            stalled += " offering permessage-deflate" + (f" ({bits}-bit window)" if bits else "")
        return (
            f"{self.clients} clients{stalled}, {self.topics} topic(s), "
            f"{self.topics_per_client} per client; {load}; "
            f"{self.measure_s:g} s measured after {self.warmup_s:g} s warm-up"
        )


#: The deflate scenarios' targets: marketcast, the library's per-connection deflate, and the
#: compress-once floor.
DEFLATE_TARGETS = ("marketcast", "websockets", "raw")
#: ~1.3 KB frames to 100 subscribers per topic; ``deflate`` is the same run with every
#: client offering permessage-deflate, so the two differ in nothing else.
DEFLATE_REF = Scenario(
    "deflate_ref",
    "load",
    clients=1000,
    topics=100,
    topics_per_client=10,
    mode="rate",
    offered_per_s=25_000,
    warmup_s=2,
    measure_s=8,
    frame="book",
    quickack=True,
    targets=DEFLATE_TARGETS,
)
#: 200 clients, 20 topics (100 subscribers each), 10,000 deliveries/s, 2-s windows.
QUICK_DEFLATE_REF = replace(
    DEFLATE_REF, clients=200, topics=20, offered_per_s=10_000, warmup_s=0.5, measure_s=2.0
)

#: Order-book levels: 1,000 clients, 100 symbols updating 10 times a second each, every
#: client on the levels-20 ``orderbook`` topics of 5 of them (see the module docstring).
BOOK_LEVELS = Scenario(
    "book_levels",
    "load",
    clients=1000,
    topics=100,
    topics_per_client=5,
    mode="rate",
    offered_per_s=50_000,
    warmup_s=2,
    measure_s=8,
    frame="levels",
    quickack=True,
    targets=DEFLATE_TARGETS,
)
#: 200 clients, 20 symbols at 10 updates/s each, the same subscribers per topic, 2-s windows.
QUICK_BOOK_LEVELS = replace(
    BOOK_LEVELS, clients=200, topics=20, offered_per_s=10_000, warmup_s=0.5, measure_s=2.0
)

#: The 19,000-connection runs: marketcast and the baselines that keep up with ``market``.
TARGETS_19K = ("marketcast", "websockets", "raw")
#: 19,000 clients (the open-file cap here is 20,000), one topic each, 100 per topic, at the
#: ``market`` scenario's 30,000 deliveries/s: each client gets ~1.6 updates/s.
MARKET_19K = Scenario(
    "market_19k",
    "load",
    clients=19_000,
    topics=190,
    topics_per_client=1,
    mode="rate",
    offered_per_s=30_000,
    warmup_s=3,
    measure_s=10,
    targets=TARGETS_19K,
)

#: 200 clients on one topic at 150 updates/s; ``slow`` is the same run with 2 stalled clients,
#: so the two differ in nothing else.
SLOW_REF = Scenario(
    "slow_ref",
    "load",
    clients=200,
    mode="rate",
    offered_per_s=30_000,
    warmup_s=3,
    measure_s=8,
    server_sndbuf=SLOW_SNDBUF,
)

FULL = [
    Scenario("saturation", "load", clients=1000, mode="saturate", warmup_s=2, measure_s=8),
    Scenario(
        "market",
        "load",
        clients=1000,
        topics=200,
        topics_per_client=10,
        mode="rate",
        offered_per_s=30_000,
        warmup_s=2,
        measure_s=10,
    ),
    SLOW_REF,
    replace(SLOW_REF, name="slow", stalled=2),
    DEFLATE_REF,
    replace(DEFLATE_REF, name="deflate", deflate=True),
    Scenario("idle_1k", "idle", clients=1000),
    Scenario("idle_10k", "idle", clients=10_000),
    Scenario("idle_19k", "idle", clients=19_000, targets=TARGETS_19K),
    MARKET_19K,
    BOOK_LEVELS,
    Scenario("ingest", "ingest", clients=5000, topics=2000, topics_per_client=5, measure_s=4),
]

#: Seconds, not minutes: fewer clients and topics (each new topic makes marketcast load its
#: history once), short windows, 500 idle connections instead of 1,000 and 10,000.
QUICK = [
    Scenario("saturation", "load", clients=200, mode="saturate", warmup_s=0.5, measure_s=1.0),
    Scenario(
        "market",
        "load",
        clients=200,
        topics=20,
        topics_per_client=10,
        mode="rate",
        offered_per_s=10_000,
        warmup_s=0.5,
        measure_s=1.0,
    ),
    replace(SLOW_REF, name="slow", stalled=2, warmup_s=1.5, measure_s=1.0),
    QUICK_DEFLATE_REF,
    replace(QUICK_DEFLATE_REF, name="deflate", deflate=True),
    Scenario("idle_500", "idle", clients=500, settle_s=0.5),
    QUICK_BOOK_LEVELS,
    Scenario(
        "ingest", "ingest", clients=500, topics=200, topics_per_client=5, warmup_s=0.5, measure_s=1
    ),
]


def preset(
    quick: bool,
    *,
    names: list[str] | None = None,
    clients: int | None = None,
    measure_s: float | None = None,
    warmup_s: float | None = None,
) -> list[Scenario]:
    """The scenarios to run, with command-line overrides applied.

    ``clients`` overrides the client count of ``saturation`` and ``market`` only: the slow
    consumer runs are defined as "2 of 200" and the idle runs by their size.
    """
    chosen = QUICK if quick else FULL
    known = {s.name for s in FULL} | {s.name for s in QUICK}
    if names:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(
                f"unknown scenario(s) {', '.join(unknown)}: expected some of {', '.join(known)}"
            )
        pool = {s.name: s for s in FULL} | {s.name: s for s in chosen}
        chosen = [pool[n] for n in names]
    result = []
    for scenario in chosen:
        if clients is not None and scenario.name in ("saturation", "market"):
            if clients * scenario.topics_per_client < scenario.topics:
                raise SystemExit(f"--clients {clients} is too few for {scenario.topics} topics")
            scenario = replace(scenario, clients=clients)
        if measure_s is not None and scenario.kind == "load":
            scenario = replace(scenario, measure_s=measure_s)
        if warmup_s is not None and scenario.kind == "load":
            scenario = replace(scenario, warmup_s=warmup_s)
        result.append(scenario)
    return result
