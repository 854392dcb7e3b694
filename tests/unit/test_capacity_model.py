"""The capacity model's arithmetic (``scripts/bench/capacity.py``), checked on windows built from
known per-unit costs: deriving must give those costs back, predictions and plans must come out
at the values worked out by hand below."""

from __future__ import annotations

import math

import pytest

from scripts.bench.capacity import (
    Budget,
    Load,
    UnitCosts,
    Window,
    channel_ceiling,
    channel_rate_ceiling,
    compare,
    coverage,
    derive,
    fanout_ceiling,
    intake_ceiling,
    plan,
    predict,
    smallest,
)

# The cluster these windows come from (10 s each): idle CPU owner 1 %, relay 2 %, Redis 0.5 %;
# reading a bus message 30 µs at 2,000/s and 5 µs at 16,000/s; ingesting 100 µs beyond that;
# a delivery 10 µs; Redis 50 µs per update with the two workers subscribed (46 script + 2 x 2),
# 0.25 µs per message per subscriber at 16,000/s, 3 µs per bare pipelined PUBLISH.
IDLE = Window("idle", 10, owner_cpu_s=0.1, relay_cpu_s=0.2, redis_cpu_s=0.05, published=0,
              owner_deliveries=0, relay_deliveries=0)  # fmt: skip
# 2,000 updates/s, the owner's one client gets all of them: owner 0.01 + 0.26 + 0.02 cores.
INGEST = Window("ingest", 10, owner_cpu_s=2.9, relay_cpu_s=0.8, redis_cpu_s=1.05,
                published=20_000, owner_deliveries=20_000, relay_deliveries=0)  # fmt: skip
# 8 more subscribers: Redis 0.005 + (50 + 8 x 2) x 2,000 / 1e6 = 0.137 cores.
FANOUT = Window("fanout", 10, owner_cpu_s=2.9, relay_cpu_s=0.8, redis_cpu_s=1.37,
                published=20_000, owner_deliveries=20_000, relay_deliveries=0,
                extra_subscribers=8)  # fmt: skip
# 5,000 deliveries/s on the relay: 0.02 + 0.06 + 0.05 cores.
CALIBRATE = Window("calibrate", 10, owner_cpu_s=2.9, relay_cpu_s=1.3, redis_cpu_s=1.05,
                   published=20_000, owner_deliveries=20_000, relay_deliveries=50_000)  # fmt: skip
# 16,000 injected messages/s: each worker + 0.08 cores, Redis 0.005 + 0.048.
FLOOD = Window("flood", 10, owner_cpu_s=0.9, relay_cpu_s=1.0, redis_cpu_s=0.53,
               published=160_000, owner_deliveries=0, relay_deliveries=0,
               injected=160_000)  # fmt: skip
# The same with 8 more subscribers: Redis 0.005 + (3 + 8 x 0.25) x 16,000 / 1e6 = 0.085.
FLOOD_FANOUT = Window("flood_fanout", 10, owner_cpu_s=0.9, relay_cpu_s=1.0, redis_cpu_s=0.85,
                      published=160_000, owner_deliveries=0, relay_deliveries=0,
                      extra_subscribers=8, injected=160_000)  # fmt: skip


@pytest.fixture
def costs() -> UnitCosts:
    return derive(IDLE, INGEST, FANOUT, CALIBRATE, FLOOD, FLOOD_FANOUT, kib_per_conn=20.0)


def test_derive_gives_back_the_costs_the_windows_were_built_from(costs: UnitCosts) -> None:
    assert costs.owner_idle == pytest.approx(0.01)
    assert costs.relay_idle == pytest.approx(0.02)
    assert costs.redis_idle == pytest.approx(0.005)
    assert costs.recv_us == pytest.approx(30.0)
    assert costs.recv_rate == pytest.approx(2_000.0)
    assert costs.delivery_us == pytest.approx(10.0)
    assert costs.own_us == pytest.approx(100.0)
    assert costs.ingest_us == pytest.approx(130.0)
    assert costs.update_us == pytest.approx(50.0)
    assert costs.fanout_us == pytest.approx(2.0)
    assert costs.base_us == pytest.approx(46.0)
    assert costs.recv_fast_us == pytest.approx(5.0)
    assert costs.recv_fast_rate == pytest.approx(16_000.0)
    assert costs.publish_us == pytest.approx(3.0)
    assert costs.fanout_fast_us == pytest.approx(0.25)
    assert costs.fanout_at_scale == pytest.approx(0.25)
    assert costs.worker_idle == pytest.approx(0.02)


def test_a_delivery_cost_given_as_input_replaces_the_calibration() -> None:
    given = derive(IDLE, INGEST, FANOUT, CALIBRATE, delivery_us=12.0)
    assert given.delivery_us == 12.0
    # (0.28 cores - 12 µs x 2,000/s) / 2,000/s - 30 µs of reading the echo
    assert given.own_us == pytest.approx(98.0)
    # no flood windows: the high-rate figures stay unmeasured, the low-rate ones are used
    assert given.recv_fast_rate == 0.0
    assert given.fanout_at_scale == pytest.approx(2.0)
    assert given.intake(26_000) == pytest.approx(26_000 * 30 / 1e6)


def test_redis_cost_per_update_comes_from_the_calibration_window() -> None:
    # Redis busier per update while the workers deliver: 0.125 cores at 2,000 updates/s
    busy = Window("calibrate", 10, owner_cpu_s=2.9, relay_cpu_s=1.3, redis_cpu_s=1.25,
                  published=20_000, owner_deliveries=20_000, relay_deliveries=50_000)  # fmt: skip
    costs = derive(IDLE, INGEST, FANOUT, busy)
    assert costs.update_us == pytest.approx(60.0)
    # the fan-out cost still compares the two windows without clients
    assert costs.fanout_us == pytest.approx(2.0)
    assert costs.base_us == pytest.approx(56.0)


def test_windows_that_cannot_give_a_cost_are_refused() -> None:
    silent = Window("ingest", 10, 0.1, 0.2, 0.05, 0, 0, 0)
    with pytest.raises(ValueError, match="published nothing"):
        derive(IDLE, silent, FANOUT, CALIBRATE)
    with pytest.raises(ValueError, match="no extra subscribers"):
        derive(IDLE, INGEST, INGEST, CALIBRATE)
    with pytest.raises(ValueError, match="injected messages only"):
        derive(IDLE, INGEST, FANOUT, CALIBRATE, INGEST)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        Window("empty", 0, 0, 0, 0, 0, 0, 0)


def test_intake_is_linear_up_to_the_ingest_rate_then_follows_both_points(
    costs: UnitCosts,
) -> None:
    assert costs.intake(1_000) == pytest.approx(0.03)
    assert costs.intake(2_000) == pytest.approx(0.06)
    assert costs.intake(16_000) == pytest.approx(0.08)
    # slope (0.08 - 0.06) / 14,000 = 1.4286 µs: 0.06 + 24,000 x 1.4286 µs
    assert costs.intake(26_000) == pytest.approx(0.0942857, rel=1e-6)


def test_prediction_of_a_window_from_its_rates(costs: UnitCosts) -> None:
    check = Window("check", 10, owner_cpu_s=3.245, relay_cpu_s=1.35, redis_cpu_s=0.72,
                   published=15_000, owner_deliveries=90_000,
                   relay_deliveries=70_000)  # fmt: skip
    predicted = predict(costs, check)
    # 0.01 + 1,500 x 30 µs + 1,500 x 100 µs + 9,000 x 10 µs
    assert predicted.owner == pytest.approx(0.295)
    # 0.02 + 1,500 x 30 µs + 7,000 x 10 µs
    assert predicted.relay == pytest.approx(0.135)
    # 0.005 + 1,500 x 50 µs
    assert predicted.redis == pytest.approx(0.08)
    rows = compare(costs, check)
    assert [name for name, *_ in rows] == ["owner worker", "relay worker", "redis"]
    assert [round(ratio, 6) for *_, ratio in rows] == [1.1, 1.0, 0.9]


def test_prediction_counts_injected_messages_as_read_but_not_ingested(costs: UnitCosts) -> None:
    predicted = predict(costs, FLOOD_FANOUT)
    assert predicted.owner == pytest.approx(0.09)
    assert predicted.relay == pytest.approx(0.10)
    assert predicted.redis == pytest.approx(0.085)


def test_load_rates() -> None:
    load = Load(connections=1_000_000, symbols=2_000)
    assert load.topics == 26_000
    assert load.bus_rate == 26_000
    assert load.delivery_rate == 10_000_000


def test_one_channel_plan_for_100k_connections(costs: UnitCosts) -> None:
    load = Load(connections=100_000, symbols=2_000)
    one = plan(costs, load)
    # spare per worker 0.6 - 0.02 - 0.0942857 = 0.4857143 cores; work 2.6 + 10 = 12.6 cores
    assert one.workers == 26
    assert one.worker_cpu == pytest.approx(0.02 + 0.0942857 + 12.6 / 26, rel=1e-6)
    assert one.conns_per_worker == pytest.approx(100_000 / 26)
    assert one.intake == 26_000
    assert one.subscribers_per_node == 26
    # 0.005 + 26,000 x (46 + 26 x 0.25) µs
    assert one.redis_cpu == pytest.approx(1.37)
    assert not one.redis_ok
    assert not one.feasible
    assert one.worker_mib == pytest.approx(100_000 / 26 * 20 / 1024)


def test_sharding_spreads_redis_and_routing_by_topic_also_cuts_intake(costs: UnitCosts) -> None:
    load = Load(connections=100_000, symbols=2_000)
    anywhere = smallest(costs, load, affinity=False)
    assert anywhere is not None
    # 1.365 / G <= 0.495 first holds at G = 3
    assert (anywhere.shards, anywhere.workers) == (3, 26)
    assert anywhere.redis_cpu == pytest.approx(0.46)
    assert anywhere.intake == 26_000
    routed = smallest(costs, load, affinity=True)
    assert routed is not None
    assert routed.shards == 3
    assert routed.intake == pytest.approx(26_000 / 3)
    # intake 0.0695238 cores leaves 0.5104762: ceil(12.6 / 0.5104762) = 25 workers, 9 a node
    assert routed.workers == 25
    assert routed.subscribers_per_node == 9
    assert routed.redis_cpu == pytest.approx(0.005 + 26_000 / 3 * (46 + 9 * 0.25) / 1e6)
    # two shards with routing: 13 workers a node push Redis to 0.645 cores
    two = plan(costs, load, shards=2, affinity=True)
    assert (two.workers, two.subscribers_per_node) == (25, 13)
    assert two.redis_cpu == pytest.approx(0.64525)
    assert not two.redis_ok


def test_a_bus_too_busy_for_any_worker_has_no_plan(costs: UnitCosts) -> None:
    flooded = plan(costs, Load(connections=1_000, symbols=1_000_000))
    assert flooded.workers is None
    assert flooded.worker_cpu is None
    assert flooded.conns_per_worker is None
    assert not flooded.feasible
    with pytest.raises(ValueError, match="shards"):
        plan(costs, Load(connections=1, symbols=1), shards=0)


def test_connection_cap_sets_the_workers_when_cpu_does_not(costs: UnitCosts) -> None:
    quiet = Load(connections=100_000, symbols=1, updates_per_topic_s=0.001)
    capped = plan(costs, quiet, Budget(conns_per_worker=10_000))
    assert capped.workers == 10


def test_ceilings(costs: UnitCosts) -> None:
    # (0.5 - 0.005) cores / 0.25 µs per message per subscriber
    assert fanout_ceiling(costs) == pytest.approx(1_980_000)
    # 0.495e6 / 26,000 = 19 µs a message: less than the 46 µs script alone
    assert channel_ceiling(costs, 26_000) == 0
    # 0.495e6 / 5,000 = 99 µs: (99 - 46) / 0.25 = 212 workers
    assert channel_ceiling(costs, 5_000) == 212
    assert channel_rate_ceiling(costs, 100) == pytest.approx(495_000 / 71)
    assert channel_rate_ceiling(costs, 100, base_us=1.0) == pytest.approx(495_000 / 26)
    # intake(r) = 0.58 cores on the line: 0.06 + (r - 2,000) x 1.4286 µs
    assert intake_ceiling(costs) == pytest.approx(366_000, rel=1e-6)


def test_coverage_of_topics_by_random_subscriptions() -> None:
    assert coverage(0, 10) == 0
    assert coverage(1, 1) == 1
    assert coverage(26_000, 26_000) == pytest.approx(1 - math.exp(-1), rel=1e-4)
    assert coverage(45_000, 26_000) == pytest.approx(0.8229, abs=1e-4)
    with pytest.raises(ValueError, match="topics"):
        coverage(1, 0)
