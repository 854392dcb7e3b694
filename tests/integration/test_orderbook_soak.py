"""The order-book soak (``scripts/soak/orderbook.py``, ``make soak``) at CI size: the same
fake Binance with every depth fault on, a real ``marketcast serve``, and per symbol a diff
client, a levels client and a late diff client, all checked against the fake's true books.

It stops as soon as each symbol has enough checkpoints in both modes and its consistent-
snapshot check is done (about 15 s on an idle machine), so it counts events that arrived,
never how fast they came; the deadline only bounds a hang on a loaded machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marketcast.book.sim_book import Faults
from scripts.soak.orderbook import SoakConfig, soak

pytestmark = pytest.mark.integration


# Server start (up to 60 s on a loaded machine) and the run's deadline, with room to stop.
@pytest.mark.timeout(240)
async def test_books_stay_true_through_upstream_faults_in_both_modes(tmp_path: Path) -> None:
    config = SoakConfig(
        symbols=("BTCUSDT", "ETHUSDT"),
        speed=4.0,
        duration=0.0,
        deadline=150.0,
        late_after=3.0,
        min_checkpoints=100,
        # Higher rates than the long soak's, for faults within seconds.
        faults=Faults(drop=0.01, duplicate=0.02, reorder=0.01, lagging_snapshot=0.5),
    )
    result = await soak(config, tmp_path)
    report = result.report()
    assert not result.failures, f"{result.failures}\n{report}"
    # Every fault kind applied, a resync seen by a client, and the counts below.
    assert not result.problems(), f"{result.problems()}\n{report}"
    assert result.total("diff") > 0, report
    assert result.total("levels") > 0, report
    for symbol, tally in result.tallies.items():
        assert tally.counts["late"] >= 1, f"{symbol}: no consistent-snapshot check\n{report}"
        for mode in ("diff", "levels"):
            assert tally.counts[mode] >= config.min_checkpoints, f"{symbol} {mode}\n{report}"
