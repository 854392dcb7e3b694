"""Order-book soak: ``python -m scripts.soak --minutes 3 [--speed S] [--symbols N]``.

Runs the shipped fake Binance (``marketcast.sim.binance``) on an accelerated clock with every
depth fault on (diff events dropped, repeated and swapped; snapshots older than the stream), a
real ``marketcast serve`` subprocess on 127.0.0.1 whose Binance feed reads it, and per symbol
three WebSocket clients: a ``diff`` client from the start, a ``levels`` client (depth 20) and a
second ``diff`` client opened after a third of the run. Checked at every update:

- diff: ``prev_seq`` is the ``seq`` held (else an unnoticed gap); a ``reset`` replaces the book;
  at every ``seq`` whose true book the fake still keeps, the book held equals it, every level's
  price and quantity compared as ``Decimal``;
- levels: bids and asks are the true best 20 levels at the update's ``seq``;
- consistent snapshots: when the first diff client reaches the ``seq`` of the late client's
  snapshot, its book equals that snapshot.

Exit 0 only without a mismatch, with every fault kind applied by the fake, and with enough
checkpoints in each mode; 1 otherwise (the reasons are printed, the server log kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson
from websockets.asyncio.client import ClientConnection, connect

from marketcast.book.levels import OrderBook, decimal_rows
from marketcast.book.sim_book import Faults
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import MINUTE, FakeClock, Market

from . import serve

SYMBOLS: Final = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
#: Low rates: each drop or swap costs a resync (a REST snapshot of weight 50, the fake allowing
#: 6000 a minute), and a book being joined again serves nothing to check.
FAULTS: Final = Faults(drop=0.002, duplicate=0.004, reorder=0.002, lagging_snapshot=0.5)
FAULT_KINDS: Final = ("dropped", "duplicated", "reordered", "lagged")
MODES: Final = ("diff", "levels")
DEPTH: Final = 20
#: Seconds any one wait may take (server start excepted): a frame, a reply, a connection.
WAIT: Final = 30.0
LATE_ATTEMPTS: Final = 10
Rows = tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]


class SoakError(RuntimeError):
    """The soak could not run or a client saw something it must not."""


@dataclass(frozen=True)
class SoakConfig:
    symbols: tuple[str, ...] = SYMBOLS[:3]
    #: Fake seconds per real second: 10 diff events a fake second per symbol.
    speed: float = 8.0
    #: Seconds the run lasts at least (and until the targets are met), and at most.
    duration: float = 180.0
    deadline: float = 180.0
    #: Seconds after the clients start when each symbol's late diff client opens.
    late_after: float = 60.0
    #: Checkpoints each symbol needs in each mode.
    min_checkpoints: int = 100
    faults: Faults = FAULTS


@dataclass
class Tally:
    """One symbol's counts (``diff``/``levels``: checkpoints; ``... updates``, ``resets``,
    ``late``/``late missed``: consistent-snapshot checks) and the late check's state."""

    counts: Counter[str] = field(default_factory=Counter)
    #: The first diff client's book, and its books by seq while the late one subscribes.
    first: OrderBook | None = None
    recording: dict[int, Rows] | None = None
    #: The late snapshot (seq, rows) the first diff client has not reached yet.
    pending: tuple[int, Rows] | None = None


@dataclass
class SoakResult:
    config: SoakConfig
    seconds: float
    tallies: dict[str, Tally]
    #: Faults the fake applied, by kind (``FAULT_KINDS``), and snapshots it served.
    faults: dict[str, int]
    snapshots: int
    failures: list[str]

    def total(self, what: str) -> int:
        return sum(t.counts[what] for t in self.tallies.values())

    def problems(self) -> list[str]:
        found, least = list(self.failures), self.config.min_checkpoints
        for symbol, tally in self.tallies.items():
            found += [
                f"{symbol}: {tally.counts[m]} {m} checkpoints, fewer than {least}"
                for m in MODES
                if tally.counts[m] < least
            ]
            if not tally.counts["late"]:
                found.append(f"{symbol}: no consistent-snapshot check done")
        found += [f"the fake applied no fault '{k}'" for k in FAULT_KINDS if not self.faults[k]]
        if not self.total("resets"):
            found.append("no reset reached a client: the faults forced no resync")
        return found

    def report(self) -> str:
        c, f, total = self.config, self.faults, self.total
        lines = [
            f"order-book soak: {self.seconds:.0f} s at {c.speed:g}x fake speed, "
            f"symbols {', '.join(c.symbols)}",
            f"  diff:   {total('diff updates')} updates, {total('diff')} checkpoints equal to "
            "the true book",
            f"  levels: {total('levels updates')} updates, {total('levels')} checkpoints equal "
            f"to the true best {DEPTH}",
            f"  resets {total('resets')}; consistent snapshots {total('late')} checked, "
            f"{total('late missed')} missed",
            f"  faults applied by the fake: {f['dropped']} dropped, {f['duplicated']} "
            f"duplicated, {f['reordered']} reordered events; {f['lagged']} of "
            f"{self.snapshots} snapshots lagging",
        ]
        lines += [
            f"  {symbol}: diff {t.counts['diff']}, levels {t.counts['levels']}, resets "
            f"{t.counts['resets']}, consistent snapshots {t.counts['late']}"
            for symbol, t in self.tallies.items()
        ]
        return "\n".join(lines)


@contextlib.asynccontextmanager
async def marketcast_serve(
    fake: FakeBinance, symbols: tuple[str, ...], log_dir: Path
) -> AsyncIterator[str]:
    """``marketcast serve`` (its log in ``log_dir``) with its Binance feed on ``fake``: its
    WebSocket URL. Started in a thread, so the fake keeps answering on this loop meanwhile."""
    settings = {
        "sim_symbols": "AAPL",  # the simulator kept small
        "binance_symbols": ",".join(symbols),
        "binance_ws_url": fake.ws_url,
        "binance_rest_url": fake.rest_url,
        # Snapshots asked again sooner than by default after a failed join: more time joined.
        "binance_reconnect_min": "0.2",
        "binance_reconnect_max": "5",
    }
    async with serve.running_in_thread(log_dir, settings) as server:
        yield server.ws


async def subscribe(ws: ClientConnection, symbol: str, params: dict[str, Any]) -> Any:
    """The book of the ``orderbook.subscribe`` reply (None: not joined yet)."""
    payload = {"symbol": symbol, "params": params}
    message = {"type": "orderbook.subscribe", "id": 1, "payload": payload}
    await ws.send(orjson.dumps(message).decode())
    while True:
        async with asyncio.timeout(WAIT):
            frame = orjson.loads(await ws.recv())
        if frame.get("id") == 1:
            if frame["type"] != "orderbook.subscribe.response":
                raise SoakError(f"subscribe {symbol} {params}: {frame}")
            return frame["payload"].get("book")


async def next_update(ws: ClientConnection) -> dict[str, Any]:
    while True:
        async with asyncio.timeout(WAIT):
            frame = orjson.loads(await ws.recv())
        if frame["type"] == "orderbook.update":
            payload: dict[str, Any] = frame["payload"]
            return payload
        if frame["type"] == "error":
            raise SoakError(f"an error frame: {frame}")


def difference(served: Rows, truth: Rows) -> str:
    """What differs, side by side: levels only served, levels only true (a few of each)."""
    parts = []
    for side, mine, true in zip(("bids", "asks"), served, truth, strict=True):
        extra, missing = sorted(set(mine) - set(true)), sorted(set(true) - set(mine))
        if extra or missing or mine != true:
            parts.append(
                f"{side}: {len(mine)} served vs {len(true)} true levels; served only "
                f"{[(str(p), str(q)) for p, q in extra[:4]]}, true only "
                f"{[(str(p), str(q)) for p, q in missing[:4]]}"
            )
    return "; ".join(parts)


class Soak:
    """The clients of one run and their checks against ``fake``'s true books."""

    def __init__(self, config: SoakConfig, fake: FakeBinance, url: str) -> None:
        self.config, self.fake, self.url = config, fake, url
        self.tallies = {symbol: Tally() for symbol in config.symbols}
        self.failures: list[str] = []
        #: (symbol, seq) -> the true book as decimals (None: no longer kept); the clients of a
        #: symbol check the same seqs at about the same time.
        self._truths: dict[tuple[str, int], Rows | None] = {}

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def truth(self, symbol: str, seq: int) -> Rows | None:
        key = (symbol, seq)
        if key not in self._truths:
            if len(self._truths) >= 1024:
                del self._truths[next(iter(self._truths))]
            true = self.fake.true_book(symbol, seq)
            self._truths[key] = (
                None if true is None else (decimal_rows(true[0]), decimal_rows(true[1]))
            )
        return self._truths[key]

    def check(self, symbol: str, mode: str, seq: int, served: Rows) -> None:
        """A checkpoint wherever the fake still keeps the true book at ``seq``."""
        truth = self.truth(symbol, seq)
        if truth is None:
            return
        if mode == "levels":
            truth = (truth[0][:DEPTH], truth[1][:DEPTH])
        if served == truth:
            self.tallies[symbol].counts[mode] += 1
        else:
            self.fail(f"{mode} client of {symbol} at seq {seq}: {difference(served, truth)}")

    async def run(self) -> float:
        """Every client until the run ends; its length in seconds."""
        work: list[tuple[str, Coroutine[Any, Any, None]]] = []
        for s in self.config.symbols:
            work += [(f"diff client of {s}", self.diff_client(s))]
            work += [(f"levels client of {s}", self.levels_client(s))]
            work += [(f"late diff client of {s}", self.late_client(s))]
        tasks = [asyncio.create_task(self.guarded(name, w)) for name, w in work]
        start = time.monotonic()
        try:
            while not self.failures:
                elapsed = time.monotonic() - start
                if elapsed >= self.config.deadline or (
                    elapsed >= self.config.duration and self.targets_met()
                ):
                    break
                await asyncio.sleep(0.1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=WAIT)
        return time.monotonic() - start

    def targets_met(self) -> bool:
        least = self.config.min_checkpoints
        counts = [t.counts for t in self.tallies.values()]
        return all(c["late"] and min(c[m] for m in MODES) >= least for c in counts)

    async def guarded(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # a client that fails ends the run, named in the report
            self.fail(f"{name}: {type(exc).__name__}: {exc}")

    async def levels_client(self, symbol: str) -> None:
        async with connect(self.url, open_timeout=WAIT, close_timeout=2) as ws:
            book = await subscribe(ws, symbol, {"mode": "levels", "depth": DEPTH})
            tally = self.tallies[symbol]
            while True:
                if book is not None:
                    rows = (decimal_rows(book["bids"]), decimal_rows(book["asks"]))
                    self.check(symbol, "levels", book["seq"], rows)
                book = await next_update(ws)
                tally.counts["levels updates"] += 1

    async def late_client(self, symbol: str) -> None:
        await asyncio.sleep(self.config.late_after)
        for _ in range(LATE_ATTEMPTS):  # returns only if its snapshot could not be checked
            await self.diff_client(symbol, late=True)
            await asyncio.sleep(1.0)

    async def diff_client(self, symbol: str, *, late: bool = False) -> None:
        tally = self.tallies[symbol]
        async with connect(self.url, open_timeout=WAIT, close_timeout=2) as ws:
            if late:  # the first client's books from now until the snapshot is known
                first = tally.first
                tally.recording = {} if first is None else {first.seq: first.decimals()}
            book = await subscribe(ws, symbol, {"mode": "diff"})
            held = None if book is None else OrderBook(book["bids"], book["asks"], book["seq"])
            if held is not None:
                self.check(symbol, "diff", held.seq, held.decimals())
            if late:
                self.late_snapshot(symbol, held)
            while not late or tally.counts["late"] or tally.pending is not None:
                update = await next_update(ws)
                tally.counts["diff updates"] += 1
                if update.get("reset"):
                    tally.counts["resets"] += 1
                    held = OrderBook(update["bids"], update["asks"], update["seq"])
                elif held is None or update["prev_seq"] != held.seq:
                    raise SoakError(
                        f"unnoticed gap: a diff of {symbol} from prev_seq {update['prev_seq']} "
                        f"to {update['seq']}, the client holding seq "
                        f"{None if held is None else held.seq}"
                    )
                else:
                    held.apply(update["bids"], update["asks"])
                    held.seq = update["seq"]
                rows = held.decimals()
                self.check(symbol, "diff", held.seq, rows)
                if not late:
                    self.first_at(symbol, held, rows)

    def late_snapshot(self, symbol: str, held: OrderBook | None) -> None:
        """The late client's snapshot: compared with the first client's book at its seq now,
        or once the first client gets there."""
        tally = self.tallies[symbol]
        recorded, tally.recording = tally.recording or {}, None
        if held is None:
            tally.counts["late missed"] += 1
        elif held.seq in recorded:
            self.compare_late(symbol, held.seq, recorded[held.seq], held.decimals())
        elif tally.first is None or tally.first.seq < held.seq:
            tally.pending = (held.seq, held.decimals())
        else:  # the first client jumped past this seq with a reset
            tally.counts["late missed"] += 1

    def first_at(self, symbol: str, held: OrderBook, rows: Rows) -> None:
        tally = self.tallies[symbol]
        tally.first = held
        if tally.recording is not None:
            tally.recording[held.seq] = rows
        if tally.pending is not None and held.seq >= tally.pending[0]:
            (seq, snapshot), tally.pending = tally.pending, None
            if held.seq == seq:
                self.compare_late(symbol, seq, rows, snapshot)
            else:
                tally.counts["late missed"] += 1

    def compare_late(self, symbol: str, seq: int, first: Rows, late: Rows) -> None:
        if first == late:
            self.tallies[symbol].counts["late"] += 1
        else:
            self.fail(
                f"inconsistent snapshots of {symbol} at seq {seq}, first client vs late "
                f"snapshot: {difference(first, late)}"
            )


async def soak(config: SoakConfig, log_dir: Path) -> SoakResult:
    """One run: the faulty fake, the server (its log in ``log_dir``), the clients."""
    real_minute = int(time.time() * 1000) // MINUTE * MINUTE
    clock = FakeClock(config.speed, origin_ms=real_minute)
    market = Market(list(config.symbols), clock=clock, history_days=0.1)
    # True books kept for 10 s of events: a checkpoint needs the seq's book still there.
    history = max(256, int(100 * config.speed))
    fake = FakeBinance(market, push_interval=0.1, ping_interval=5.0, depth_history=history)
    fake.depth.set_faults(config.faults)
    await fake.start()
    try:
        async with marketcast_serve(fake, config.symbols, log_dir) as url:
            run = Soak(config, fake, url)
            seconds = await run.run()
    finally:
        await fake.stop()
    records = [fake.depth.records(symbol) for symbol in config.symbols]
    faults = {kind: sum(len(getattr(r, kind)) for r in records) for kind in FAULT_KINDS}
    snapshots = sum(r.snapshots for r in records)
    return SoakResult(config, seconds, run.tallies, faults, snapshots, run.failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.soak", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--minutes", type=float, default=3.0, help="run length (default 3)")
    parser.add_argument("--speed", type=float, default=8.0, help="fake clock speed (default 8)")
    parser.add_argument("--symbols", type=int, default=3, choices=range(1, len(SYMBOLS) + 1))
    parser.add_argument("--min-checkpoints", type=int, default=100, help="per symbol and mode")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    config = SoakConfig(
        symbols=SYMBOLS[: args.symbols],
        speed=args.speed,
        duration=seconds,
        deadline=seconds,
        late_after=seconds / 3,
        min_checkpoints=args.min_checkpoints,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="marketcast-soak-"))
    try:
        result = asyncio.run(soak(config, log_dir))
    except (SoakError, RuntimeError) as exc:  # RuntimeError: the server did not start
        print(f"soak: FAIL: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    problems = result.problems()
    if problems:
        print("FAIL:\n" + "\n".join(f"  - {p}" for p in problems))
        print(f"server log: {next(log_dir.glob('server-*.log'), log_dir)}")
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    print("PASS")
    return 0
