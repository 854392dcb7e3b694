"""The demo page in a real browser, against a real server on 127.0.0.1.

Headless Debian Chromium (``make setup`` installs the ``chromium`` package), driven by
playwright-core from ``demo_driver.mjs``; this test owns the servers and makes every
assertion. Issue 7, acceptance 1: the page shows at least 100 candles, the last candle changes
with a live update, and the screenshot shows a chart with candles (pixels of both candle
colours, far from a blank page). Also the page's other promises: every request stays on
127.0.0.1, no script error, and when the server restarts the page reconnects by itself and
the chart continues with no missing and no repeated bar. The trades tape beside the chart
fills (newest first, at most 30 rows, sides coloured), newer trades come on top with no
missing or repeated id, it comes back after the restart, and it follows another symbol. The
order book ladder above the tape (a ``levels`` subscription at depth 10) shows the best 10 asks
over the best 10 bids with their sizes, prices falling down the ladder, updates replacing them;
it comes back after the restart and follows another symbol too.

The screenshot is kept under the test's tmp dir and copied to ``.artifacts/demo.png``
(git-ignored) for people to look at.
"""

from __future__ import annotations

import itertools
import json
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.png import decode
from tests.integration.harness import ROOT, free_port, run_server

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(__file__).with_name("demo_driver.mjs")
ARTIFACT = ROOT / ".artifacts" / "demo.png"
#: The demo's colours (frontend-types/demo/charting.ts): candle bodies and the background.
UP, DOWN, BACKGROUND = (38, 166, 154), (239, 83, 80), (19, 23, 34)
#: The page opens on resolution "1": one bar per simulated minute.
STEP_MS = 60_000
#: Rows of the demo's trades tape (frontend-types/demo/tape.ts).
TAPE_ROWS = 30
#: Levels per side of the demo's ladder (frontend-types/demo/ladder.ts).
LADDER_LEVELS = 10

# A browser, two server starts and a minute's wait for the page: longer than the default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _missing_prerequisite() -> str | None:
    frontend = ROOT / "frontend-types"
    needs = {
        CHROMIUM: "Debian's chromium",
        frontend / "node_modules/playwright-core/package.json": "playwright-core",
        frontend / "dist/demo/demo/main.js": "the compiled demo page",
    }
    for path, what in needs.items():
        if not path.exists():
            return f"{what} is missing ({path}): run `make setup`"
    if shutil.which("node") is None:
        return "node is not on PATH"
    return None


def _assert_tape(tape: dict[str, Any], symbol: str) -> None:
    """The tape as the page shows it: ``symbol``'s trades, newest first, one row per id with
    no id missing or repeated in between, each row a time, a price, a quantity and a side."""
    shown = tape["shown"]
    ids = [row["id"] for row in shown]
    assert tape["symbol"] == symbol, tape
    assert symbol in tape["title"], tape["title"]
    assert 1 <= len(shown) == tape["rows"] <= TAPE_ROWS, tape
    assert ids == tape["ids"], tape
    assert ids[0] == tape["newestId"], tape
    assert all(b == a - 1 for a, b in itertools.pairwise(ids)), f"not consecutive: {ids}"
    for row in shown:
        time_text, price, quantity, side = row["cells"]
        assert re.fullmatch(r"\d\d:\d\d:\d\d", time_text), row
        assert float(price) > 0, row
        assert float(quantity) > 0, row
        assert side == row["side"], row
        assert side in {"buy", "sell"}, row


def _assert_ladder(ladder: dict[str, Any], symbol: str) -> None:
    """The ladder as the page shows it: ``symbol``'s best asks drawn above its best bids, prices
    falling from top to bottom (asks highest first, so the best ask sits on the best bid), each
    row a price and a size, bars sized by the largest size shown, asks and bids coloured apart."""
    rows = ladder["rows"]
    sides = [row["side"] for row in rows]
    asks = [row for row in rows if row["side"] == "ask"]
    bids = [row for row in rows if row["side"] == "bid"]
    assert ladder["symbol"] == symbol, ladder
    assert symbol in ladder["title"], ladder["title"]
    # The simulator's books are deep: both sides always fill the depth asked for.
    assert len(asks) == len(bids) == LADDER_LEVELS, sides
    assert (ladder["asks"], ladder["bids"]) == (len(asks), len(bids)), ladder
    assert sides == ["ask"] * len(asks) + ["bid"] * len(bids), f"asks are not above bids: {sides}"
    prices = [row["price"] for row in rows]
    assert all(a > b for a, b in itertools.pairwise(prices)), f"not falling: {prices}"
    assert min(row["price"] for row in asks) > max(row["price"] for row in bids), "a crossed book"
    # Drawn in that order: every row below the one before, the bids below the asks.
    assert all(a["bottom"] <= b["top"] + 0.5 for a, b in itertools.pairwise(rows)), rows
    assert bids[0]["top"] >= asks[-1]["bottom"] - 0.5, (asks[-1], bids[0])
    for row in rows:
        price, size = row["cells"]
        assert float(price) == row["price"], row
        assert float(size) > 0, row
        assert row["fill"].endswith("%"), row
        assert 0 <= float(row["fill"][:-1]) <= 100, row
    assert max(float(row["fill"][:-1]) for row in rows) == 100, "no bar for the largest size"
    assert len({row["color"] for row in asks}) == len({row["color"] for row in bids}) == 1, rows
    assert asks[0]["color"] != bids[0]["color"], "asks and bids look the same"
    assert isinstance(ladder["seq"], int), ladder


def _assert_sides_coloured(*tapes: dict[str, Any]) -> None:
    """Buy and sell rows each have one price colour, and the two differ."""
    colours: dict[str, set[str]] = {"buy": set(), "sell": set()}
    for tape in tapes:
        for row in tape["shown"]:
            colours[row["side"]].add(row["color"])
    assert len(colours["buy"]) == 1, colours
    assert len(colours["sell"]) == 1, colours
    assert colours["buy"] != colours["sell"], colours


class Driver:
    """The node process driving Chromium; its stdout is a stream of JSON events."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            ["node", str(DRIVER), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._events.put(json.loads(line))
        self._events.put(None)

    def expect(self, event: str, within: float) -> dict[str, Any]:
        """The next event, which must be ``event`` and come ``within`` seconds."""
        try:
            got = self._events.get(timeout=within)
        except queue.Empty:
            pytest.fail(f"the browser driver sent no {event!r} within {within}s")
        if got is None:
            pytest.fail(f"the browser driver exited before {event!r}: {self.stderr()}")
        if got["event"] != event:
            pytest.fail(f"expected {event!r} from the browser driver, got {got}")
        return got

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def driver_factory() -> Iterator[list[Driver]]:
    made: list[Driver] = []
    yield made
    for driver in made:
        driver.close()


def test_demo_page_shows_a_live_chart_and_survives_a_restart(
    tmp_path: Path, driver_factory: list[Driver]
) -> None:
    missing = _missing_prerequisite()
    if missing is not None:
        pytest.fail(missing)
    settings: dict[str, object] = {
        "sim_speed": 60,
        "sim_tick_interval": 0.1,
        # Both servers share one simulated clock, as the workers of a cluster do: the second
        # one continues the first one's timeline instead of starting its own.
        "sim_anchor": time.time(),
        "close_notice_seconds": 0.2,
    }
    port = free_port()
    screenshot = tmp_path / "demo.png"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with run_server(tmp_path / "first", port=port, **settings) as server:
        driver = Driver(
            {
                "url": f"{server.http}/",
                "screenshot": str(screenshot),
                "profile": str(tmp_path / "chromium-profile"),
                "minCandles": 100,
                "tapeRows": TAPE_ROWS,
                "timeoutMs": 20_000,
                "restart": True,
                "switchSymbol": True,
            }
        )
        driver_factory.append(driver)
        loaded = driver.expect("loaded", within=60)
        driver.expect("restart-now", within=5)
    with run_server(tmp_path / "second", port=port, **settings):
        driver.send("restarted")
        resumed = driver.expect("resumed", within=90)
        switched = driver.expect("switched", within=40)
        done = driver.expect("done", within=10)

    # At least 100 candles, and the last one changed through a live WebSocket update.
    before, after = loaded["before"], loaded["after"]
    assert before["candles"] >= 100, loaded
    assert after["liveUpdates"] > before["liveUpdates"]
    assert after["last"] != before["last"]
    assert after["last"]["time"] >= before["last"]["time"]
    assert loaded["state"] == "open"
    assert loaded["canvas"] is True
    assert after["candles"] <= loaded["lastTextCandles"], loaded
    assert f"{loaded['lastTextCandles']} candles" in loaded["lastText"]
    assert loaded["problems"] == []

    # The trades tape: rows appeared, a newer trade came on top, and it filled to 30 rows of
    # live trades, every id once, in order, with the sides coloured.
    symbol = loaded["symbol"]
    first, later = loaded["tape"]["first"], loaded["tape"]["later"]
    _assert_tape(first, symbol)
    _assert_tape(later, symbol)
    assert later["rows"] == TAPE_ROWS, later
    assert later["newestId"] > first["newestId"]
    assert later["liveTrades"] > 0
    assert later["starts"] == first["starts"] == 1, "the tape started over for no reason"
    _assert_sides_coloured(first, later)

    # The ladder: the best 10 asks over the best 10 bids, then newer levels replacing them.
    ladder_first, ladder_later = loaded["ladder"]["first"], loaded["ladder"]["later"]
    _assert_ladder(ladder_first, symbol)
    _assert_ladder(ladder_later, symbol)
    assert ladder_later["updates"] > ladder_first["updates"] >= 1, loaded["ladder"]
    assert ladder_later["starts"] == ladder_first["starts"] == 1, "the ladder started over"

    # The screenshot shows candles of both colours on a mostly dark, far from blank, chart.
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, ARTIFACT)
    image = decode(screenshot.read_bytes())
    colours = image.colours()
    total = image.width * image.height
    assert (image.width, image.height) == (1200, 700)
    assert colours[UP] > 500, colours.most_common(8)
    assert colours[DOWN] > 500, colours.most_common(8)
    assert len(colours) > 50
    assert 0.05 < 1 - colours[BACKGROUND] / total < 0.6

    # After the restart: reconnected by itself, and the bars run on with no gap, no repeat.
    assert "reconnecting" in resumed["states"]
    assert resumed["states"][-1] == "open"
    assert resumed["state"] == "open"
    final, resumed_from = resumed["final"], resumed["resumedFrom"]
    assert final["last"]["time"] > resumed_from["last"]["time"]
    times = final["times"]
    assert resumed_from["last"]["time"] in times  # the restart lies inside the window checked
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert steps == {STEP_MS}, f"bar times are not continuous across the restart: {times}"

    # The tape after the restart: live again, newer trades on top, never an id shown twice or
    # out of order. The restarted simulator numbers its trades from 1 again: the client
    # reports the trades it cannot account for and the page starts a fresh tape; a server
    # that kept its numbering would have the tape simply go on.
    before_restart = resumed["tape"]["from"]
    if before_restart["rows"]:
        _assert_tape(before_restart, symbol)
    else:
        # Read once the server was back: the client may already have reconnected and started
        # the tape over (the driver waits for either), so it is empty until the fresh
        # snapshot comes — a restart of the tape, never a tape that lost its rows otherwise.
        assert before_restart["symbol"] == symbol, before_restart
        assert before_restart["liveTrades"] == 0, before_restart
        assert before_restart["starts"] > first["starts"], (first, before_restart)
    for tape in (resumed["tape"]["resumed"], resumed["tape"]["later"]):
        _assert_tape(tape, symbol)
        assert tape["liveTrades"] > 0
        if tape["starts"] == before_restart["starts"] and before_restart["rows"]:
            assert tape["newestId"] > before_restart["newestId"], (before_restart, tape)
    assert resumed["tape"]["later"]["newestId"] > resumed["tape"]["resumed"]["newestId"]
    # The ladder after the restart: the client renewed its levels subscription, new levels came.
    ladder_from, ladder_resumed = resumed["ladder"]["from"], resumed["ladder"]["resumed"]
    _assert_ladder(ladder_resumed, symbol)
    assert ladder_resumed["updates"] > ladder_from["updates"], resumed["ladder"]
    assert ladder_resumed["starts"] == ladder_from["starts"] == 1, resumed["ladder"]

    # Another symbol: the tape follows it.
    other = switched["symbol"]
    assert other != symbol
    _assert_tape(switched["first"], other)
    _assert_tape(switched["later"], other)
    assert switched["later"]["newestId"] > switched["first"]["newestId"]
    assert switched["later"]["starts"] > switched["from"]["starts"]
    # The ladder follows it as well.
    _assert_ladder(switched["ladder"]["switched"], other)
    assert switched["ladder"]["switched"]["starts"] > switched["ladder"]["from"]["starts"]

    # Nothing left the machine, and no script failed (the refused reconnect attempts while
    # the server was down are the browser's own WebSocket messages).
    hosts = {urlsplit(url).hostname for url in done["requests"]}
    assert hosts == {"127.0.0.1"}, done["requests"]
    assert any(url.startswith("ws://127.0.0.1") for url in done["requests"])
    unexpected = [p for p in done["problems"] if "WebSocket connection to" not in p]
    assert unexpected == []
