"""``marketcast fake-upstreams``: the fake Binance and Twelve Data on loopback, for offline work.

It prints the ``MARKETCAST_*`` settings that point a server at them, then serves until
interrupted. Faults can be scheduled from the command line; the same faults are methods of
``FakeBinance`` / ``FakeTwelveData`` for programs and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData

log = logging.getLogger("marketcast.sim")

DEFAULT_BINANCE = "BTCUSDT,ETHUSDT,BNBUSDT"
DEFAULT_TWELVEDATA = "EUR/USD,GBP/USD,USD/JPY"


def add_parser(commands: Any) -> None:
    """Register ``fake-upstreams`` on the CLI's subcommands."""
    p = commands.add_parser(
        "fake-upstreams",
        help="run wire-compatible fake Binance and Twelve Data servers on loopback",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (keep it loopback)")
    p.add_argument("--binance-port", type=int, default=8911, help="fake Binance port (WS+REST)")
    p.add_argument("--twelvedata-port", type=int, default=8912, help="fake Twelve Data port")
    p.add_argument("--binance-symbols", default=DEFAULT_BINANCE, help="symbols of fake Binance")
    p.add_argument(
        "--twelvedata-symbols", default=DEFAULT_TWELVEDATA, help="symbols of fake Twelve Data"
    )
    p.add_argument("--speed", type=float, default=1.0, help="fake seconds per real second")
    p.add_argument("--seed", type=int, default=7, help="seed of the deterministic prices")
    p.add_argument("--history-days", type=float, default=2.0, help="depth of REST history")
    p.add_argument("--push-interval", type=float, default=1.0, help="seconds between stream pushes")
    p.add_argument("--ping-interval", type=float, default=20.0, help="seconds between pings")
    p.add_argument("--api-key", default=None, help="Twelve Data key to require; unset: any key")
    p.add_argument(
        "--credits-per-minute", type=int, default=None, help="Twelve Data 429 beyond this"
    )
    faults = p.add_argument_group("faults (0 = never)")
    faults.add_argument(
        "--drop-every",
        type=float,
        default=0,
        metavar="S",
        help="abort every Binance connection every S seconds",
    )
    faults.add_argument(
        "--stall-every",
        type=float,
        default=0,
        metavar="S",
        help="stop sending (no data, no pings) every S seconds",
    )
    faults.add_argument(
        "--stall-for", type=float, default=5.0, metavar="S", help="how long a stall lasts"
    )
    faults.add_argument(
        "--shutdown-every",
        type=float,
        default=0,
        metavar="S",
        help="send serverShutdown (then close) every S seconds",
    )
    faults.add_argument(
        "--malformed-every",
        type=float,
        default=0,
        metavar="S",
        help="send a frame that is not JSON every S seconds",
    )
    faults.add_argument(
        "--omit-optional",
        action="store_true",
        help="leave out optional fields (kline 'B', aggTrade 'M', Twelve Data 'volume')",
    )
    faults.add_argument(
        "--rest-429-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth Binance REST request answers 429 (Retry-After: 1)",
    )
    faults.add_argument(
        "--rest-418-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth Binance REST request answers 418 (banned)",
    )
    faults.add_argument(
        "--td-429-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth Twelve Data request: 429 out of credits",
    )
    faults.add_argument(
        "--td-error-every",
        type=int,
        default=0,
        metavar="N",
        help="every Nth Twelve Data request: a status:error body (code 400)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0


def _symbols(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


async def serve(args: argparse.Namespace) -> None:
    clock = FakeClock(args.speed)
    binance_symbols, td_symbols = _symbols(args.binance_symbols), _symbols(args.twelvedata_symbols)
    market = Market(
        binance_symbols + td_symbols, clock=clock, seed=args.seed, history_days=args.history_days
    )
    binance = FakeBinance(
        market,
        host=args.host,
        port=args.binance_port,
        push_interval=args.push_interval,
        ping_interval=args.ping_interval,
    )
    twelvedata = FakeTwelveData(
        market,
        host=args.host,
        port=args.twelvedata_port,
        api_key=args.api_key,
        credits_per_minute=args.credits_per_minute,
    )
    binance.omit_optional = twelvedata.omit_volume = args.omit_optional
    binance.fault_every = {429: args.rest_429_every, 418: args.rest_418_every}
    twelvedata.fault_every = {429: args.td_429_every, 400: args.td_error_every}
    await binance.start()
    await twelvedata.start()
    print(f"MARKETCAST_BINANCE_SYMBOLS={','.join(binance_symbols)}")
    print(f"MARKETCAST_BINANCE_WS_URL={binance.ws_url}")
    print(f"MARKETCAST_BINANCE_REST_URL={binance.rest_url}")
    print(f"MARKETCAST_TWELVEDATA_SYMBOLS={','.join(td_symbols)}")
    print(f"MARKETCAST_TWELVEDATA_REST_URL={twelvedata.rest_url}")
    print("MARKETCAST_TWELVEDATA_API_KEY=" + (args.api_key or "any"), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    schedule: list[tuple[float, Callable[[], Awaitable[None] | None]]] = [
        (args.drop_every, binance.drop),
        (args.stall_every, lambda: binance.stall(args.stall_for)),
        (args.shutdown_every, binance.server_shutdown),
        (args.malformed_every, binance.send_malformed),
    ]
    tasks = [asyncio.create_task(_every(s, f)) for s, f in schedule if s > 0]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await binance.stop()
        await twelvedata.stop()


async def _every(seconds: float, fault: Callable[[], Awaitable[None] | None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        log.info("injecting fault %s", getattr(fault, "__name__", "stall"))
        result = fault()
        if result is not None:
            with contextlib.suppress(Exception):
                await result
