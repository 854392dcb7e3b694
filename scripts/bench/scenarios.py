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
        return (
            f"{self.clients} clients{stalled}, {self.topics} topic(s), "
            f"{self.topics_per_client} per client; {load}; "
            f"{self.measure_s:g} s measured after {self.warmup_s:g} s warm-up"
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
    Scenario("idle_1k", "idle", clients=1000),
    Scenario("idle_10k", "idle", clients=10_000),
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
    Scenario("idle_500", "idle", clients=500, settle_s=0.5),
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
