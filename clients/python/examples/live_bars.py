"""Print a symbol's closed 1-minute bars as they close, with the last few as history first.

Usage: ``python live_bars.py [URL] [--symbol BTCUSDT] [--closed N]`` (N: stop after N closed
bars; 0 runs until interrupted). Typed end to end: ``mypy --strict`` checks this file against
the installed package.
"""

from __future__ import annotations

import argparse
import asyncio

from marketcast_client import MarketcastClient, SubscriptionRefused
from marketcast_client.models import Bar, BarsUpdatePayload


def show(bar: Bar | BarsUpdatePayload) -> str:
    return f"{bar.time} o={bar.open} h={bar.high} l={bar.low} c={bar.close} v={bar.volume}"


async def main(url: str, symbol: str, closed_wanted: int) -> int:
    async with MarketcastClient(url) as client:
        try:
            bars = await client.subscribe_bars(symbol, resolution="1", snapshot=3)
        except SubscriptionRefused as refused:
            print(f"refused: {refused.code}: {refused.message}")
            return 1
        history: list[Bar] = bars.reply.bars or []
        for bar in history:
            print("history", show(bar))
        closed = 0
        async for update in bars:
            if update.closed:
                closed += 1
                print("closed", show(update))
                if closed == closed_wanted:
                    break
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8000/api/v1/ws")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--closed", type=int, default=0)
    options = parser.parse_args()
    raise SystemExit(asyncio.run(main(options.url, options.symbol, options.closed)))
