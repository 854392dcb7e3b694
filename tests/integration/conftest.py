from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import Server, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One fast simulator server per test module: 60 simulated seconds per real second."""
    with run_server(
        tmp_path_factory.mktemp("server"),
        sim_speed=60,
        sim_tick_interval=0.05,
        stream_grace_period=0.5,
    ) as running:
        yield running
