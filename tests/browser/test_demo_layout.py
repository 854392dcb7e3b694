"""The demo page follows the window and says when its link asks for something unknown.

Headless Chromium (``pages_driver.mjs``) against a real server on 127.0.0.1: the chart's
canvas must shrink with the window (it used to keep its first size; the trades tape beside it
moves below it on a narrow window), and a link naming a symbol and a resolution the server
does not serve must show a message naming both instead of silently charting something else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.pages import open_pages
from tests.integration.harness import ROOT, run_server

pytestmark = pytest.mark.integration


def test_chart_follows_resizes_and_bad_link_is_named(tmp_path: Path) -> None:
    if not (ROOT / "frontend-types/dist/demo/demo/main.js").exists():
        pytest.fail("the compiled demo page is missing: run `make setup`")
    with run_server(tmp_path, sim_speed=60) as server:
        report = open_pages(
            [
                {
                    "url": f"{server.http}/?symbol=NOPE&resolution=7",
                    "expect": ['unknown symbol "NOPE" and resolution "7"', "candles"],
                    "measure": "#chart canvas",
                    "resizeTo": {"width": 700, "height": 500},
                }
            ],
            tmp_path / "chromium-profile",
        )

    assert report["blocked"] == []
    (page,) = report["results"]
    assert page["rendered"], page["text"][:2000]
    assert page["problems"] == []
    sizes = page["sizes"]
    # The default 1280-px window, less the trades tape beside the chart and the price axis.
    assert sizes["before"] > 900, sizes
    # The chart narrowed with the window (the tape goes below it on a narrow window).
    assert 600 <= sizes["after"] <= 700, sizes
